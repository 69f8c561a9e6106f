"""The raw data tpsbench records: one :class:`RequestRecord` per request.

Everything downstream (metrics, summaries, reports, the gate) is a pure function of these records, so they
hold only what was observed: monotonic timestamps in integer nanoseconds, the token count of each chunk, the
server's usage and the error, if any. All timestamps of one run come from one clock (``time.perf_counter_ns``
by default, which is CLOCK_MONOTONIC on Linux and so shared by every process of the machine).

    >>> r = RequestRecord(request_id=0, level=0, send_ns=0, end_ns=30,
    ...                   chunk_ns=[10, 20, 30], chunk_tokens=[1, 3, 3], output_tokens=7,
    ...                   token_source=TokenSource.USAGE)
    >>> r.ok
    True
"""

from __future__ import annotations

import time
from array import array
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

NS_PER_S = 1_000_000_000


class Packed(array):  # type: ignore[type-arg]  # array[int] / array[float]: not subscriptable before 3.12
    """A record's chunk times (``Packed("q", ...)``) or token counts (``Packed("d", ...)``) as the run-file
    reader keeps them: 8 bytes a value where a list of Python ints or floats takes about 40 (a
    2,048-concurrency level's 9,000 records of 1,000 chunks hold 0.9 GB as lists). It equals a list or
    tuple of the same values, as the client's lists do, so a record read back equals the one written.

    >>> Packed("q", [5, 10]) == [5, 10], Packed("d", [1, 2]) == (1.0, 2.0), Packed("q", [5]) != [6]
    (True, True, True)
    """

    __slots__ = ()

    def __eq__(self, other: object) -> bool:
        if isinstance(other, list | tuple):
            return len(self) == len(other) and self.tolist() == list(other)
        same: bool = super().__eq__(other)  # NotImplemented for anything but an array
        return same

    def __ne__(self, other: object) -> bool:
        return not self == other

    __hash__ = None  # mutable, as a list


default_clock: Callable[[], int] = time.perf_counter_ns


class ErrorKind(StrEnum):
    """Why a request failed. Recorded per request; the run goes on."""

    CONNECT = "connect"  # refused, DNS, TLS: no response at all
    HTTP_4XX = "http_4xx"
    HTTP_429 = "http_429"  # rate limited: kept apart from other 4xx because it means "slow down"
    HTTP_5XX = "http_5xx"
    TIMEOUT_CONNECT = "timeout_connect"
    TIMEOUT_FIRST_TOKEN = "timeout_first_token"
    TIMEOUT_REQUEST = "timeout_request"
    STREAM_CUT = "stream_cut"  # the body ended (or the connection dropped) before `data: [DONE]`
    MALFORMED_SSE = "malformed_sse"  # bytes that are not a valid event stream
    MALFORMED_JSON = "malformed_json"  # an event whose data is not the JSON we expect
    SERVER_ERROR_EVENT = "server_error_event"  # an in-stream {"error": ...} event
    NO_TOKENS = "no_tokens"  # the stream completed but carried no generated text
    CANCELLED = "cancelled"  # the run was interrupted (Ctrl-C) while this request was in flight
    OTHER = "other"


class TokenSource(StrEnum):
    """Where a record's output token count came from."""

    CHUNK_USAGE = "chunk_usage"  # per-chunk cumulative usage (e.g. vLLM continuous_usage_stats)
    USAGE = "usage"  # usage.completion_tokens of the final chunk
    TOKENIZER = "tokenizer"  # counted with a tokenizer from the generated text
    ESTIMATE = "estimate"  # estimated from characters (labelled; never silently chunks-as-tokens)
    NONE = "none"  # failed before any token


@dataclass(slots=True)
class RequestRecord:
    """What happened to one request, raw. Times are clock nanoseconds (same clock for the whole run).

    - ``scheduled_ns``: when an open-loop schedule wanted the request sent (None in closed loop).
    - ``send_ns``: when the request was handed to the transport (t_send).
    - ``headers_ns``: when the response headers arrived.
    - ``chunk_ns`` / ``chunk_tokens``: arrival time and token count of each chunk that carried generated
      text (role-only and usage-only events are not token chunks). A chunk may carry several tokens;
      counts are floats only when they were estimated and scaled to the request's total. The client fills
      lists; the run-file reader packs them (:class:`Packed`).
    - ``end_ns``: when the stream finished (``[DONE]``, end of body, or error).
    - ``queue_ns``: how long the request waited for a free slot under an open-loop ``max_concurrency``
      cap, from ``scheduled_ns`` (None without a cap). The wait is part of the scheduling lag
      ``send_ns - scheduled_ns``; this field says how much of it was the cap's.
    - ``prompt_index``: the row of the prompts file or dataset the prompt came from (None: synthetic).
    - ``session_id`` / ``turn``: the multi-turn session (numbered per level) and the 0-based turn of it
      (None for independent requests).
    - ``resent``: the request went out a second time, on a fresh connection, because the reused keep-alive
      connection it was first written to closed before any response byte (the resend rule of
      :mod:`tpsbench.client.transport.h11`); ``send_ns`` is the second send's.
    - ``warmup`` / ``cooldown``: sent to bring the server to the level's load before the measured requests
      (warmup) or to hold it there after them, until the last measured request ends (``Level.cooldown``);
      neither is measured (:attr:`measured`), both are kept.
    - ``repeat``: which repeat of the whole plan the request belongs to (0-based; ``--repeat N`` runs the
      plan N times, each level keeping its index, so ``(repeat, level)`` names one measured level).

    Records written before a field existed read back with its default.
    """

    request_id: int
    level: int
    send_ns: int
    end_ns: int
    scheduled_ns: int | None = None
    headers_ns: int | None = None
    worker: int = 0
    warmup: bool = False
    status: int | None = None
    error: ErrorKind | None = None
    error_detail: str | None = None
    chunk_ns: Sequence[int] = field(default_factory=list)
    chunk_tokens: Sequence[float] = field(default_factory=list)
    output_tokens: int | None = None
    token_source: TokenSource = TokenSource.NONE
    input_tokens: int | None = None  # usage.prompt_tokens, else the workload's count
    requested_output_tokens: int | None = None  # max_tokens asked for
    finish_reason: str | None = None
    queue_ns: int | None = None
    prompt_index: int | None = None
    session_id: int | None = None
    turn: int | None = None
    resent: bool = False
    repeat: int = 0
    cooldown: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def measured(self) -> bool:
        """A measured request: neither warmup nor cooldown."""
        return not (self.warmup or self.cooldown)

    def to_dict(self) -> dict[str, Any]:
        # shallow, with the two lists copied: asdict() deep-copies every chunk (79 us vs 1 us per record)
        d = {name: getattr(self, name) for name in self.__dataclass_fields__}
        d["chunk_ns"] = list(self.chunk_ns)
        d["chunk_tokens"] = list(self.chunk_tokens)
        d["error"] = self.error.value if self.error else None
        d["token_source"] = self.token_source.value
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RequestRecord:
        names = cls.__dataclass_fields__
        kw = {k: v for k, v in d.items() if k in names}
        if kw.get("error") is not None:
            kw["error"] = ErrorKind(kw["error"])
        kw["token_source"] = TokenSource(kw.get("token_source", "none"))
        return cls(**kw)


@dataclass(frozen=True, slots=True)
class Reply:
    """What sending one request gives its caller: the record and, when the client was asked to keep it,
    the generated ``text`` (a deferred tokenizer counts the estimated ones after the level, see
    ``load/session.py``; a multi-turn session sends it back as the assistant's turn). The text is never
    written anywhere."""

    record: RequestRecord
    text: str | None = None
