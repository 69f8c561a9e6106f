"""tpsbench.client.unix_socket: httpx through a Unix socket on the loop's own streams, against a real aiohttp
server on a socket, on asyncio's loop and on uvloop (where installed)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web

from tpsbench.client.network import Network
from tpsbench.client.proxy import ProxySettings
from tpsbench.client.unix_socket import UnixSocketTransport
from tpsbench.core import eventloop


class CountingLoop(asyncio.SelectorEventLoop):
    """asyncio's loop, counting the raw-socket callbacks handed to it (``add_reader``/``add_writer``, the
    public calls: its own transports use the private ones)."""

    raw_waits = 0

    def add_reader(self, fd: Any, callback: Callable[..., Any], *args: Any) -> None:  # type: ignore[override]
        self.raw_waits += 1
        super().add_reader(fd, callback, *args)

    def add_writer(self, fd: Any, callback: Callable[..., Any], *args: Any) -> None:  # type: ignore[override]
        self.raw_waits += 1
        super().add_writer(fd, callback, *args)


def _run(loop: str, main: Coroutine[Any, Any, Any], monkeypatch: pytest.MonkeyPatch) -> Any:
    """``main`` on the client's loop (tpsbench.core.eventloop), asyncio's or uvloop."""
    if loop == "asyncio":
        monkeypatch.setenv("TPSBENCH_LOOP", "asyncio")
    else:
        monkeypatch.delenv("TPSBENCH_LOOP", raising=False)
    if eventloop.loop_name() != loop:
        main.close()
        pytest.skip("uvloop is not installed (pip install -e '.[fast]')")
    return eventloop.run(main)


async def _serving(path: Path, body: Callable[[Any], Awaitable[None]]) -> None:
    """Run ``body(connections)`` with an aiohttp app on ``path``: GET /pace answers how many connections the
    server has accepted so far, POST /echo sends the JSON back, GET /slow answers after 2 s."""
    accepted: list[object] = []

    async def pace(request: web.Request) -> web.Response:
        if request.transport not in accepted:
            accepted.append(request.transport)
        return web.json_response({"connections": len(accepted)})

    async def echo(request: web.Request) -> web.Response:
        return web.json_response(await request.json())

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(2)
        return web.json_response({})

    app = web.Application()
    app.router.add_get("/pace", pace)
    app.router.add_post("/echo", echo)
    app.router.add_get("/slow", slow)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.UnixSite(runner, str(path)).start()
    try:
        await body(accepted)
    finally:
        await runner.cleanup()


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_requests_round_trip_and_keep_their_connection(
    loop: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "s.sock"

    async def body(accepted: list[object]) -> None:
        async with httpx.AsyncClient(transport=UnixSocketTransport(str(path)), base_url="http://x") as c:
            first = await c.get("/pace")
            assert first.status_code == 200 and first.json() == {"connections": 1}
            payload = {"text": "é" * 5000, "n": [1, 2, 3]}  # several reads of the body
            echoed = await c.post("/echo", content=json.dumps(payload))
            assert echoed.json() == payload
            assert (await c.get("/pace")).json() == {"connections": 1}  # kept alive, reused
            # The server drops the idle connection: the pool sees it closed and dials again.
            for transport in accepted:
                transport.close()  # type: ignore[attr-defined]
            await asyncio.sleep(0.05)
            assert (await c.get("/pace")).json() == {"connections": 2}

    _run(loop, _serving(path, body), monkeypatch)


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_failures_are_httpx_errors(loop: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "s.sock"

    async def body(_: list[object]) -> None:
        async with httpx.AsyncClient(transport=UnixSocketTransport(str(path)), base_url="http://x") as c:
            with pytest.raises(httpx.ReadTimeout):
                await c.get("/slow", timeout=httpx.Timeout(5, read=0.2))
            assert (await c.get("/pace")).status_code == 200  # the pool goes on after a timed-out read
        missing = UnixSocketTransport(str(tmp_path / "missing.sock"))
        async with httpx.AsyncClient(transport=missing, base_url="http://x") as c:
            with pytest.raises(httpx.ConnectError, match="No such file"):
                await c.get("/pace")
        async with httpx.AsyncClient(transport=UnixSocketTransport(str(path)), base_url="https://x") as c:
            with pytest.raises(httpx.ConnectError, match="TLS through a Unix socket"):
                await c.get("/pace")

    _run(loop, _serving(path, body), monkeypatch)


def test_no_raw_socket_callbacks_reach_the_loop(tmp_path: Path) -> None:
    """The cause this transport exists for: httpx's own Unix-socket transport (anyio) waits on the raw
    socket with ``loop.add_reader(sock, future.set_result, None)``, which uvloop can call again on the
    finished future (``InvalidStateError`` tracebacks at 2,048 streams). The run's side calls go through
    ``Network.httpx_transport``, on the loop's stream transports, which hand the loop no such callback."""
    path = tmp_path / "s.sock"
    network = Network(proxies=ProxySettings.from_env({}), tls=None, unix_socket=str(path))

    def waits(make: Callable[[], httpx.AsyncBaseTransport]) -> int:
        async def body(_: list[object]) -> None:
            async with httpx.AsyncClient(transport=make(), base_url="http://x") as c:
                for _k in range(3):
                    assert (await c.get("/pace")).status_code == 200

        loop = CountingLoop()
        try:
            loop.run_until_complete(_serving(path, body))
        finally:
            loop.close()
        return loop.raw_waits

    assert waits(lambda: httpx.AsyncHTTPTransport(uds=str(path))) > 0  # the probe sees anyio's waits
    transport = network.httpx_transport
    assert waits(lambda: transport() or httpx.AsyncHTTPTransport()) == 0
