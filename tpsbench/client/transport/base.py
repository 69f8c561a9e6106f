"""Transports: send one streaming POST and record what arrived, when. Nothing else happens per read.

A :class:`Transport` returns a :class:`RawExchange`: the status, when the headers came, every body read as
``(arrival ns, bytes)`` (a :class:`ReadLog`), and the error if any. Parsing (SSE, JSON, tokens) is done
afterwards by :mod:`tpsbench.client.client`, so the read loop costs one clock call and one append per read.

    transport = make_transport("h11")  # tpsbench.client.transport; the default, see .h11
    raw = await transport.stream(url, headers, body, Timeouts())
    await transport.aclose()

Timing (all on the clock the transport was given):
``send_ns`` is stamped right before the request is handed to the HTTP library; ``headers_ns`` when the
response headers are parsed; each read when the library hands its bytes over; ``end_ns`` when the body
ended or the error was caught.

Timeouts (``core.timeouts.Timeouts``), measured on the event loop's clock from just before ``send_ns``:

- ``connect_s``: establishing a new connection -> ``TIMEOUT_CONNECT``;
- ``first_token_s``: no body byte yet (connect and headers included) -> ``TIMEOUT_FIRST_TOKEN``;
- ``request_s``: the whole exchange -> ``TIMEOUT_REQUEST``.

Other errors: refused / DNS / TLS / dropped before any response -> ``CONNECT``; dropped mid-body ->
``STREAM_CUT`` (the reads so far are kept); non-2xx -> ``HTTP_429`` / ``HTTP_4XX`` / ``HTTP_5XX`` (others:
``OTHER``) with the start of the body in ``error_detail``. ``stream()`` never raises for these, except
:class:`asyncio.CancelledError`, which propagates so Ctrl-C works: the *caller* records the request as
``ErrorKind.CANCELLED`` (see ``Client.cancelled_record``).

The resend rule (stated, and argued safe for a benchmark, in :mod:`.h11`, which applies it in its own
protocol): a request whose *reused* keep-alive connection closes before *any* byte of the response goes
out once more, on a fresh connection, with ``send_ns`` stamped again and ``RawExchange.resent`` set.
:class:`StreamingTransport` applies it for the library transports: each attempt gets an :class:`Attempt`
in :data:`current_attempt`, which the subclass's connection hooks fill in (the connection had served a
request before; a response byte arrived), and an attempt that failed as ``CONNECT`` with the connection
reused and nothing heard is sent again, once. Nothing else is resent: a timeout, a fresh connection, a
response with even one byte, a second failure.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from array import array
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Protocol, overload

from tpsbench.core.record import ErrorKind
from tpsbench.core.timeouts import Timeouts

__all__ = [
    "MAX_ERROR_BODY",
    "Attempt",
    "Deadlines",
    "RawExchange",
    "ReadLog",
    "StreamingTransport",
    "Transport",
    "classify_status",
    "current_attempt",
    "decode_error_body",
    "record_failure",
]

MAX_ERROR_BODY = 64 * 1024  # bytes of a non-2xx body kept in error_detail (the client trims it further)


class ReadLog(Sequence[tuple[int, bytes]]):
    """The body reads of one exchange, in arrival order: a sequence of ``(arrival ns, bytes)``.

    Stored as two columns, the stamps in an ``array('q')`` and the payloads in a list, not as one tuple per
    read: at the throughput end a client holds 2,048 bodies of 1,000+ reads each, and a tuple and an int
    per read (88 bytes, scattered over the heap) made the decode after the stream walk cold memory. Here a
    body's stamps are one contiguous block, and a repeated payload costs a pointer (:mod:`.h11`).

    A read is kept with :meth:`add`. The one exception is the h11 transport's chunked-body callback
    (``h11._Connection._body``, every chunk of every stream at the throughput end), which appends to the
    two columns itself: the method call cost 3% of that read stage (1.09 -> 1.13 us a chunk,
    ``benchmarks/client_cost.py``). Nothing else writes the columns.

        >>> log = ReadLog()
        >>> log.add(5, b"a"); log.add(7, b"b")
        >>> list(log), log[-1], len(log), log == [(5, b"a"), (7, b"b")]
        ([(5, b'a'), (7, b'b')], (7, b'b'), 2, True)
    """

    __slots__ = ("payloads", "stamps")

    def __init__(self, reads: Sequence[tuple[int, bytes]] = ()) -> None:
        self.stamps = array("q", [t for t, _ in reads])
        self.payloads: list[bytes] = [data for _, data in reads]

    def add(self, t: int, data: bytes) -> None:
        """Keep one read: its arrival stamp and its bytes (``h11._Connection._body`` inlines this)."""
        self.stamps.append(t)
        self.payloads.append(data)

    def __len__(self) -> int:
        return len(self.payloads)

    def __iter__(self) -> Iterator[tuple[int, bytes]]:
        return zip(self.stamps, self.payloads, strict=True)

    @overload
    def __getitem__(self, i: int) -> tuple[int, bytes]: ...
    @overload
    def __getitem__(self, i: slice) -> list[tuple[int, bytes]]: ...
    def __getitem__(self, i: int | slice) -> tuple[int, bytes] | list[tuple[int, bytes]]:
        if isinstance(i, slice):
            return list(zip(self.stamps[i], self.payloads[i], strict=True))
        return self.stamps[i], self.payloads[i]

    def __eq__(self, other: object) -> bool:
        if isinstance(other, ReadLog):
            return self.stamps == other.stamps and self.payloads == other.payloads
        if isinstance(other, list):
            return list(self) == other
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # mutable, like a list

    def __repr__(self) -> str:
        return f"ReadLog({list(self)!r})"


@dataclass(slots=True, kw_only=True)
class RawExchange:
    """What one streaming request returned, unparsed. Times are clock nanoseconds.

    ``body_complete`` is True when the body was read to its end without a transport error. ``resent``
    is True when the request went out a second time because its reused keep-alive connection closed before
    any response byte (the resend rule, :mod:`.h11`); ``send_ns`` is then the second send's.
    """

    send_ns: int
    end_ns: int
    status: int | None = None
    headers_ns: int | None = None
    reads: ReadLog = field(default_factory=ReadLog)
    error: ErrorKind | None = None
    error_detail: str | None = None
    body_complete: bool = False
    resent: bool = False


class Attempt:
    """What a library transport saw of one attempt of a request (see the resend rule above).

    ``reused``: the connection the request was written to had served a request before (it came from the
    pool); ``heard``: at least one byte of the response arrived on it; ``connection``: whatever object the
    subclass knows that connection by. The subclass's connection hooks set them, from the task that sends
    the request (``current_attempt``) or from the protocol the attempt was bound to.
    """

    __slots__ = ("connection", "heard", "reused")

    def __init__(self) -> None:
        self.reused = False
        self.heard = False
        self.connection: object = None


current_attempt: ContextVar[Attempt | None] = ContextVar("tpsbench_transport_attempt", default=None)


class Transport(Protocol):
    """The network seam: the client only talks to this."""

    async def stream(
        self, url: str, headers: Mapping[str, str], body: bytes, timeouts: Timeouts
    ) -> RawExchange: ...

    async def aclose(self) -> None: ...


def classify_status(status: int) -> ErrorKind | None:
    """``None`` for 2xx; ``HTTP_429``, ``HTTP_4XX``, ``HTTP_5XX``; ``OTHER`` for 1xx/3xx (redirects are not
    followed: a POST that gets redirected is a misconfigured base URL)."""
    if 200 <= status < 300:
        return None
    if status == 429:
        return ErrorKind.HTTP_429
    if 400 <= status < 500:
        return ErrorKind.HTTP_4XX
    if 500 <= status < 600:
        return ErrorKind.HTTP_5XX
    return ErrorKind.OTHER


def _describe(exc: BaseException) -> str:
    msg = str(exc)
    return f"{type(exc).__name__}: {msg}" if msg else type(exc).__name__


def decode_error_body(data: bytes, status: int) -> str:
    text = data.decode("utf-8", errors="replace").strip()
    return text if text else f"HTTP {status} with an empty body"


class Deadlines:
    """The two loop-time deadlines of one request: first body byte, and whole request."""

    __slots__ = ("first", "first_is_request", "request")

    def __init__(self, timeouts: Timeouts) -> None:
        now = asyncio.get_running_loop().time()
        self.request = now + timeouts.request_s
        self.first = min(now + timeouts.first_token_s, self.request)
        self.first_is_request = self.first == self.request

    def expired_kind(self, first_phase: bool) -> ErrorKind:
        if first_phase and not self.first_is_request:
            return ErrorKind.TIMEOUT_FIRST_TOKEN
        return ErrorKind.TIMEOUT_REQUEST


def record_failure(
    ex: RawExchange,
    exc: Exception,
    *,
    expired: bool,
    first_phase: bool,
    deadlines: Deadlines,
    timeouts: Timeouts,
    classify: Callable[[Exception, int | None], ErrorKind],
) -> None:
    """Put the error of a failed exchange on it: our own deadline when one expired, else the library's
    error as ``classify`` names it. An HTTP status error already recorded stays (its body may have failed)."""
    if ex.error is not None:
        return
    if expired:
        ex.error = deadlines.expired_kind(first_phase)
        if ex.error is ErrorKind.TIMEOUT_FIRST_TOKEN:
            ex.error_detail = f"no response byte within {timeouts.first_token_s:g} s"
        else:
            ex.error_detail = f"request took longer than {timeouts.request_s:g} s"
    else:
        ex.error = classify(exc, ex.status)
        ex.error_detail = _describe(exc)


class StreamingTransport(ABC):
    """The shared read loop and error handling; subclasses only open the request and classify errors."""

    def __init__(self, clock: Callable[[], int]) -> None:
        self._clock = clock

    @abstractmethod
    def _open(
        self, url: str, headers: Mapping[str, str], body: bytes, timeouts: Timeouts, *, fresh: bool
    ) -> AbstractAsyncContextManager[tuple[int, AsyncIterator[bytes]]]:
        """Send the request; enter once the headers arrived, giving the status and the body's reads.
        ``fresh``: on a new connection, none from the pool (a resend: another pooled one may be stale too).

        The connection it goes out on fills in :data:`current_attempt` (``reused``, ``heard``); a subclass
        whose connections do not leave it as is (no resend, which is always safe)."""

    @abstractmethod
    def _classify(self, exc: Exception, status: int | None) -> ErrorKind:
        """The kind of a library error (not one of our deadlines); ``status`` is None before headers."""

    @abstractmethod
    async def aclose(self) -> None:
        """Close every connection; the transport is unusable afterwards."""

    async def stream(
        self, url: str, headers: Mapping[str, str], body: bytes, timeouts: Timeouts
    ) -> RawExchange:
        """POST ``body`` and record the response as it arrives; never raises except on cancellation.

        An attempt that the resend rule (module docstring) covers goes out once more; nothing else is
        retried."""
        ex = RawExchange(send_ns=0, end_ns=0)
        deadlines = Deadlines(timeouts)
        scope = asyncio.timeout_at(deadlines.first)
        try:
            async with scope:
                while True:
                    attempt = Attempt()
                    token = current_attempt.set(attempt)
                    try:
                        await self._attempt(ex, url, headers, body, timeouts, deadlines, scope)
                        break
                    except Exception as exc:  # CancelledError is a BaseException: it propagates
                        if ex.resent or not self._unanswered(ex, attempt, exc):
                            raise
                        ex.resent = True  # the resend rule: once, on a fresh connection
                    finally:
                        current_attempt.reset(token)
        except Exception as exc:
            record_failure(
                ex, exc, expired=scope.expired(), first_phase=not ex.reads,
                deadlines=deadlines, timeouts=timeouts, classify=self._classify,
            )  # fmt: skip
        ex.end_ns = self._clock()
        return ex

    def _unanswered(self, ex: RawExchange, attempt: Attempt, exc: Exception) -> bool:
        """Whether a failed attempt is one the resend rule covers: a reused connection, no response byte."""
        return (
            attempt.reused
            and not attempt.heard
            and ex.status is None
            and not ex.reads
            and self._classify(exc, None) is ErrorKind.CONNECT
        )

    async def _attempt(
        self,
        ex: RawExchange,
        url: str,
        headers: Mapping[str, str],
        body: bytes,
        timeouts: Timeouts,
        deadlines: Deadlines,
        scope: asyncio.Timeout,
    ) -> None:
        """One send of the request, filling ``ex``; raises what the library raised."""
        clock = self._clock
        reads = ex.reads
        ex.send_ns = clock()
        async with self._open(url, headers, body, timeouts, fresh=ex.resent) as (status, body_reads):
            ex.headers_ns = clock()
            ex.status = status
            ex.error = classify_status(status)
            if ex.error is None:
                first_phase = True  # no body byte yet: the first-token deadline applies
                # The hot loop: a timestamp and the bytes, nothing else.
                async for data in body_reads:
                    reads.add(clock(), data)
                    if first_phase:
                        first_phase = False
                        scope.reschedule(deadlines.request)
                ex.body_complete = True
            else:
                scope.reschedule(deadlines.request)
                buf = bytearray()
                try:
                    async for data in body_reads:
                        buf += data
                        if len(buf) >= MAX_ERROR_BODY:
                            break
                finally:  # keep what came even if the body failed or timed out
                    ex.error_detail = decode_error_body(bytes(buf[:MAX_ERROR_BODY]), status)
