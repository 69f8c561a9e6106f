"""The reference endpoint over HTTP/1.1: an :class:`asyncio.Protocol` server in front of the :class:`Engine`.

Routes (the API itself is :mod:`.api`; the telemetry :mod:`.telemetry`):

- ``GET /v1/models``; ``POST /v1/chat/completions`` and ``POST /v1/completions``, streaming or not; the
  Anthropic Messages API ``POST /v1/messages`` (:mod:`.anthropic`) and the OpenAI Responses API
  ``POST /v1/responses`` (:mod:`.responses`), on the same engine;
- ``GET /metrics``: Prometheus text, vLLM's families (requests running and waiting, KV use, prompt and
  generated tokens, speculative drafts and acceptances);
- ``GET /pace``: the simulator's own pace report (JSON: step lag, delivery lag, server-side TTFT, counters,
  warnings); ``POST /pace/reset`` starts a new window and returns the one that ended;
- ``GET /health``.

Why a hand-made server: at the throughput end the simulator writes 2,048 streams x one chunk per 28 ms step
(74,000 chunks/s) on one core. Here a chunk costs what it must: the engine hands the step's chunks to
:meth:`ReferenceServer.deliver_step` at once, which sends a stream's plain middle step (cached bytes) itself;
other steps go to the stream's sink, which formats its events from pre-encoded pieces and writes them,
framed as one HTTP chunk, with one ``transport.write``. There is no task, coroutine, future or queue per
chunk or per request (a non-streamed request is a sink too, that answers when its last chunk comes).

HTTP: request bodies by ``Content-Length`` (``Expect: 100-continue`` answered), keep-alive (HTTP/1.1
unless ``Connection: close``), pipelined requests answered in order; a streamed response is chunked (HTTP/1.0:
a raw body ended by closing the connection). A disconnected client's request is cancelled at once, which
frees its engine slot. Every error is an OpenAI-style JSON body, including 404, 405, 411 and 413.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from asyncio import selector_events
from collections import deque
from dataclasses import dataclass
from typing import Any, cast

from tpsbench.reference.admission import PER_TURN, Admission, BoundedEpollSelector, TurnMonitor
from tpsbench.reference.anthropic import MessagesEncoder, message_body
from tpsbench.reference.api import (
    ROUTES,
    SHUTTING_DOWN,
    Api,
    ApiError,
    ParsedRequest,
    StreamEncoder,
    completion_body,
    dumps,
    models_body,
    parse_request,
)
from tpsbench.reference.engine import Chunk, Delivery, Engine, Generation, LagStats
from tpsbench.reference.model import DEFAULT_PARAMS, ModelParams, ReferenceModel
from tpsbench.reference.responses import ResponsesEncoder, response_body
from tpsbench.reference.telemetry import pace_report, pace_warnings, prometheus_text

__all__ = ["ReferenceServer", "ServerHandle", "pace_warnings", "start_server"]

MAX_BODY = 64 * 1024 * 1024
MAX_HEAD = 64 * 1024
ACCEPT_PER_TURN = 16  # connections accepted per loop turn (asyncio accepts up to its backlog in one)
LISTEN_BACKLOG = 4096  # the kernel's queue: a sweep opens thousands at once (a short one drops SYNs)
_REASONS = {
    100: "Continue", 200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
    411: "Length Required", 413: "Payload Too Large", 431: "Request Header Fields Too Large",
    500: "Internal Server Error", 503: "Service Unavailable",
}  # fmt: skip
_JSON = b"application/json"
_TEXT_PLAIN = b"text/plain; version=0.0.4; charset=utf-8"
_STREAM_HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
    b"Server: tpsbench-reference\r\n"
)


class ReferenceServer:
    """The engine and what the HTTP side measures: delivery lag and server-side TTFT (``/pace``).

    New requests are parsed through :attr:`admission`, ``per_turn`` per loop turn (:mod:`.admission`)."""

    def __init__(self, engine: Engine, *, per_turn: int = PER_TURN) -> None:
        self.engine = engine
        self.delivery = LagStats()  # chunk write time minus the step's planned end
        self.ttft = LagStats()  # server-side TTFT: request's last byte read to the first token event written
        self.created = int(time.time())
        self.connections: set[_HttpConnection] = set()
        self.admission = Admission(asyncio.get_running_loop(), per_turn)
        self.monitor: TurnMonitor | None = None  # set where the loop's selector times its turns
        loop = asyncio.get_running_loop()
        # the engine's clock (loop.time()), without the method call where it is asyncio's own
        self._clock = time.monotonic if type(loop).time is asyncio.BaseEventLoop.time else loop.time
        engine.step_sink = self.deliver_step

    def deliver_step(self, chunks: list[Delivery], end: float) -> None:
        """The engine's step sink: one loop writes the step's chunks (``end``: its planned end).

        A streamed response's plain middle step is the same bytes every time (:meth:`StreamEncoder.
        middle_frames`): written and stamped here, with no call or Chunk per chunk. Any other chunk goes to
        its request's sink as a :class:`Chunk` (first and last steps, other APIs, non-streamed requests)."""
        clock = self._clock
        lags: list[float] = []
        lag = lags.append
        for gen, tokens, reason in chunks:
            sink = gen.sink
            if (
                reason is None
                and type(sink) is _Stream
                and (frames := sink.frames) is not None
                and (frame := frames.get(tokens)) is not None
            ):
                raw = sink.raw
                if raw is not None and not raw._buffer and not raw._closing:
                    # transport.write's own first step (its checks hold for a stream between chunks)
                    try:
                        sent = sink.sock.send(frame)
                    except OSError:  # full (EAGAIN) or failed: transport.write retries, buffers or fails it
                        sent = 0
                    if sent < len(frame):
                        raw.write(frame[sent:])
                else:
                    transport = sink.transport
                    if transport.is_closing():  # gone: connection_lost cancels the request
                        continue
                    transport.write(frame)
                sink.enc.completion += tokens
                now = clock()
                lag(now - end if now > end else 0.0)
            else:
                if lags:  # the samples in write order
                    self.delivery.add_many(lags)
                    lags.clear()
                gen.deliver(Chunk(tokens, reason, end))
        self.delivery.add_many(lags)

    def pace(self) -> dict[str, Any]:
        turns = self.monitor.turns if self.monitor is not None else None
        return pace_report(self.engine, self.delivery, self.ttft, turns)

    def reset_pace(self) -> dict[str, Any]:
        before = self.pace()
        self.engine.reset_stats()
        self.delivery = LagStats()
        self.ttft = LagStats()
        if self.monitor is not None:
            self.monitor.reset()
        return before


_Encoder = StreamEncoder | MessagesEncoder | ResponsesEncoder
_ENCODERS: dict[Api, type[_Encoder]] = {
    "chat": StreamEncoder,
    "completions": StreamEncoder,
    "messages": MessagesEncoder,
    "responses": ResponsesEncoder,
}
_ID_PREFIX: dict[Api, str] = {
    "chat": "chatcmpl", "completions": "cmpl", "messages": "msg", "responses": "resp"
}  # fmt: skip


class _Stream:
    """The sink of one streamed response: one write per engine step. Its plain middle steps are written by
    :meth:`ReferenceServer.deliver_step` from ``frames`` (set after the first step where they exist)."""

    __slots__ = (
        "_arrival",
        "_chunked",
        "_conn",
        "_first",
        "_server",
        "enc",
        "frames",
        "raw",
        "sock",
        "transport",
    )

    def __init__(
        self,
        conn: _HttpConnection,
        transport: asyncio.Transport,
        enc: _Encoder,
        arrival: float,
        chunked: bool,
    ) -> None:
        self._conn = conn
        self._server = conn.server
        self.transport = transport
        self.raw, self.sock = _direct(transport)
        self.enc = enc
        self.frames: dict[int, bytes] | None = None
        self._arrival = arrival
        self._chunked = chunked
        self._first = True

    def __call__(self, chunk: Chunk) -> None:
        conn = self._conn
        transport = conn.transport
        if transport is None or transport.is_closing():  # gone: connection_lost cancels the request
            return
        reason = chunk.finish_reason
        enc = self.enc
        if reason == "abort":
            body = enc.abort()
            transport.write(b"%x\r\n%b\r\n0\r\n\r\n" % (len(body), body) if self._chunked else body)
        elif self._chunked:
            if isinstance(enc, StreamEncoder):  # its middle steps are cached frames
                transport.write(enc.frame(chunk.tokens, reason))
                if self.frames is None:
                    self.frames = enc.middle_frames()
            else:
                body = enc.step(chunk.tokens, reason)
                last = b"\r\n0\r\n\r\n" if reason is not None else b"\r\n"
                transport.write(b"%x\r\n%b%b" % (len(body), body, last))
        else:
            transport.write(enc.step(chunk.tokens, reason))
        now = conn.loop.time()
        server = self._server
        server.delivery.add(now - chunk.time if now > chunk.time else 0.0)
        if self._first and reason != "abort":
            self._first = False
            server.ttft.add(now - self._arrival)
        if reason is not None:
            conn.finished(close=not self._chunked)


class _Collect:
    """The sink of a non-streamed response: counts tokens, answers at the last chunk."""

    __slots__ = ("_conn", "_req", "_rid", "_tokens")

    def __init__(self, conn: _HttpConnection, req: ParsedRequest, rid: str) -> None:
        self._conn = conn
        self._req = req
        self._rid = rid
        self._tokens = 0

    def __call__(self, chunk: Chunk) -> None:
        conn = self._conn
        req = self._req
        if chunk.finish_reason == "abort":
            conn.respond(SHUTTING_DOWN.status, SHUTTING_DOWN.body(req.api))
            return
        self._tokens += chunk.tokens
        reason = chunk.finish_reason
        if reason is not None:
            if req.api == "messages":
                body = message_body(req, self._rid, self._tokens, reason)
            elif req.api == "responses":
                body = response_body(req, self._rid, int(time.time()), self._tokens, reason)
            else:
                body = completion_body(req, self._rid, int(time.time()), self._tokens, reason)
            conn.respond(200, body)


@dataclass(slots=True)
class _Head:
    method: str
    path: str
    http10: bool
    keep_alive: bool
    length: int
    body_start: int


class _HttpConnection(asyncio.Protocol):
    """One client connection: parses requests, answers them one at a time (pipelined ones wait).

    A read only appends and stamps; parsing waits its turn in the server's admission queue. A request's
    arrival is the loop time of the read that brought its last byte (``_stamps``: the connection's byte
    count after each read, and when it was read)."""

    def __init__(self, server: ReferenceServer, loop: asyncio.AbstractEventLoop) -> None:
        self.server = server
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.queued = False  # in the server's admission queue
        self._buf = bytearray()
        self._head: _Head | None = None
        self._gen: Generation | None = None  # the request being answered
        self._busy = False
        self._keep_alive = True
        self._received = 0  # bytes read on this connection
        self._consumed = 0  # of them, parsed and dropped from _buf
        self._stamps: deque[tuple[int, float]] = deque()  # (_received after a read, loop time of the read)

    # --- asyncio.Protocol ---------------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.server.connections.add(self)
        sock = transport.get_extra_info("socket")
        if sock is not None:  # asyncio skips it for sockets made with proto 0; Nagle would hold chunks
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        self._buf += data
        self._received += len(data)
        self._stamps.append((self._received, self.loop.time()))
        if self._busy or self.queued:
            return
        head = self._head
        if head is not None and len(self._buf) < head.body_start + head.length:
            return  # the body is not all here yet
        self.server.admission.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.connections.discard(self)
        self.transport = None
        gen, self._gen = self._gen, None
        if gen is not None:
            self.server.engine.cancel(gen)  # the client went away: free the slot (no-op when done)

    # --- requests -------------------------------------------------------------------------------------------
    def parse_next(self) -> None:
        """Parse at most one request and start or answer it (called by the admission queue)."""
        if self._busy or self.transport is None:
            return
        head = self._head
        if head is None:
            end = self._buf.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buf) > MAX_HEAD:
                    self._fail(ApiError(431, "request headers too large"), close=True)
                return
            head = self._head = self._read_head(end)
            if head is None:
                return
        size = head.body_start + head.length
        if len(self._buf) < size:
            return
        arrival = self._arrival(self._consumed + size)
        body = bytes(self._buf[head.body_start : size])
        del self._buf[:size]
        self._consumed += size
        self._head = None
        self._keep_alive = head.keep_alive
        self._busy = True
        try:
            self._route(head, body, arrival)
        except ApiError as exc:
            self._fail(exc)
        except Exception as exc:  # a bug here must not kill the connection silently
            self._fail(ApiError(500, f"{type(exc).__name__}: {exc}", type_="server_error"), close=True)

    def _arrival(self, end: int) -> float:
        """Loop time of the read that brought byte ``end`` (a count since the connection opened)."""
        stamps = self._stamps
        while stamps[0][0] < end:
            stamps.popleft()
        received, at = stamps[0]
        if received == end:  # later requests ended in later reads
            stamps.popleft()
        return at

    def _read_head(self, end: int) -> _Head | None:
        lines = bytes(self._buf[:end]).decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            self._fail(ApiError(400, f"malformed request line: {lines[0][:100]!r}"), close=True)
            return None
        method, target, version = parts
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, colon, value = line.partition(":")
            if colon:
                headers[name.strip().lower()] = value.strip()
        http10 = version == "HTTP/1.0"
        connection = headers.get("connection", "").lower()
        keep_alive = "keep-alive" in connection if http10 else "close" not in connection
        if "transfer-encoding" in headers:
            self._fail(ApiError(411, "send the request body with a Content-Length"), close=True)
            return None
        try:
            length = int(headers.get("content-length", "0"))
        except ValueError:
            length = -1
        if length < 0:
            self._fail(ApiError(400, "malformed Content-Length"), close=True)
            return None
        if length > MAX_BODY:
            self._fail(ApiError(413, f"Payload Too Large: {length} bytes, at most {MAX_BODY}"), close=True)
            return None
        start = end + 4
        if headers.get("expect", "").lower() == "100-continue" and len(self._buf) < start + length:
            self._write(b"HTTP/1.1 100 Continue\r\n\r\n")
        path = target.partition("?")[0]
        return _Head(method, path, http10, keep_alive, length, start)

    def _route(self, head: _Head, body: bytes, arrival: float) -> None:
        server, method, path = self.server, head.method, head.path
        api = ROUTES.get(path)
        if api is not None:
            if method != "POST":
                raise _not_allowed(method, path)
            try:
                self._complete(api, body, head.http10, arrival)
            except ApiError as exc:
                self._fail(exc, api=api)
        elif path in _GET_ROUTES:
            if method != "GET":
                raise _not_allowed(method, path)
            if path == "/metrics":
                self.respond(200, prometheus_text(server.engine, len(server.admission)), _TEXT_PLAIN)
            elif path == "/pace":
                self.respond(200, dumps(server.pace()))
            elif path == "/health":
                self.respond(200, b'{"status":"ok"}')
            else:
                self.respond(200, models_body(server.created, server.engine.params.max_model_len))
        elif path == "/pace/reset":
            if method != "POST":
                raise _not_allowed(method, path)
            self.respond(200, dumps(server.reset_pace()))
        else:
            raise ApiError(404, f"Not Found: {method} {path}", code="not_found")

    def _complete(self, api: Api, body: bytes, http10: bool, arrival: float) -> None:
        engine = self.server.engine
        req = parse_request(api, body, engine.params)
        try:
            gen = engine.submit(
                req.prompt_tokens,
                req.max_tokens,
                min_tokens=req.min_tokens,
                ignore_eos=req.ignore_eos,
                arrival=arrival,
            )
        except RuntimeError:
            raise SHUTTING_DOWN from None
        rid = f"{_ID_PREFIX[api]}-sim{gen.id}"
        self._gen = gen
        if not req.stream:
            gen.sink = _Collect(self, req, rid)
            return
        framing = b"Connection: close\r\n\r\n" if http10 else b"Transfer-Encoding: chunked\r\n\r\n"
        self._write(_STREAM_HEAD + framing)  # the headers at once, as real servers do
        enc = _ENCODERS[api](req, rid, int(time.time()))
        assert self.transport is not None  # parse_next runs only while connected
        gen.sink = _Stream(self, self.transport, enc, arrival, chunked=not http10)

    # --- responses ------------------------------------------------------------------------------------------
    def _write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def respond(self, status: int, body: bytes, content_type: bytes = _JSON) -> None:
        """A complete response with a Content-Length; ends the current request."""
        reason = _REASONS.get(status, "Error").encode()
        conn = b"keep-alive" if self._keep_alive else b"close"
        self._write(
            b"HTTP/1.1 %d %b\r\nContent-Type: %b\r\nContent-Length: %d\r\nConnection: %b\r\n"
            b"Server: tpsbench-reference\r\n\r\n%b" % (status, reason, content_type, len(body), conn, body)
        )
        self.finished(close=not self._keep_alive)

    def _fail(self, exc: ApiError, *, close: bool = False, api: Api = "chat") -> None:
        if close:
            self._keep_alive = False
            self._buf.clear()
            self._stamps.clear()
        self.respond(exc.status, exc.body(api))

    def finished(self, *, close: bool) -> None:
        """The current response is complete: close, or go on with the next request already received."""
        self._gen = None
        self._busy = False
        if close or not self._keep_alive:
            if self.transport is not None:
                self.transport.close()
            return
        if self._buf:
            self.server.admission.add(self)  # parsed in a later loop turn, never inside the engine's commit


_SELECTOR_TRANSPORT = getattr(selector_events, "_SelectorSocketTransport", None)


def _direct(transport: asyncio.Transport) -> tuple[Any, Any]:
    """(transport, its socket) where the transport is asyncio's selector socket transport, whose first
    step of ``write`` (send at once while nothing is buffered) :meth:`ReferenceServer.deliver_step` does
    itself, saving the checks and a call per chunk; else (None, None): ``transport.write`` it is."""
    names = ("_sock", "_buffer", "_closing")
    if type(transport) is _SELECTOR_TRANSPORT and all(hasattr(transport, n) for n in names):
        raw: Any = transport
        return raw, raw._sock
    return None, None


_GET_ROUTES = frozenset({"/v1/models", "/metrics", "/pace", "/health"})


def _not_allowed(method: str, path: str) -> ApiError:
    return ApiError(405, f"Method Not Allowed: {method} {path}", code="method_not_allowed")


@dataclass
class ServerHandle:
    """A running in-process server: ``url`` is the OpenAI base URL (``http://127.0.0.1:PORT/v1``)."""

    host: str
    port: int
    server: ReferenceServer
    _listener: asyncio.Server
    unix_path: str | None = None  # also listening on this Unix socket (``unix_path`` of start_server)
    _unix_listener: asyncio.Server | None = None

    @property
    def root(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def url(self) -> str:
        return self.root + "/v1"

    @property
    def engine(self) -> Engine:
        return self.server.engine

    async def stop(self) -> None:
        """Stop the engine (open streams end with an error event), then close the listener and every
        connection."""
        listeners = [x for x in (self._listener, self._unix_listener) if x is not None]
        for listener in listeners:
            listener.close()
        if self.unix_path is not None:
            with contextlib.suppress(OSError):
                os.unlink(self.unix_path)
        await self.server.engine.stop()
        await asyncio.sleep(0)  # let the last writes go out
        for conn in list(self.server.connections):
            if conn.transport is not None:
                conn.transport.close()
        for listener in listeners:
            await listener.wait_closed()
        await asyncio.sleep(0)


async def start_server(
    host: str = "127.0.0.1",
    port: int = 0,
    params: ModelParams = DEFAULT_PARAMS,
    seed: int = 0,
    *,
    precise_s: float = 0.001,
    per_turn: int = PER_TURN,
    accept_per_turn: int = ACCEPT_PER_TURN,
    unix_path: str | None = None,
) -> ServerHandle:
    """Start the reference endpoint on the running loop; ``port=0`` picks a free port. ``per_turn``,
    ``accept_per_turn``: requests parsed, connections accepted per loop turn (:mod:`.admission`). On a
    loop made by :func:`.admission.new_event_loop`, ``/pace`` also reports its turns (``loop_turn_cpu_s``).

    ``unix_path``: serve the same endpoint on this Unix socket too (replacing a stale file). A client on
    this host that connects there skips the kernel's TCP loopback path, which costs the sender the
    receiver's side of every packet too (measured here: ~6.8 us per small send over TCP, ~2.2 us over a
    Unix socket): at 2,048 streams that is a third of the simulator's core."""
    engine = Engine(ReferenceModel(params), seed=seed, precise_s=precise_s)
    await engine.start()
    server = ReferenceServer(engine, per_turn=per_turn)
    loop = asyncio.get_running_loop()
    selector = getattr(loop, "_selector", None)
    if isinstance(selector, BoundedEpollSelector):
        selector.monitor = server.monitor = TurnMonitor(engine)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    # asyncio accepts up to `backlog` connections in one callback (and sets each up in the next turn): a
    # sweep's thousands at once would hold the loop for tens of ms. So ACCEPT_PER_TURN per turn, and the
    # kernel's queue set deep again (a short one drops SYNs: 1 s retries).
    listener = await loop.create_server(
        lambda: _HttpConnection(server, loop), sock=sock, backlog=accept_per_turn
    )
    sock.listen(LISTEN_BACKLOG)
    unix_listener = None
    if unix_path is not None:
        usock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(unix_path)
        usock.bind(unix_path)
        unix_listener = await loop.create_unix_server(
            lambda: _HttpConnection(server, loop), sock=usock, backlog=accept_per_turn
        )
        usock.listen(LISTEN_BACKLOG)  # a Unix socket's full queue refuses at once (EAGAIN), no retry
    return ServerHandle(host, sock.getsockname()[1], server, listener, unix_path, unix_listener)
