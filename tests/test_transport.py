"""What one transport does its own way: exact timestamps through httpx.MockTransport (a scripted clock),
aiohttp's error map, and h11's connection handling (keep-alive, framing, TLS, limits) against loopback
servers. The contract every transport shares is tested once for all three in test_transport_contract.py."""

from __future__ import annotations

import asyncio
import itertools
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import httpx
import pytest
from aiohttp import web
from hypothesis import given, settings
from hypothesis import strategies as st

import tpsbench
from tpsbench.client.transport import MAX_ERROR_BODY, RawExchange, classify_status, make_transport
from tpsbench.client.transport.aiohttp import AiohttpTransport
from tpsbench.client.transport.base import ReadLog
from tpsbench.client.transport.chunked import ChunkedBody
from tpsbench.client.transport.h11 import H11Transport, _Turns
from tpsbench.client.transport.httpx import HttpxTransport
from tpsbench.config.scenario import Timeouts
from tpsbench.core.record import ErrorKind

T = TypeVar("T")
URL = "http://test/v1/chat/completions"
FAST = Timeouts(connect_s=1.0, first_token_s=2.0, request_s=5.0)


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


class ScriptedClock:
    """A clock the fake server moves: every stamp the transport takes is exactly known."""

    def __init__(self, start: int = 100) -> None:
        self.now = start

    def __call__(self) -> int:
        return self.now


Handler = Callable[[httpx.Request], Coroutine[None, None, httpx.Response]]


def scripted(
    clock: ScriptedClock,
    script: list[tuple[int, bytes]],
    *,
    status: int = 200,
    headers_at: int = 1_000,
    end_at: int | None = None,
) -> Handler:
    async def handler(request: httpx.Request) -> httpx.Response:
        clock.now = headers_at

        async def body() -> AsyncIterator[bytes]:
            for t, data in script:
                clock.now = t
                yield data
            if end_at is not None:
                clock.now = end_at

        return httpx.Response(status, content=body(), headers={"content-type": "text/event-stream"})

    return handler


async def via_httpx(handler: Handler, clock: ScriptedClock, timeouts: Timeouts = FAST) -> RawExchange:
    transport = HttpxTransport(clock=clock, transport=httpx.MockTransport(handler))
    try:
        return await transport.stream(URL, {"content-type": "application/json"}, b"{}", timeouts)
    finally:
        await transport.aclose()


# --- httpx.MockTransport: exact times, error classes --------------------------------------------------


def test_httpx_stamps_send_headers_reads_and_end_exactly() -> None:
    clock = ScriptedClock(start=100)
    script = [(2_000, b"data: a\n\n"), (3_500, b"data: b\n\n"), (4_000, b"data: [DONE]\n\n")]
    raw = run(via_httpx(scripted(clock, script, end_at=4_100), clock))
    assert raw == RawExchange(
        send_ns=100, end_ns=4_100, status=200, headers_ns=1_000, reads=script, body_complete=True
    )


def test_httpx_sends_method_url_headers_and_body() -> None:
    seen: list[httpx.Request] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, content=b"data: [DONE]\n\n")

    transport = HttpxTransport(transport=httpx.MockTransport(handler))

    async def go() -> RawExchange:
        try:
            return await transport.stream(URL, {"x-test": "1"}, b'{"a":1}', FAST)
        finally:
            await transport.aclose()

    raw = run(go())
    assert raw.error is None
    (req,) = seen
    assert (req.method, str(req.url), req.headers["x-test"], req.content) == ("POST", URL, "1", b'{"a":1}')


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (429, ErrorKind.HTTP_429),
        (400, ErrorKind.HTTP_4XX),
        (404, ErrorKind.HTTP_4XX),
        (503, ErrorKind.HTTP_5XX),
    ],
)
def test_httpx_non_2xx_keeps_the_body_as_detail(status: int, kind: ErrorKind) -> None:
    clock = ScriptedClock()
    raw = run(via_httpx(scripted(clock, [(5, b'{"error": "no"'), (6, b"}")], status=status), clock))
    assert (raw.status, raw.error, raw.error_detail, raw.reads) == (status, kind, '{"error": "no"}', [])


def test_http_error_whose_body_stalls_keeps_status_and_partial_body() -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        async def body() -> AsyncIterator[bytes]:
            yield b"overloaded"
            await asyncio.sleep(10)
            yield b"!"

        return httpx.Response(503, content=body())

    raw = run(via_httpx(handler, ScriptedClock(), Timeouts(request_s=0.05)))
    assert (raw.status, raw.error, raw.error_detail) == (503, ErrorKind.HTTP_5XX, "overloaded")


def test_error_body_is_bounded() -> None:
    clock = ScriptedClock()
    big = [(i, b"x" * 10_000) for i in range(50)]
    raw = run(via_httpx(scripted(clock, big, status=500), clock))
    assert raw.error is ErrorKind.HTTP_5XX
    assert raw.error_detail is not None and len(raw.error_detail) == MAX_ERROR_BODY


def test_classify_status() -> None:
    assert [classify_status(s) for s in (200, 204, 302, 429, 401, 500, 599)] == [
        None,
        None,
        ErrorKind.OTHER,
        ErrorKind.HTTP_429,
        ErrorKind.HTTP_4XX,
        ErrorKind.HTTP_5XX,
        ErrorKind.HTTP_5XX,
    ]


def test_first_token_timeout_when_body_is_silent() -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        async def body() -> AsyncIterator[bytes]:
            await asyncio.sleep(10)
            yield b"data: late\n\n"

        return httpx.Response(200, content=body())

    t0 = time.monotonic()
    raw = run(via_httpx(handler, ScriptedClock(), Timeouts(first_token_s=0.05, request_s=5)))
    assert time.monotonic() - t0 < 2
    assert (raw.status, raw.error, raw.reads) == (200, ErrorKind.TIMEOUT_FIRST_TOKEN, [])


def test_first_token_timeout_when_headers_never_come() -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(10)
        return httpx.Response(200)

    raw = run(via_httpx(handler, ScriptedClock(), Timeouts(first_token_s=0.05)))
    assert (raw.status, raw.headers_ns, raw.error) == (None, None, ErrorKind.TIMEOUT_FIRST_TOKEN)


def test_request_timeout_keeps_reads() -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        async def body() -> AsyncIterator[bytes]:
            yield b"data: a\n\n"
            await asyncio.sleep(10)
            yield b"data: b\n\n"

        return httpx.Response(200, content=body())

    raw = run(via_httpx(handler, ScriptedClock(), Timeouts(first_token_s=5, request_s=0.1)))
    assert raw.error is ErrorKind.TIMEOUT_REQUEST
    assert [d for _, d in raw.reads] == [b"data: a\n\n"]
    assert not raw.body_complete


def test_request_timeout_shorter_than_first_token_timeout_is_a_request_timeout() -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(10)
        return httpx.Response(200)

    raw = run(via_httpx(handler, ScriptedClock(), Timeouts(first_token_s=5, request_s=0.05)))
    assert raw.error is ErrorKind.TIMEOUT_REQUEST


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (httpx.ConnectError("refused"), ErrorKind.CONNECT),
        (httpx.ConnectTimeout("slow"), ErrorKind.TIMEOUT_CONNECT),
        (httpx.RemoteProtocolError("closed"), ErrorKind.CONNECT),
        (ValueError("bug"), ErrorKind.OTHER),
    ],
)
def test_httpx_errors_before_a_response(exc: Exception, kind: ErrorKind) -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        raise exc

    raw = run(via_httpx(handler, ScriptedClock()))
    assert (raw.status, raw.error) == (None, kind)
    assert raw.error_detail is not None and type(exc).__name__ in raw.error_detail


def test_httpx_connection_dropped_mid_body_is_a_stream_cut_with_reads_kept() -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        async def body() -> AsyncIterator[bytes]:
            yield b"data: a\n\n"
            raise httpx.ReadError("connection reset")

        return httpx.Response(200, content=body())

    raw = run(via_httpx(handler, ScriptedClock()))
    assert (raw.error, len(raw.reads), raw.body_complete) == (ErrorKind.STREAM_CUT, 1, False)


def test_cancellation_propagates() -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        async def body() -> AsyncIterator[bytes]:
            yield b"data: a\n\n"
            await asyncio.sleep(10)
            yield b""

        return httpx.Response(200, content=body())

    async def go() -> None:
        task = asyncio.create_task(via_httpx(handler, ScriptedClock()))
        await asyncio.sleep(0.05)
        task.cancel()
        await task

    with pytest.raises(asyncio.CancelledError):
        run(go())


def test_make_transport() -> None:
    assert isinstance(make_transport("aiohttp"), AiohttpTransport)
    httpx_transport = make_transport("httpx", max_connections=4)
    assert isinstance(httpx_transport, HttpxTransport)
    run(httpx_transport.aclose())
    with pytest.raises(ValueError, match="unknown transport"):
        make_transport("curl")  # type: ignore[arg-type]


# --- aiohttp against a real loopback server ------------------------------------------------------------


@asynccontextmanager
async def serve(handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_post("/v1/chat/completions", handler)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        host, port = runner.addresses[0][:2]
        yield f"http://{host}:{port}/v1/chat/completions"
    finally:
        await runner.cleanup()


async def sse_stream(request: web.Request) -> web.StreamResponse:
    await request.read()
    resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
    await resp.prepare(request)
    await asyncio.sleep(0.03)  # "TTFT"
    for i in range(3):
        await resp.write(f"data: {i}\n\n".encode())
        await asyncio.sleep(0.02)
    await resp.write(b"data: [DONE]\n\n")
    await resp.write_eof()
    return resp


async def via_aiohttp(url: str, timeouts: Timeouts = FAST) -> RawExchange:
    transport = AiohttpTransport()
    try:
        return await transport.stream(url, {"content-type": "application/json"}, b"{}", timeouts)
    finally:
        await transport.aclose()


def test_aiohttp_streams_with_plausible_timestamps() -> None:
    async def go() -> RawExchange:
        async with serve(sse_stream) as url:
            return await via_aiohttp(url)

    raw = run(go())
    assert (raw.status, raw.error, raw.body_complete) == (200, None, True)
    assert b"".join(d for _, d in raw.reads) == b"data: 0\n\ndata: 1\n\ndata: 2\n\ndata: [DONE]\n\n"
    times = [t for t, _ in raw.reads]
    assert raw.headers_ns is not None
    assert raw.send_ns < raw.headers_ns <= times[0] <= raw.end_ns
    assert times == sorted(times)
    assert times[0] - raw.send_ns >= 25_000_000  # the server waited 30 ms before the first event
    assert len(raw.reads) >= 3  # events 20 ms apart arrive as separate reads
    assert raw.end_ns - raw.send_ns < 2_000_000_000


def test_aiohttp_error_classification() -> None:
    classify = AiohttpTransport()._classify
    assert classify(aiohttp.ConnectionTimeoutError("t"), None) is ErrorKind.TIMEOUT_CONNECT
    assert classify(aiohttp.ServerDisconnectedError(), None) is ErrorKind.CONNECT
    assert classify(aiohttp.ServerDisconnectedError(), 200) is ErrorKind.STREAM_CUT
    assert classify(aiohttp.ClientPayloadError("incomplete"), 200) is ErrorKind.STREAM_CUT
    assert classify(RuntimeError("bug"), None) is ErrorKind.OTHER


# --- h11 (asyncio.Protocol) against real loopback servers -----------------------------------------------


async def via_h11(
    url: str, timeouts: Timeouts = FAST, transport: H11Transport | None = None, body: bytes = b"{}"
) -> RawExchange:
    """One exchange; a given transport is left open (for keep-alive tests), a fresh one is closed."""
    own = transport is None
    t = transport or H11Transport()
    try:
        return await t.stream(
            url, {"content-type": "application/json", "X-Request-Id": "t-7"}, body, timeouts
        )
    finally:
        if own:
            await t.aclose()


async def until_client_closed(request: web.Request) -> None:
    """Hang a handler until the client closes its connection (or 10 s pass), so servers stop promptly."""
    for _ in range(1000):
        if request.transport is None or request.transport.is_closing():
            return
        await asyncio.sleep(0.01)


@asynccontextmanager
async def serve_raw(respond: Callable[[asyncio.StreamWriter], Awaitable[None]]) -> AsyncIterator[str]:
    """A server that answers any request with bytes of our choosing (framings aiohttp.web won't produce)."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        await respond(writer)
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        port = server.sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}/v1/chat/completions"
    finally:
        server.close()
        await server.wait_closed()


def test_h11_streams_chunked_with_exact_bytes_and_ordered_stamps() -> None:
    async def go() -> RawExchange:
        async with serve(sse_stream) as url:  # a StreamResponse without length: chunked encoding
            return await via_h11(url)

    raw = run(go())
    assert (raw.status, raw.error, raw.body_complete) == (200, None, True)
    assert b"".join(d for _, d in raw.reads) == b"data: 0\n\ndata: 1\n\ndata: 2\n\ndata: [DONE]\n\n"
    times = [t for t, _ in raw.reads]
    assert raw.headers_ns is not None
    assert raw.send_ns < raw.headers_ns <= times[0] <= raw.end_ns
    assert times == sorted(times)
    assert times[0] - raw.send_ns >= 25_000_000  # the server waited 30 ms before the first event
    assert len(raw.reads) >= 3  # events 20 ms apart arrive as separate reads, each stamped
    assert raw.end_ns == times[-1]  # the end is the read that completed the body


def test_h11_sends_method_target_headers_and_body_after_send_ns() -> None:
    seen: list[tuple[int, str, str, dict[str, str], bytes]] = []

    async def echo(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        headers = {k.lower(): v for k, v in request.headers.items()}
        seen.append((time.perf_counter_ns(), request.method, request.path_qs, headers, body))
        return web.Response(body=b"data: [DONE]\n\n", content_type="text/event-stream")

    async def go() -> RawExchange:
        async with serve(echo) as url:
            return await via_h11(url + "?x=1", body=b'{"a":1}')

    raw = run(go())
    assert (raw.status, raw.error, raw.body_complete) == (200, None, True)  # a Content-Length body
    assert [d for _, d in raw.reads] == [b"data: [DONE]\n\n"]
    ((received, method, target, headers, body),) = seen
    assert (method, target, body) == ("POST", "/v1/chat/completions?x=1", b'{"a":1}')
    assert headers["x-request-id"] == "t-7" and headers["content-length"] == "7"
    assert headers["host"].startswith("127.0.0.1:") and headers["user-agent"].startswith("tpsbench/")
    assert raw.send_ns < received  # stamped before the bytes left


def test_h11_keeps_connections_alive_and_reuses_them() -> None:
    peers: list[object] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        assert request.transport is not None
        peers.append(request.transport.get_extra_info("peername"))
        if request.query.get("fail"):  # a complete error response leaves the connection reusable too
            return web.Response(status=404, text="no such model")
        return await sse_stream(request)

    async def go() -> list[RawExchange]:
        transport = H11Transport()
        try:
            async with serve(handler) as url:
                a = await via_h11(url, transport=transport)
                b = await via_h11(url + "?fail=1", transport=transport)
                c = await via_h11(url, transport=transport)
                return [a, b, c]
        finally:
            await transport.aclose()

    a, b, c = run(go())
    assert (a.error, b.error, b.error_detail, c.error) == (None, ErrorKind.HTTP_4XX, "no such model", None)
    assert peers[0] == peers[1] == peers[2]  # one connection for all three


def test_h11_replaces_an_idle_connection_the_server_closed() -> None:
    peers: list[object] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        assert request.transport is not None
        peers.append(request.transport.get_extra_info("peername"))
        return web.Response(body=b"data: [DONE]\n\n")

    async def go() -> list[RawExchange]:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", handler)
        runner = web.AppRunner(app, handle_signals=False, keepalive_timeout=0.05)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        transport = H11Transport()
        try:
            url = f"http://127.0.0.1:{runner.addresses[0][1]}/v1/chat/completions"
            first = await via_h11(url, transport=transport)
            await asyncio.sleep(0.3)  # the server closes the idle connection
            return [first, await via_h11(url, transport=transport)]
        finally:
            await transport.aclose()
            await runner.cleanup()

    first, second = run(go())
    assert (first.error, second.error) == (None, None)
    assert peers[0] != peers[1]


def test_h11_read_until_close_body() -> None:
    async def respond(w: asyncio.StreamWriter) -> None:
        w.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\ndata: 0\n\n")
        await w.drain()
        await asyncio.sleep(0.02)
        w.write(b"data: [DONE]\n\n")

    async def go() -> RawExchange:
        async with serve_raw(respond) as url:
            return await via_h11(url)

    raw = run(go())
    assert (raw.status, raw.error, raw.body_complete) == (200, None, True)
    assert b"".join(d for _, d in raw.reads) == b"data: 0\n\ndata: [DONE]\n\n"


def test_h11_5xx_error_body_is_bounded_and_its_stall_times_out_as_the_status() -> None:
    async def big(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(status=503)
        await resp.prepare(request)
        await resp.write(b"x" * (MAX_ERROR_BODY + 10_000))
        await until_client_closed(request)  # never ends: the client stops at the bound, not at a timeout
        return resp

    async def stall(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(status=500)
        await resp.prepare(request)
        await resp.write(b"overloaded")
        await until_client_closed(request)
        return resp

    async def go() -> tuple[RawExchange, RawExchange]:
        async with serve(big) as url1, serve(stall) as url2:
            t0 = time.monotonic()
            a = await via_h11(url1)
            assert time.monotonic() - t0 < 2
            return a, await via_h11(url2, Timeouts(request_s=0.1))

    a, b = run(go())
    assert a.error is ErrorKind.HTTP_5XX and a.error_detail == "x" * MAX_ERROR_BODY
    assert (b.status, b.error, b.error_detail) == (500, ErrorKind.HTTP_5XX, "overloaded")


def test_h11_connect_timeout() -> None:
    async def go() -> RawExchange:
        loop = asyncio.get_running_loop()

        async def never(*args: Any, **kwargs: Any) -> Any:
            await asyncio.sleep(10)

        loop.create_connection = never  # type: ignore[method-assign]
        return await via_h11("http://127.0.0.1:9/v1/chat/completions", Timeouts(connect_s=0.05))

    raw = run(go())
    assert (raw.status, raw.error) == (None, ErrorKind.TIMEOUT_CONNECT)
    assert raw.error_detail and "within 0.05 s" in raw.error_detail


def test_h11_closed_before_any_response_and_garbage_response_are_connect_errors() -> None:
    async def nothing(w: asyncio.StreamWriter) -> None:
        return None

    async def garbage(w: asyncio.StreamWriter) -> None:
        w.write(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")

    async def go() -> tuple[RawExchange, RawExchange]:
        async with serve_raw(nothing) as url1, serve_raw(garbage) as url2:
            return await via_h11(url1), await via_h11(url2)

    closed, bad = run(go())
    assert (closed.status, closed.error) == (None, ErrorKind.CONNECT)
    assert (bad.status, bad.error) == (None, ErrorKind.CONNECT)
    assert bad.error_detail and "RemoteProtocolError" in bad.error_detail


def test_h11_request_timeout_keeps_reads_and_closes_the_connection() -> None:
    async def slow(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        await resp.prepare(request)
        await resp.write(b"data: a\n\n")
        await until_client_closed(request)
        return resp

    async def go() -> tuple[RawExchange, int]:
        transport = H11Transport()
        try:
            async with serve(slow) as url:
                raw = await via_h11(url, Timeouts(first_token_s=5, request_s=0.1), transport=transport)
                return raw, len(transport._pool.open)
        finally:
            await transport.aclose()

    raw, still_open = run(go())
    assert raw.error is ErrorKind.TIMEOUT_REQUEST
    assert [d for _, d in raw.reads] == [b"data: a\n\n"] and not raw.body_complete
    assert still_open == 0


def test_h11_cancellation_propagates_and_closes_the_connection() -> None:
    async def slow(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        await resp.prepare(request)
        await resp.write(b"data: a\n\n")
        await until_client_closed(request)
        return resp

    async def go() -> int:
        transport = H11Transport()
        async with serve(slow) as url:
            task = asyncio.create_task(via_h11(url, transport=transport))
            await asyncio.sleep(0.1)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            return len(transport._pool.open)

    assert run(go()) == 0


def test_h11_max_connections_queues_requests() -> None:
    peers: set[object] = set()

    async def handler(request: web.Request) -> web.StreamResponse:
        assert request.transport is not None
        peers.add(request.transport.get_extra_info("peername"))
        return await sse_stream(request)

    async def go() -> list[RawExchange]:
        transport = H11Transport(max_connections=2)
        try:
            async with serve(handler) as url:
                return await asyncio.gather(*(via_h11(url, transport=transport) for _ in range(5)))
        finally:
            await transport.aclose()

    raws = run(go())
    assert all(r.error is None for r in raws) and len(peers) == 2


def test_make_transport_h11() -> None:
    assert isinstance(make_transport("h11"), H11Transport)


def test_h11_turns_release_one_caller_per_loop_iteration_and_skip_cancelled_ones() -> None:
    async def go() -> tuple[list[int], list[int]]:
        turns = _Turns()
        order: list[int] = []

        async def caller(i: int) -> None:
            await turns.wait()
            order.append(i)

        tasks = [asyncio.create_task(caller(i)) for i in range(4)]
        await asyncio.sleep(0)  # all four are waiting now
        tasks[1].cancel()
        released: list[int] = []
        for _ in range(10):
            await asyncio.sleep(0)
            released.append(len(order))
        return order, released

    order, released = run(go())
    assert order == [0, 2, 3]
    assert all(b - a <= 1 for a, b in zip([0, *released], released, strict=False))  # never two at once


def test_h11_https_goes_through_tls() -> None:
    async def go() -> RawExchange:
        async with serve(sse_stream) as url:  # a plain-HTTP server: the TLS handshake must fail
            return await via_h11(url.replace("http://", "https://"))

    raw = run(go())
    assert (raw.status, raw.error) == (None, ErrorKind.CONNECT)
    assert raw.error_detail and "SSL" in raw.error_detail


# --- the h11 transport's chunked-body framing (its hot path) ---------------------------------------------
@settings(max_examples=200, deadline=None)
@given(
    payloads=st.lists(st.binary(min_size=1, max_size=40), min_size=0, max_size=8),
    cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=12),
    ext=st.booleans(),
)
def test_chunked_framing_gives_the_payload_however_the_reads_split(
    payloads: list[bytes], cuts: list[int], ext: bool
) -> None:
    wire = b"".join(b"%X%b\r\n%b\r\n" % (len(p), b";a=b" if ext else b"", p) for p in payloads)
    wire += b"0\r\nTrailer: x\r\n\r\n" if ext else b"0\r\n\r\n"
    bounds = sorted({0, len(wire), *(c for c in cuts if c < len(wire))})
    body, got, ended = ChunkedBody(keep_alive=True), b"", False
    for a, b in itertools.pairwise(bounds):
        assert not ended
        data, ended = body.feed(wire[a:b])
        got += data
    assert ended and got == b"".join(payloads) and not body.extra


@settings(max_examples=100, deadline=None)
@given(payloads=st.lists(st.binary(min_size=1, max_size=300), min_size=1, max_size=6), upper=st.booleans())
def test_chunked_framing_of_one_whole_chunk_per_read(payloads: list[bytes], upper: bool) -> None:
    """The usual read (what a server's one write per event gives): its fast path, leading zeros and either
    case of hex digits included."""
    body = ChunkedBody(keep_alive=True)
    for p in payloads:
        size = (b"%X" if upper else b"0%x") % len(p)
        assert body.feed(b"%b\r\n%b\r\n" % (size, p)) == (p, False)
    assert body.feed(b"0\r\n\r\n") == (b"", True)


@pytest.mark.parametrize(
    "wire", [b"0x5\r\nhello\r\n", b"-5\r\nhello\r\n", b"1_0\r\n", b"zz\r\n", b"2\r\nabXY"]
)
def test_chunked_framing_rejects_what_is_not_chunked(wire: bytes) -> None:
    with pytest.raises(ValueError):
        ChunkedBody(keep_alive=True).feed(wire)


def test_a_response_ending_after_its_task_was_cancelled_does_not_raise_in_the_protocol() -> None:
    """Ctrl-C cancels a request's task, which cancels the future it awaits at once; the task's finally (which
    detaches the exchange) runs a loop iteration later, and bytes arriving in between must not raise."""
    from tpsbench.client.transport.connect import origin_for
    from tpsbench.client.transport.h11 import _Connection, _Pool

    class Wire:
        def write(self, data: bytes) -> None: ...
        def is_closing(self) -> bool:
            return False

        def close(self) -> None: ...
        def get_extra_info(self, name: str) -> None:
            return None

    async def main() -> RawExchange:
        origin = origin_for("http://127.0.0.1:1/v1/completions")
        conn = _Connection(_Pool(), origin.key, time.perf_counter_ns)
        conn.connection_made(Wire())  # type: ignore[arg-type]
        ex = RawExchange(send_ns=1, end_ns=0)
        _, first, done = conn.attach(ex, origin, {}, b"{}")
        first.cancel()
        done.cancel()
        conn.data_received(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
        return ex

    ex = asyncio.run(main())
    assert ex.reads[0][1] == b"hello" and ex.body_complete


def test_reads_are_kept_by_readlog_add_but_in_the_h11_chunk_callback() -> None:
    """One way to keep a read (:class:`ReadLog`): its ``add``; only h11's chunked-body callback, the hot
    path, appends to the two columns itself (a call cost 3% of the read stage: benchmarks/client_cost.py)."""
    root = Path(tpsbench.__file__).parent
    writes = {
        str(f.relative_to(root)): len(re.findall(r"\.(?:stamps|payloads)\.append\(", f.read_text()))
        for f in root.rglob("*.py")
    }
    assert {f: n for f, n in writes.items() if n} == {
        "client/transport/base.py": 2,
        "client/transport/h11.py": 2,
    }
    assert not hasattr(ReadLog, "append")
