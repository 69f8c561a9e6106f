"""The transport contract (tpsbench/client/transport/base.py), one suite run against every transport.

Each case is a real loopback server that answers with bytes of our choosing, so the three transports (h11,
aiohttp, httpx) meet the same wire and must give the same :class:`RawExchange`: the status and its
classification, the body as read, stamps in order, our own deadlines (first byte, whole request), a stream
cut with its reads kept, the error body in ``error_detail`` (bounded), connection failures as ``CONNECT``,
cancellation propagated, and the resend rule (a reused keep-alive connection that closes before any
response byte: sent once more on a fresh one; never once a response byte came). What only one transport
does (h11 keep-alive, chunked framing, TLS, the httpx mock seam) stays in tests/test_transport.py.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest

from tpsbench.client.transport import MAX_ERROR_BODY, RawExchange, make_transport
from tpsbench.core.record import ErrorKind
from tpsbench.core.timeouts import Timeouts

KINDS = ["h11", "aiohttp", "httpx"]
FAST = Timeouts(connect_s=2.0, first_token_s=2.0, request_s=5.0)
SSE_HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
Respond = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def response(status: int, body: bytes, reason: str = "X") -> bytes:
    head = (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        (
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        ),
        0,
    )
    return head + await reader.readexactly(length)


@asynccontextmanager
async def serve(respond: Respond) -> AsyncIterator[str]:
    """A loopback server whose every connection is handled by ``respond`` (it reads the request itself)."""
    tasks: set[asyncio.Task[None]] = set()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        tasks.add(task)
        try:
            await respond(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/v1/chat/completions"
    finally:
        server.close()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()


def exchange(kind: str, respond: Respond, timeouts: Timeouts = FAST) -> RawExchange:
    async def go() -> RawExchange:
        async with serve(respond) as url:
            transport = make_transport(kind)  # type: ignore[arg-type]
            try:
                return await transport.stream(url, {"content-type": "application/json"}, b"{}", timeouts)
            finally:
                await transport.aclose()

    return asyncio.run(go())


@pytest.mark.parametrize("kind", KINDS)
def test_a_unix_socket_carries_the_request_whatever_the_urls_port(kind: str, tmp_path: Any) -> None:
    """``unix_socket``: every connection goes there (the URL's port is closed); the URL gives Host."""
    heads: list[bytes] = []

    async def respond(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        heads.append(await read_request(reader))
        writer.write(SSE_HEAD + chunk(b"data: 1\n\n") + chunk(b"data: [DONE]\n\n") + b"0\r\n\r\n")
        await writer.drain()
        writer.close()

    async def go() -> RawExchange:
        path = str(tmp_path / "s.sock")
        server = await asyncio.start_unix_server(respond, path)
        closed = socket.socket()
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
        closed.close()  # nothing listens there
        transport = make_transport(kind, unix_socket=path)  # type: ignore[arg-type]
        try:
            url = f"http://127.0.0.1:{port}/v1/chat/completions"
            return await transport.stream(url, {"content-type": "application/json"}, b"{}", FAST)
        finally:
            await transport.aclose()
            server.close()
            await server.wait_closed()

    raw = asyncio.run(go())
    assert (raw.status, raw.error, raw.body_complete) == (200, None, True)
    assert body_of(raw) == b"data: 1\n\ndata: [DONE]\n\n"
    assert len(heads) == 1 and b"host: 127.0.0.1:" in heads[0].lower()


def body_of(raw: RawExchange) -> bytes:
    return b"".join(data for _, data in raw.reads)


@pytest.mark.parametrize("kind", KINDS)
def test_a_stream_arrives_whole_with_ordered_stamps(kind: str) -> None:
    events = [b"data: %d\n\n" % i for i in range(5)] + [b"data: [DONE]\n\n"]

    async def respond(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(SSE_HEAD)
        for ev in events:
            writer.write(chunk(ev))
            await writer.drain()
            await asyncio.sleep(0.005)
        writer.write(b"0\r\n\r\n")
        await writer.drain()

    raw = exchange(kind, respond)
    assert (raw.status, raw.error, raw.error_detail, raw.body_complete) == (200, None, None, True)
    assert body_of(raw) == b"".join(events)
    stamps = [raw.send_ns, raw.headers_ns, *(t for t, _ in raw.reads), raw.end_ns]
    assert all(isinstance(t, int) for t in stamps) and stamps == sorted(stamps)  # type: ignore[type-var]
    assert len(raw.reads) >= 2  # reads are stamped as they come, not once at the end


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    ("status", "error"),
    [
        (400, ErrorKind.HTTP_4XX),
        (404, ErrorKind.HTTP_4XX),
        (429, ErrorKind.HTTP_429),
        (500, ErrorKind.HTTP_5XX),
        (503, ErrorKind.HTTP_5XX),
        (302, ErrorKind.OTHER),  # redirects are not followed: a redirected POST is a wrong base URL
    ],
)
def test_a_status_is_classified_and_its_body_kept_as_the_detail(
    kind: str, status: int, error: ErrorKind
) -> None:
    message = b'{"error": {"message": "The model does not exist"}}'

    async def respond(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(response(status, message))
        await writer.drain()

    raw = exchange(kind, respond)
    assert (raw.status, raw.error, raw.body_complete, raw.reads) == (status, error, False, [])
    assert raw.error_detail == message.decode()


@pytest.mark.parametrize("kind", KINDS)
def test_an_empty_error_body_says_so(kind: str) -> None:
    async def respond(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(response(500, b""))
        await writer.drain()

    raw = exchange(kind, respond)
    assert (raw.status, raw.error, raw.error_detail) == (
        500,
        ErrorKind.HTTP_5XX,
        "HTTP 500 with an empty body",
    )


@pytest.mark.parametrize("kind", KINDS)
def test_an_error_body_is_bounded(kind: str) -> None:
    async def respond(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(response(500, b"x" * (3 * MAX_ERROR_BODY)))
        await writer.drain()

    raw = exchange(kind, respond)
    assert (raw.status, raw.error) == (500, ErrorKind.HTTP_5XX)
    assert raw.error_detail is not None and 0 < len(raw.error_detail) <= MAX_ERROR_BODY


async def _hold(reader: asyncio.StreamReader) -> None:
    """Keep the connection open until the client closes it."""
    await reader.read()


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("headers_first", [False, True])
def test_no_body_byte_in_time_is_a_first_token_timeout(kind: str, headers_first: bool) -> None:
    async def respond(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        if headers_first:
            writer.write(SSE_HEAD)
            await writer.drain()
        await _hold(reader)

    raw = exchange(kind, respond, Timeouts(connect_s=2.0, first_token_s=0.2, request_s=5.0))
    assert (raw.error, raw.reads, raw.body_complete) == (ErrorKind.TIMEOUT_FIRST_TOKEN, [], False)
    assert raw.status == (200 if headers_first else None)
    assert 0.15 < (raw.end_ns - raw.send_ns) / 1e9 < 2.0


@pytest.mark.parametrize("kind", KINDS)
def test_a_request_over_its_deadline_is_a_request_timeout_with_its_reads(kind: str) -> None:
    async def respond(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(SSE_HEAD + chunk(b"data: 0\n\n"))
        await writer.drain()
        await _hold(reader)

    raw = exchange(kind, respond, Timeouts(connect_s=2.0, first_token_s=2.0, request_s=0.3))
    assert (raw.status, raw.error, raw.body_complete) == (200, ErrorKind.TIMEOUT_REQUEST, False)
    assert body_of(raw) == b"data: 0\n\n"
    assert 0.25 < (raw.end_ns - raw.send_ns) / 1e9 < 2.0


@pytest.mark.parametrize("kind", KINDS)
def test_a_connection_dropped_mid_body_is_a_stream_cut_with_its_reads(kind: str) -> None:
    async def respond(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(SSE_HEAD + chunk(b"data: 0\n\n"))
        await writer.drain()
        await asyncio.sleep(0.02)
        # returning closes the connection: the chunked body is never terminated

    raw = exchange(kind, respond)
    assert (raw.status, raw.error, raw.body_complete) == (200, ErrorKind.STREAM_CUT, False)
    assert body_of(raw) == b"data: 0\n\n"
    assert raw.error_detail


@pytest.mark.parametrize("kind", KINDS)
def test_a_connection_closed_before_any_response_is_a_connect_error(kind: str) -> None:
    async def respond(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)  # then close without a byte

    raw = exchange(kind, respond)
    assert (raw.status, raw.error, raw.reads) == (None, ErrorKind.CONNECT, [])
    assert raw.error_detail


@pytest.mark.parametrize("kind", KINDS)
def test_a_refused_connection_is_a_connect_error(kind: str) -> None:
    with socket.socket() as s:  # a port that was free a moment ago and has no listener now
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    async def go() -> RawExchange:
        transport = make_transport(kind)  # type: ignore[arg-type]
        try:
            return await transport.stream(f"http://127.0.0.1:{port}/v1/chat/completions", {}, b"{}", FAST)
        finally:
            await transport.aclose()

    raw = asyncio.run(go())
    assert (raw.status, raw.error, raw.reads) == (None, ErrorKind.CONNECT, [])
    assert raw.error_detail and raw.end_ns >= raw.send_ns


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("phase", ["before headers", "mid body"])
def test_cancellation_propagates(kind: str, phase: str) -> None:
    async def respond(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        if phase == "mid body":
            writer.write(SSE_HEAD + chunk(b"data: 0\n\n"))
            await writer.drain()
        await _hold(reader)

    async def go() -> Any:
        async with serve(respond) as url:
            transport = make_transport(kind)  # type: ignore[arg-type]
            try:
                task = asyncio.create_task(transport.stream(url, {}, b"{}", FAST))
                await asyncio.sleep(0.2)
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task
            finally:
                await transport.aclose()

    asyncio.run(go())


# --- the resend rule: a reused connection that closes before any response byte ----------------------------

Log = list[tuple[int, int, int]]


@asynccontextmanager
async def keepalive_server(plan: Callable[[int, int], str]) -> AsyncIterator[tuple[str, Log]]:
    """A keep-alive HTTP/1.1 server that does, for request ``r`` of connection ``c``, what ``plan(c, r)``
    says: "answer" (a complete Content-Length response), "slow" (that, after 0.1 s), "answer+close" (that,
    then close the connection with no ``Connection: close``: a server dropping an idle connection at once),
    "close" (read the request, close: FIN), "reset" (read the request, close with RST), "partial" (send the
    first byte of a status line, close) or "head" (send a 200's headers, close). Logs (connection, request
    on it, perf_counter_ns when the request was read)."""
    log: Log = []
    conns = 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal conns
        c, conns = conns, conns + 1
        try:
            for r in range(1000):
                await read_request(reader)
                log.append((c, r, time.perf_counter_ns()))
                action = plan(c, r)
                if action == "slow":
                    await asyncio.sleep(0.1)
                    action = "answer"
                if action.startswith("answer"):
                    writer.write(response(200, b"data: [DONE]\n\n", "OK"))
                    await writer.drain()
                    if action == "answer":
                        continue
                elif action == "partial":
                    writer.write(b"H")
                    await writer.drain()
                elif action == "head":
                    writer.write(SSE_HEAD)
                    await writer.drain()
                elif action == "reset":
                    sock = writer.get_extra_info("socket")
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/v1/chat/completions", log
    finally:
        server.close()
        await server.wait_closed()


def _in_turn(kind: str, plan: Callable[[int, int], str], n: int = 2) -> tuple[list[RawExchange], Log]:
    """``n`` requests one after the other on one transport (each on the pooled connection of the last)."""

    async def go() -> tuple[list[RawExchange], Log]:
        transport = make_transport(kind)  # type: ignore[arg-type]
        try:
            async with keepalive_server(plan) as (url, log):
                raws = [await transport.stream(url, {}, b"{}", FAST) for _ in range(n)]
                return raws, log
        finally:
            await transport.aclose()

    return asyncio.run(go())


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("close", ["close", "reset"])
def test_a_reused_connection_closed_unanswered_resends_once_on_a_fresh_one(kind: str, close: str) -> None:
    # Connection 0 answers its first request and closes on the second without a byte: what a server does
    # when it drops an idle keep-alive connection whose close crosses our request on the wire.
    (first, second), log = _in_turn(kind, lambda c, r: close if (c, r) == (0, 1) else "answer")
    assert (first.error, first.resent) == (None, False)
    assert (second.status, second.error, second.body_complete, second.resent) == (200, None, True, True)
    assert body_of(second) == b"data: [DONE]\n\n"
    assert [(c, r) for c, r, _ in log] == [(0, 0), (0, 1), (1, 0)]  # written twice, answered on a new one
    lost_attempt, answered = log[1][2], log[2][2]
    assert lost_attempt < second.send_ns < answered  # t_send is the real (second) send
    assert second.send_ns <= second.headers_ns <= second.end_ns  # type: ignore[operator]


@pytest.mark.parametrize("kind", KINDS)
def test_the_resend_goes_on_a_new_connection_not_another_pooled_one(kind: str) -> None:
    # Two pooled connections, both closed by the server at their next request: the request that meets the
    # first must not be resent on the second (as stale), but on a connection of its own.
    plan = {(0, 0): "slow", (1, 0): "slow", (0, 1): "close", (1, 1): "close"}

    async def go() -> tuple[RawExchange, Log]:
        transport = make_transport(kind)  # type: ignore[arg-type]
        try:
            async with keepalive_server(lambda c, r: plan.get((c, r), "answer")) as (url, log):
                await asyncio.gather(*(transport.stream(url, {}, b"{}", FAST) for _ in range(2)))
                return await transport.stream(url, {}, b"{}", FAST), log
        finally:
            await transport.aclose()

    raw, log = asyncio.run(go())
    assert (raw.status, raw.error, raw.body_complete, raw.resent) == (200, None, True, True)
    tried = sorted((c, r) for c, r, _ in log if r == 1)
    assert sorted((c, r) for c, r, _ in log if r == 0) == [(0, 0), (1, 0), (2, 0)]
    assert tried in ([(0, 1)], [(1, 1)])  # one stale connection tried, then a new one


@pytest.mark.parametrize("kind", KINDS)
def test_a_request_is_resent_only_once(kind: str) -> None:
    # The fresh connection closes unanswered too: that is the server's doing, recorded as CONNECT.
    (first, second), log = _in_turn(kind, lambda c, r: "answer" if (c, r) == (0, 0) else "close")
    assert first.error is None
    assert (second.status, second.error, second.resent) == (None, ErrorKind.CONNECT, True)
    assert second.error_detail
    assert [(c, r) for c, r, _ in log] == [(0, 0), (0, 1), (1, 0)]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("answer", ["partial", "head"])
def test_no_resend_once_a_response_byte_arrived(kind: str, answer: str) -> None:
    # The server began to answer (one byte of a status line; a 200's headers), then closed: resending would
    # send, and count, a request the server had already taken up.
    (first, second), log = _in_turn(kind, lambda c, r: answer if (c, r) == (0, 1) else "answer")
    assert first.error is None
    assert second.resent is False and second.error is not None
    if answer == "head":
        assert (second.status, second.error) == (200, ErrorKind.STREAM_CUT)
    else:
        assert second.status is None
    assert [(c, r) for c, r, _ in log] == [(0, 0), (0, 1)]  # sent once, never again


@pytest.mark.parametrize("kind", KINDS)
def test_no_resend_on_a_fresh_connection(kind: str) -> None:
    (raw,), log = _in_turn(kind, lambda c, r: "close", n=1)
    assert (raw.status, raw.error, raw.resent) == (None, ErrorKind.CONNECT, False)
    assert len(log) == 1


@pytest.mark.parametrize("kind", KINDS)
def test_no_request_is_lost_to_a_server_that_closes_idle_connections(kind: str) -> None:
    """Every connection answers one request and is closed by the server right after (no ``Connection:
    close``), so each next request meets a connection whose close is in flight or already seen: it is
    either sent on a fresh connection or resent; none fails and each is answered once."""

    async def go() -> tuple[list[RawExchange], Log]:
        transport = make_transport(kind)  # type: ignore[arg-type]
        try:
            async with keepalive_server(lambda c, r: "answer+close") as (url, log):

                async def user() -> list[RawExchange]:
                    return [await transport.stream(url, {}, b"{}", FAST) for _ in range(15)]

                per_user = await asyncio.gather(*(user() for _ in range(4)))
                return [raw for raws in per_user for raw in raws], log
        finally:
            await transport.aclose()

    raws, log = asyncio.run(go())
    assert [raw.error for raw in raws] == [None] * 60
    assert all(raw.status == 200 and raw.body_complete for raw in raws)
    assert len(log) == 60 and {r for _, r, _ in log} == {0}  # one request per connection, each answered
