"""An HTTP/1.1 client on :class:`asyncio.Protocol` with h11 framing: nothing between the wire and the clock.

    transport = H11Transport()
    raw = await transport.stream(url, headers, body, Timeouts())
    await transport.aclose()

Why a third transport (see :mod:`.base` for the contract it shares): the library transports
stamp later than the bytes arrive. On Python 3.11 aiohttp writes the request body from a separate task
(2.5-8 ms after ``send_ns`` under load), and its ``iter_any()`` yields when the consumer task is scheduled,
not when the data reached the process. Here:

- the request is serialized first, then ``send_ns`` is stamped and the bytes go to ``transport.write()``
  in the same synchronous step (on a new connection, ``send_ns`` precedes the connect: setup is latency);
- every ``data_received`` stamps the clock before anything else: the protocol callback is the earliest
  point the bytes are visible to Python. h11 strips the framing (Content-Length, chunked, read-until-close)
  in the same callback and the body bytes are appended with that stamp; the waiting task is woken only
  twice per request (first body byte, end), not once per read, which also makes it the cheapest per chunk;
- finished exchanges are handed back one per event-loop iteration (:class:`_Turns`), so the work callers do
  between requests never holds up the stamping of other streams' bytes.

Connections: a keep-alive pool per (scheme, host, port), most recently used first; a connection goes back
to the pool as soon as h11 says the exchange is complete and reusable, and is closed on any error,
timeout or cancellation. A stale idle connection (closed by the server while idle) is dropped when its
close is seen. ``https`` uses the run's TLS context (``endpoint.tls``); a proxy from the environment is
used as :mod:`.connect` says (CONNECT for https). TCP_NODELAY is set on every connection, so the request
leaves at once.

The resend rule (no request lost to the pool): a server may close an idle keep-alive connection at any
moment (llama.cpp's llama-server does, between two requests of a closed loop), and its FIN can be in
flight while the connection is picked and written to. A request whose *reused* connection then closes
(EOF or reset) before *any* response byte arrived goes out once more, on a fresh connection, and its
record says so (``RawExchange.resent`` -> ``RequestRecord.resent``). Why this is safe for a benchmark:
no byte came back, so the server produced nothing observable for that attempt; the send a user's client
would retry the same way (curl and browsers do) is the one measured: ``send_ns`` is stamped again just
before the fresh connection is opened (its setup is latency, as for any new connection), so the record's
TTFT and e2e cover only the attempt that was answered. What it costs: at most one extra request per
stale connection, which a server that did start work on the first one (it cannot have produced tokens the
client saw) may spend some compute on; the time lost on the dead connection (the write and the close,
typically well under a millisecond) is not in the record. Nothing else is retried: a fresh connection
that closes unanswered, a response cut after its first byte, a second failure, and every timeout are
recorded as errors (``CONNECT``, ``STREAM_CUT``, ``TIMEOUT_*``), because there the server did answer,
or failed on its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections import deque
from collections.abc import Callable, Mapping
from typing import cast

import h11

from tpsbench import __version__
from tpsbench.client.proxy import ProxySettings
from tpsbench.client.transport.base import (
    MAX_ERROR_BODY,
    Deadlines,
    RawExchange,
    classify_status,
    decode_error_body,
    record_failure,
)
from tpsbench.client.transport.chunked import ChunkedBody
from tpsbench.client.transport.connect import Origin as _Origin
from tpsbench.client.transport.connect import open_connection, origin_for
from tpsbench.core.record import ErrorKind, default_clock
from tpsbench.core.timeouts import Timeouts

__all__ = ["H11Transport"]

_USER_AGENT = f"tpsbench/{__version__}"


class _ConnectTimeout(Exception):
    """No connection within ``Timeouts.connect_s`` (our own type: a socket ETIMEDOUT mid-body is not one)."""


class _ConnectionClosed(ConnectionError):
    """The server closed the connection before the response ended."""


class _Unanswered(_ConnectionClosed):
    """The connection closed (EOF or reset) before any byte of the response: see the resend rule."""


class _Pool:
    """Idle keep-alive connections per origin (a dict as an ordered set: ``popitem`` is LIFO, so the warmest
    connection is reused first), plus every open connection so ``aclose`` can close them all."""

    __slots__ = ("idle", "open")

    def __init__(self) -> None:
        self.idle: dict[tuple[str, str, int], dict[_Connection, None]] = {}
        self.open: set[_Connection] = set()

    def take(self, key: tuple[str, str, int]) -> _Connection | None:
        idle = self.idle.get(key)
        while idle:
            conn, _ = idle.popitem()
            if conn.usable():
                return conn
            conn.close()
        return None

    def release(self, conn: _Connection) -> None:
        self.idle.setdefault(conn.key, {})[conn] = None

    def discard(self, conn: _Connection) -> None:
        self.open.discard(conn)
        idle = self.idle.get(conn.key)
        if idle is not None:
            idle.pop(conn, None)


class _Connection(asyncio.Protocol):
    """One keep-alive connection; serves one exchange at a time, straight from the protocol callbacks.

    While an exchange is attached, the protocol fills its :class:`RawExchange` and resolves two futures:
    ``first`` (first body byte, or the headers of a non-2xx response, or the end) and ``done`` (the end;
    its result is the exception that ended the exchange, or None).
    """

    __slots__ = (
        "_chunk",
        "_clock",
        "_done",
        "_error_body",
        "_ex",
        "_first",
        "_got_first",
        "_heard",
        "_last",
        "_pool",
        "closed",
        "h11",
        "key",
        "transport",
    )

    def __init__(self, pool: _Pool, key: tuple[str, str, int], clock: Callable[[], int]) -> None:
        self._pool = pool
        self.key = key
        self._clock = clock
        self.h11 = h11.Connection(h11.CLIENT)
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self._ex: RawExchange | None = None
        self._first: asyncio.Future[None] | None = None
        self._done: asyncio.Future[BaseException | None] | None = None
        self._got_first = False
        self._heard = False  # a byte of the current exchange's response arrived
        self._error_body = bytearray()
        self._chunk: ChunkedBody | None = None  # a 2xx chunked body, framed here instead of by h11
        self._last = b""  # the current body's latest payload (see _body)

    # --- asyncio.Protocol ---------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            # asyncio sets it too; uvloop and TLS wrappers differ, so say it once more
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._pool.open.add(self)

    def data_received(self, data: bytes) -> None:
        t = self._clock()  # first thing: the earliest moment these bytes are visible to Python
        chunk = self._chunk
        if chunk is not None:  # the streaming case: one frame or a few per read, no h11 events
            self._body(t, chunk, data)
            return
        if self._ex is None:  # bytes no request asked for: the connection's state is unknown
            self.close()
            return
        self._heard = True
        self.h11.receive_data(data)
        self._pump(t)

    def eof_received(self) -> bool:
        if self._chunk is not None:  # headers came: bytes were heard
            self._end(_ConnectionClosed("connection closed before the response ended"), False)
        elif self._ex is not None:
            if not self._heard:
                self._end(_Unanswered("connection closed before any byte of the response"), False)
                return False
            self.h11.receive_data(b"")  # ends a read-until-close body; a framed one fails as cut short
            self._pump(self._clock())
        return False  # let the transport close

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._pool.discard(self)
        if self._ex is not None:
            if not self._heard:
                why = f" ({type(exc).__name__}: {exc})" if exc else ""
                self._end(_Unanswered(f"connection closed before any byte of the response{why}"), False)
            else:
                self._end(exc or _ConnectionClosed("connection closed before the response ended"), False)

    # --- one exchange ---------------------------------------------------------------------------------------

    def usable(self) -> bool:
        return (
            not self.closed
            and self.transport is not None
            and not self.transport.is_closing()
            and self.h11.our_state is h11.IDLE
            and self.h11.their_state is h11.IDLE
        )

    def attach(
        self, ex: RawExchange, origin: _Origin, headers: Mapping[str, str], body: bytes
    ) -> tuple[bytes, asyncio.Future[None], asyncio.Future[BaseException | None]]:
        """Start an exchange: its request bytes (to ``write`` right after stamping) and its futures."""
        self._ex = ex  # from here on, a failure closes the connection (see H11Transport.stream)
        if self.closed:  # lost between connect and now
            raise _ConnectionClosed("connection closed before the request was sent")
        fields: list[tuple[str, str]] = [("Host", origin.host_header), ("User-Agent", _USER_AGENT)]
        given = {k.lower() for k in headers}
        fields = [f for f in fields if f[0].lower() not in given]
        fields += headers.items()
        if origin.proxy_headers:
            fields += origin.proxy_headers
        fields.append(("Content-Length", str(len(body))))
        conn = self.h11
        wire = b"".join(
            (
                conn.send(h11.Request(method="POST", target=origin.target, headers=fields)) or b"",
                conn.send(h11.Data(data=body)) or b"",
                conn.send(h11.EndOfMessage()) or b"",
            )
        )
        loop = asyncio.get_running_loop()
        self._first = first = loop.create_future()
        self._done = done = loop.create_future()
        self._got_first = self._heard = False
        self._last = b""
        return wire, first, done

    def write(self, wire: bytes) -> None:
        assert self.transport is not None
        self.transport.write(wire)

    def owns(self, ex: RawExchange) -> bool:
        return self._ex is ex

    def abandon(self) -> None:
        """The caller gave up (timeout, cancellation) or resends: keep what came, close the connection."""
        if self._ex is not None:
            self._finish_detail(self._ex)
            self._ex = self._first = self._done = None
        self.close()

    def close(self) -> None:
        self.closed = True
        self._pool.discard(self)
        if self.transport is not None:
            self.transport.close()

    def _pump(self, t: int) -> None:
        """Apply every complete h11 event in the buffer; ``t`` is the arrival stamp of the bytes."""
        ex = self._ex
        assert ex is not None
        conn = self.h11
        try:
            while True:
                ev = conn.next_event()
                kind = type(ev)
                if kind is h11.Data:
                    data = cast(h11.Data, ev).data
                    if ex.error is None:
                        ex.reads.add(t, bytes(data))
                        if not self._got_first:
                            self._got_first = True
                            assert self._first is not None
                            if not self._first.done():  # cancelled with its task: nobody waits
                                self._first.set_result(None)
                    else:  # a non-2xx body: kept (bounded) for error_detail
                        self._error_body += data
                        if len(self._error_body) >= MAX_ERROR_BODY:
                            ex.end_ns = t
                            self._end(None, False)  # enough of it; the rest is not worth reading
                            return
                elif kind is h11.EndOfMessage:
                    ex.end_ns = t
                    ex.body_complete = ex.error is None
                    reusable = conn.our_state is h11.DONE and conn.their_state is h11.DONE
                    self._end(None, reusable)
                    return
                elif kind is h11.Response:
                    resp = cast(h11.Response, ev)
                    status = resp.status_code
                    ex.headers_ns = t
                    ex.status = status
                    ex.error = classify_status(status)
                    if ex.error is not None and not self._got_first:
                        self._got_first = True  # an error's body is not a first token
                        assert self._first is not None
                        if not self._first.done():  # cancelled with its task: nobody waits
                            self._first.set_result(None)
                    elif ex.error is None and (chunked := ChunkedBody.for_response(resp)) is not None:
                        # From here the body is framed by _body; h11 is replaced by a fresh one at its end.
                        self._chunk = chunked
                        rest = conn.trailing_data[0]
                        if rest:
                            self._body(t, chunked, rest)
                        return
                elif ev is h11.NEED_DATA or ev is h11.PAUSED:
                    return
                elif kind is h11.ConnectionClosed:
                    self._end(_ConnectionClosed("connection closed before the response ended"), False)
                    return
                # InformationalResponse (1xx): the final response follows
        except h11.RemoteProtocolError as exc:
            self._end(exc, False)

    def _finish_detail(self, ex: RawExchange) -> None:
        if ex.error is not None and ex.status is not None:
            ex.error_detail = decode_error_body(bytes(self._error_body[:MAX_ERROR_BODY]), ex.status)
        self._error_body = bytearray()

    def _body(self, t: int, chunk: ChunkedBody, data: bytes) -> None:
        """Body bytes of a chunked 2xx response: keep the payload with its stamp, end at the last chunk."""
        ex = self._ex
        assert ex is not None
        try:
            payload, ended = chunk.feed(data)
        except ValueError as exc:
            self._end(h11.RemoteProtocolError(f"bad chunked body: {exc}"), False)
            return
        if payload:
            # A payload like the last one is kept as that same object: a token stream repeats its bytes
            # (the reference endpoint's middle chunks are identical), so memory stays flat and the decoder's
            # read memo hashes it once (apis.base.iter_events).
            if payload == self._last:
                payload = self._last
            else:
                self._last = payload
            reads = ex.reads  # ReadLog.add inlined: the one place that writes its columns (see ReadLog)
            reads.stamps.append(t)
            reads.payloads.append(payload)
            if not self._got_first:
                self._got_first = True
                assert self._first is not None
                if not self._first.done():  # cancelled with its task: nobody waits
                    self._first.set_result(None)
        if ended:
            ex.end_ns = t
            ex.body_complete = True
            reusable = chunk.keep_alive and not chunk.extra
            self._end(None, reusable, fresh=True)

    def _end(self, exc: BaseException | None, reusable: bool, *, fresh: bool = False) -> None:
        ex, first, done = self._ex, self._first, self._done
        assert ex is not None and first is not None and done is not None
        self._ex = self._first = self._done = None
        self._chunk = None
        self._finish_detail(ex)
        if exc is not None and not ex.end_ns:
            ex.end_ns = self._clock()
        if not first.done():
            first.set_result(None)
        if not done.done():  # cancelled with its task (Ctrl-C) before the task's finally abandoned us
            done.set_result(
                exc
            )  # a result, not set_exception: no "exception never retrieved" if nobody waits
        if reusable:
            if fresh:  # h11 saw only the headers: a new state machine is its next cycle
                self.h11 = h11.Connection(h11.CLIENT)
            else:
                self.h11.start_next_cycle()
            self._pool.release(self)
        else:
            self.close()


class _Turns:
    """Hands finished exchanges back to their callers one per event-loop iteration.

    What a caller does after ``stream()`` returns (decode the events, write the record, build and send its
    next request: ~0.3 ms) runs in its task, and asyncio runs every ready task before it polls the sockets
    again. When hundreds of streams end together (closed-loop users in step; a server's decode batch),
    that is tens of milliseconds during which arriving bytes wait unstamped. Taking turns bounds that wait
    by one caller's work: the sockets are polled between any two. Nothing measured waits: the end was
    stamped when it arrived, and a next request's ``send_ns`` is stamped when it is actually sent.
    """

    __slots__ = ("_scheduled", "_waiters")

    def __init__(self) -> None:
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._scheduled = False

    async def wait(self) -> None:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        self._waiters.append(fut)
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._release_one, loop)
        await fut  # a cancelled waiter is skipped

    def _release_one(self, loop: asyncio.AbstractEventLoop) -> None:
        waiters = self._waiters
        while waiters:
            fut = waiters.popleft()
            if not fut.done():
                fut.set_result(None)  # its task runs next iteration, after this one's I/O callbacks
                break
        if waiters:
            loop.call_soon(self._release_one, loop)
        else:
            self._scheduled = False


class H11Transport:
    """The protocol-level transport: exact timestamps, lowest CPU per chunk (see the module docstring).

    ``max_connections=None`` means no limit (the runner bounds concurrency itself); with a limit, waiting
    for a free connection happens after ``send_ns``, inside TTFT, as with the other transports.
    """

    def __init__(
        self,
        *,
        clock: Callable[[], int] = default_clock,
        max_connections: int | None = None,
        proxies: ProxySettings | None = None,
        tls: ssl.SSLContext | None = None,
        unix_socket: str | None = None,
    ) -> None:
        self._clock = clock
        self._pool = _Pool()
        self._unix_socket = unix_socket
        self._origins: dict[str, _Origin] = {}
        self._limit = asyncio.Semaphore(max_connections) if max_connections else None
        self._proxies = proxies
        self._tls = tls
        self._turns = _Turns()

    def _origin(self, url: str) -> _Origin:
        origin = self._origins.get(url)
        if origin is None:
            proxy = self._proxies.for_url(url) if self._proxies is not None else None
            origin = self._origins[url] = origin_for(url, proxy)
        return origin

    async def _connect(self, origin: _Origin, connect_s: float) -> _Connection:
        tls: ssl.SSLContext | None = None
        if origin.tls:
            tls = self._tls = self._tls or ssl.create_default_context()
        try:
            async with asyncio.timeout(connect_s):
                conn = await open_connection(
                    lambda: _Connection(self._pool, origin.key, self._clock),
                    origin.host,
                    origin.port,
                    tls=tls,
                    proxy=origin.proxy,
                    user_agent=_USER_AGENT,
                    unix_socket=self._unix_socket,
                )
        except TimeoutError:  # ours (the outer deadlines surface as cancellation here), or the OS's ETIMEDOUT
            raise _ConnectTimeout(f"no connection to {origin.host_header} within {connect_s:g} s") from None
        return conn

    async def stream(
        self, url: str, headers: Mapping[str, str], body: bytes, timeouts: Timeouts
    ) -> RawExchange:
        """POST ``body`` and record the response as it arrives; never raises except on cancellation."""
        clock = self._clock
        ex = RawExchange(send_ns=0, end_ns=0)
        deadlines = Deadlines(timeouts)
        scope = asyncio.timeout_at(deadlines.first)
        first_phase = True  # no body byte yet: the first-token deadline applies
        conn: _Connection | None = None
        limit = self._limit
        limited = False
        try:
            async with scope:
                origin = self._origin(url)
                if limit is not None:
                    ex.send_ns = clock()  # a wait for a free connection is client-side latency: in TTFT
                    await limit.acquire()
                    limited = True
                conn = self._pool.take(origin.key)
                if conn is not None:
                    wire, first, done = conn.attach(ex, origin, headers, body)
                    if not limited:
                        ex.send_ns = clock()
                    conn.write(wire)  # synchronously, right after the stamp: no task in between
                    await first
                    if done.done() and isinstance(done.result(), _Unanswered):
                        conn = None  # the resend rule (module docstring): once, on a fresh connection
                        ex.resent = True
                        ex.end_ns = 0
                if conn is None:
                    # a new connection's setup is part of the request's latency; a resend's t_send is its own
                    if not limited or ex.resent:
                        ex.send_ns = clock()
                    conn = await self._connect(origin, timeouts.connect_s)
                    wire, first, done = conn.attach(ex, origin, headers, body)
                    conn.write(wire)
                    await first
                first_phase = False
                scope.reschedule(deadlines.request)
                exc = await done
                if exc is not None:
                    raise exc
        except Exception as exc:  # CancelledError is a BaseException: it propagates
            record_failure(
                ex, exc, expired=scope.expired(), first_phase=first_phase, deadlines=deadlines,
                timeouts=timeouts, classify=_classify,
            )  # fmt: skip
        finally:
            if conn is not None and conn.owns(ex):
                conn.abandon()
            if limited:
                assert limit is not None
                limit.release()
        if not ex.end_ns:  # the protocol stamps the end it saw; otherwise the end is now
            ex.end_ns = clock()
        await self._turns.wait()
        return ex

    async def aclose(self) -> None:
        """Close every connection; requests still in flight end as cut."""
        for conn in list(self._pool.open):
            conn.close()
        self._pool = _Pool()
        await asyncio.sleep(0)  # let the transports' close callbacks run (sockets closed, no ResourceWarning)


def _classify(exc: Exception, status: int | None) -> ErrorKind:
    if isinstance(exc, _ConnectTimeout):
        return ErrorKind.TIMEOUT_CONNECT
    if isinstance(exc, OSError | h11.RemoteProtocolError):  # ConnectionError, ssl.SSLError included
        return ErrorKind.CONNECT if status is None else ErrorKind.STREAM_CUT
    return ErrorKind.OTHER
