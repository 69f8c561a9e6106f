"""Transports: exact timestamps through httpx.MockTransport, real loopback behaviour through aiohttp."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import aiohttp
import httpx
import pytest
from aiohttp import web

from tpsbench.scenario import Timeouts
from tpsbench.transport import (
    MAX_ERROR_BODY,
    AiohttpTransport,
    HttpxTransport,
    RawExchange,
    classify_status,
    make_transport,
)
from tpsbench.types import ErrorKind

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


def test_aiohttp_connection_refused() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    raw = run(via_aiohttp(f"http://127.0.0.1:{port}/v1/chat/completions"))
    assert (raw.status, raw.error, raw.reads) == (None, ErrorKind.CONNECT, [])
    assert raw.error_detail and "ClientConnectorError" in raw.error_detail


def test_aiohttp_stream_cut_mid_body_keeps_reads() -> None:
    async def cut(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await resp.prepare(request)
        await resp.write(b"data: 0\n\n")
        await asyncio.sleep(0.02)
        assert request.transport is not None
        request.transport.close()  # chunked body never terminated
        return resp

    async def go() -> RawExchange:
        async with serve(cut) as url:
            return await via_aiohttp(url)

    raw = run(go())
    assert (raw.status, raw.error, raw.body_complete) == (200, ErrorKind.STREAM_CUT, False)
    assert b"".join(d for _, d in raw.reads) == b"data: 0\n\n"


@pytest.mark.parametrize(("status", "kind"), [(429, ErrorKind.HTTP_429), (500, ErrorKind.HTTP_5XX)])
def test_aiohttp_http_errors(status: int, kind: ErrorKind) -> None:
    async def fail(request: web.Request) -> web.StreamResponse:
        return web.Response(status=status, text="slow down")

    async def go() -> RawExchange:
        async with serve(fail) as url:
            return await via_aiohttp(url)

    raw = run(go())
    assert (raw.status, raw.error, raw.error_detail) == (status, kind, "slow down")


def test_aiohttp_first_token_timeout() -> None:
    async def go() -> RawExchange:
        release = asyncio.Event()

        async def silent(request: web.Request) -> web.StreamResponse:
            resp = web.StreamResponse()
            await resp.prepare(request)
            await release.wait()  # headers sent, no body byte until the client gave up
            return resp

        async with serve(silent) as url:
            raw = await via_aiohttp(url, Timeouts(first_token_s=0.05))
            release.set()
            return raw

    raw = run(go())
    assert (raw.status, raw.error, raw.reads) == (200, ErrorKind.TIMEOUT_FIRST_TOKEN, [])
    assert raw.end_ns - raw.send_ns < 1_000_000_000


def test_aiohttp_error_classification() -> None:
    classify = AiohttpTransport()._classify
    assert classify(aiohttp.ConnectionTimeoutError("t"), None) is ErrorKind.TIMEOUT_CONNECT
    assert classify(aiohttp.ServerDisconnectedError(), None) is ErrorKind.CONNECT
    assert classify(aiohttp.ServerDisconnectedError(), 200) is ErrorKind.STREAM_CUT
    assert classify(aiohttp.ClientPayloadError("incomplete"), 200) is ErrorKind.STREAM_CUT
    assert classify(RuntimeError("bug"), None) is ErrorKind.OTHER
