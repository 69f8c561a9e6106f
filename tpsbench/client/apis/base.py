"""What every streaming API module gives the client: a request (path, headers, body) and a stream decoder.

One module per API (:mod:`.chat` for chat and completions, :mod:`.messages`, :mod:`.responses`); the client
(:mod:`tpsbench.client.client`) picks one with :func:`tpsbench.client.apis.api_for` and stays the same for
all of them. A decoder walks the SSE events of one recorded body (:mod:`tpsbench.client.sse`) and fills a
:class:`Scan`; the client turns the scan into a record with the same rules for every API:

- a *token chunk* is an event that carries generated text (the API module says which events do); its
  arrival is the arrival of the read that completed the event, so TTFT is the first generated text, never a
  bookkeeping event;
- ``completion_tokens`` / ``prompt_tokens`` are the stream's usage report, if any;
- ``done_ns`` is the arrival of the API's end-of-stream event (``data: [DONE]``, ``message_stop``,
  ``response.completed``), ``None`` if it never came;
- ``error`` stops the walk: a malformed event or an in-stream error event, with its message.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from tpsbench.client.sse import SSEParser
from tpsbench.core.record import ErrorKind

if TYPE_CHECKING:
    from tpsbench.config.scenario import Endpoint, Workload

__all__ = [
    "SCAN_SLICE",
    "BadShape",
    "BearerAuth",
    "EventHandler",
    "PromptLike",
    "Scan",
    "ScanSteps",
    "Stepped",
    "StreamApi",
    "TypedEventHandler",
    "advance",
    "error_message",
    "finish_body",
    "int_or_none",
    "iter_events",
    "iter_typed_events",
    "obj_field",
    "parse_json",
    "prompt_messages",
    "run_steps",
    "text_field",
    "walk_events",
]


class PromptLike(Protocol):
    """What the client needs of a prompt (``workload.PromptSpec`` has it): chat ``messages`` or a
    completions ``prompt`` (either may be derived from the other), its input token count, and the
    ``max_tokens`` to ask for."""

    @property
    def messages(self) -> list[dict[str, str]] | None: ...
    @property
    def prompt(self) -> str | None: ...
    @property
    def input_tokens(self) -> int: ...
    @property
    def max_tokens(self) -> int: ...


@dataclass(slots=True)
class Scan:
    """What the event stream said, event by event (see the module docstring)."""

    chunk_ns: list[int] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    chunk_usage: list[int | None] = field(default_factory=list)
    completion_tokens: int | None = None
    prompt_tokens: int | None = None
    finish_reason: str | None = None
    done_ns: int | None = None
    events: int = 0
    error: ErrorKind | None = None
    error_detail: str | None = None
    not_sse: bool = False

    def token_chunk(self, t: int, text: str, usage: int | None = None) -> None:
        """One event with generated text, arrived at ``t``."""
        self.chunk_ns.append(t)
        self.texts.append(text)
        self.chunk_usage.append(usage)

    def fail(self, kind: ErrorKind, detail: str) -> Scan:
        self.error, self.error_detail = kind, detail
        return self


class StreamApi(Protocol):
    """One streaming API: where to send, what to send, how to read the answer."""

    @property
    def name(self) -> str: ...
    @property
    def path(self) -> str:
        """Appended to the base URL (which ends in ``/v1``), e.g. ``/chat/completions``."""
        ...

    @property
    def end_event(self) -> str:
        """The event that ends a complete stream, as error messages name it (``data: [DONE]``)."""
        ...

    def auth_headers(self, api_key: str) -> dict[str, str]:
        """The headers that carry the API key."""
        ...

    def fixed_headers(self) -> dict[str, str]:
        """Headers every request of this API carries (a scenario's ``endpoint.headers`` override them)."""
        ...

    def build_body(
        self, endpoint: Endpoint, model: str, prompt: PromptLike, workload: Workload
    ) -> dict[str, Any]:
        """The JSON body of one streaming request; ``endpoint.extra_body`` is merged on top (shallow)."""
        ...

    def scan(self, reads: Sequence[tuple[int, bytes]]) -> Scan:
        """Decode one recorded body (``(arrival ns, bytes)`` reads)."""
        ...

    def scan_steps(self, reads: Sequence[tuple[int, bytes]]) -> ScanSteps:
        """:meth:`scan` in steps of :data:`SCAN_SLICE` reads, for a caller that yields to its event loop
        between them (the client: see :func:`run_steps`)."""
        ...


class BearerAuth:
    """The headers of an OpenAI-style API (a :class:`StreamApi` part): the key in ``Authorization:
    Bearer``, no fixed headers."""

    def auth_headers(self, api_key: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {api_key}"}

    def fixed_headers(self) -> dict[str, str]:
        return {}


class BadShape(Exception):
    """An event whose JSON is not the shape the API's stream has."""


_raw_json = json.JSONDecoder().raw_decode  # json.loads minus two wrapper frames: this runs once per chunk


def parse_json(payload: str) -> Any:
    """The JSON value of one event's data; ValueError if it is not exactly one JSON value."""
    obj, end = _raw_json(payload)
    if end != len(payload):
        raise ValueError("extra data after the JSON value")
    return obj


def text_field(value: Any, name: str) -> str:
    if type(value) is not str:
        raise BadShape(f"{name} is not a string")
    return value


def int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def obj_field(obj: Mapping[str, Any], name: str) -> dict[str, Any] | None:
    """``obj[name]`` if it is an object, None if absent or null; BadShape if it is anything else."""
    value = obj.get(name)
    if value is None:
        return None
    if type(value) is not dict:
        raise BadShape(f"{name} is not an object")
    return value


def prompt_messages(prompt: PromptLike) -> list[dict[str, str]]:
    """The prompt as chat messages (a completions prompt becomes one user message)."""
    if prompt.messages is not None:
        return prompt.messages
    if prompt.prompt is not None:
        return [{"role": "user", "content": prompt.prompt}]
    raise ValueError("prompt has neither messages nor prompt text")


def finish_body(
    body: dict[str, Any], endpoint: Endpoint, prompt: PromptLike, workload: Workload
) -> dict[str, Any]:
    """What every API's body ends with: ``"ignore_eos": true`` and ``"min_tokens": max_tokens`` when the
    workload asks for them, then ``endpoint.extra_body`` merged on top (shallow: it can override any key)."""
    if workload.ignore_eos:
        body["ignore_eos"] = True
    if workload.min_tokens:
        body["min_tokens"] = prompt.max_tokens
    body.update(endpoint.extra_body)
    return body


def error_message(err: Any) -> str:
    """An error object as one line of JSON (what error_detail keeps)."""
    return json.dumps(err, ensure_ascii=False)


EventHandler = Callable[[Scan, int, Any], bool]
"""Applies one decoded event (its JSON value, arrived at ``t``) to the scan; True ends the walk (the end
event came, or ``scan.error`` was set). Raises :class:`BadShape` for JSON of the wrong shape."""


TypedEventHandler = Callable[[Scan, int, Any, dict[str, Any]], bool]
"""An :data:`EventHandler` for a stream of typed events: it gets the event's ``type`` and its JSON object."""


def iter_typed_events(reads: Sequence[tuple[int, bytes]], handle: TypedEventHandler) -> ScanSteps:
    """:func:`iter_events` over a stream of typed events (Anthropic Messages, OpenAI Responses): every
    event's data is a JSON object whose ``type`` says what it is (the ``event:`` line is not read, apart
    from ``event: error``); data that is not an object is :class:`BadShape`."""

    def typed(scan: Scan, t: int, obj: Any) -> bool:
        if type(obj) is not dict:
            raise BadShape("not a JSON object")
        return handle(scan, t, obj.get("type"), obj)

    return iter_events(reads, typed)


class _Effect:
    """What a pure handler did to a fresh :class:`Scan` for one payload, to replay on later copies of it."""

    __slots__ = ("chunks", "completion_tokens", "finish_reason", "prompt_tokens")

    def __init__(self, scratch: Scan) -> None:
        self.chunks = list(zip(scratch.texts, scratch.chunk_usage, strict=True))
        self.completion_tokens = scratch.completion_tokens
        self.prompt_tokens = scratch.prompt_tokens
        self.finish_reason = scratch.finish_reason

    def apply(self, scan: Scan, t: int) -> None:
        for text, usage in self.chunks:
            scan.token_chunk(t, text, usage)
        if self.completion_tokens is not None:
            scan.completion_tokens = self.completion_tokens
        if self.prompt_tokens is not None:
            scan.prompt_tokens = self.prompt_tokens
        if self.finish_reason is not None:
            scan.finish_reason = self.finish_reason


SCAN_SLICE = 64  # reads decoded between pauses: about 0.5 ms at 1 token per chunk with per-chunk usage
ScanSteps = Generator[None, None, Scan]
"""A decode in steps: ``next()`` runs one slice; the :class:`Scan` is the generator's return value."""


def advance(steps: ScanSteps) -> Scan | None:
    """Run one slice of a stepped decode: its :class:`Scan` when that was the last, else None (the client
    yields to its loop between slices; :func:`run_steps` does not)."""
    try:
        next(steps)
    except StopIteration as done:
        scan: Scan = done.value
        return scan
    return None


def run_steps(steps: ScanSteps) -> Scan:
    """Run a stepped decode to its end and return its :class:`Scan`."""
    while (scan := advance(steps)) is None:
        pass
    return scan


class Stepped:
    """The :meth:`StreamApi.scan` of an API (a :class:`StreamApi` part) that defines ``scan_steps``."""

    def scan_steps(self, reads: Sequence[tuple[int, bytes]]) -> ScanSteps:
        raise NotImplementedError

    def scan(self, reads: Sequence[tuple[int, bytes]]) -> Scan:
        return run_steps(self.scan_steps(reads))


_MEMO_MAX = 256  # distinct payloads remembered per stream (a token stream repeats a few shapes)


def _whole_events(data: bytes) -> list[bytes] | None:
    """The data of each event when ``data`` is whole ``data: ...`` events with LF endings (what servers send
    in one write per event), else None (the general parser then takes the read)."""
    if not data.endswith(b"\n\n") or b"\r" in data:
        return None
    events = data[:-2].split(b"\n\n")
    for ev in events:
        if not ev.startswith(b"data:") or b"\n" in ev:
            return None
    return events


def _value(event: bytes) -> bytes:
    """The value of a ``data:`` line: one leading space dropped."""
    return event[6:] if event[5:6] == b" " else event[5:]


def walk_events(
    reads: Sequence[tuple[int, bytes]],
    handle: EventHandler,
    *,
    done_data: str | None = None,
    pure: bool = False,
) -> Scan:
    """:func:`iter_events` in one go."""
    return run_steps(iter_events(reads, handle, done_data=done_data, pure=pure))


def iter_events(
    reads: Sequence[tuple[int, bytes]],
    handle: EventHandler,
    *,
    done_data: str | None = None,
    pure: bool = False,
) -> ScanSteps:
    """Walk the SSE events of a body in order, stopping at the end event or at the first error; a
    generator that pauses after every :data:`SCAN_SLICE` reads and returns the :class:`Scan`.

    Common to every API: ``event: error`` is an in-stream error (``SERVER_ERROR_EVENT``, its data as the
    detail); an event whose data is ``done_data`` (chat's ``[DONE]``) ends the stream; an empty data line
    is a keepalive; data that is not one JSON value is ``MALFORMED_JSON``; everything else goes to
    ``handle``. A body in which nothing parsed as an event and some line was not SSE at all (e.g. a JSON
    body) is marked ``not_sse``.

    Cost (the client decodes every request on the loop that stamps the others): a read made of whole
    single-line ``data:`` events skips the general parser (same result: the tests compare both), and with
    ``pure`` (the handler's effect depends on the payload alone, never on the scan so far) a payload seen
    before is not parsed again: its recorded effect is replayed (a token stream repeats the same chunk),
    and a whole read whose every event was replayed is remembered as a whole: the next identical read is
    one dict lookup (the h11 transport keeps a repeated payload as the same bytes object, whose hash is
    computed once). Even so, 1,000 chunks that each carry their own usage cost about 7 ms: hence the pauses.
    """
    scan = Scan()
    parser = SSEParser()
    memo: dict[str, _Effect] = {}
    seen: set[str] = set()
    read_memo: dict[bytes, list[_Effect]] = {}  # a whole read whose every event's effect is known
    for i, (t, data) in enumerate(reads, 1):
        if not i % SCAN_SLICE:
            yield
        if pure and parser.idle and (known := read_memo.get(data)) is not None:
            scan.events += len(known)
            for seen_effect in known:
                seen_effect.apply(scan, t)
            continue
        whole = _whole_events(data) if parser.idle else None
        effects: list[_Effect] | None = None
        if whole is None:
            events: list[tuple[str | None, str]] = [(ev.event, ev.data) for ev in parser.feed(data)]
        else:
            events = [(None, _value(ev).decode("utf-8", "replace")) for ev in whole]
            effects = [] if pure else None
        for kind, text in events:
            scan.events += 1
            payload = text.strip()
            replay = False
            if pure:
                if (effect := memo.get(payload)) is not None:
                    effect.apply(scan, t)
                    if effects is not None:
                        effects.append(effect)
                    continue
                effects = None
                replay = payload in seen  # the second time: worth recording its effect
                if not replay and len(seen) < _MEMO_MAX:
                    seen.add(payload)
            if payload == done_data:
                scan.done_ns = t
                return scan
            if kind == "error":
                return scan.fail(ErrorKind.SERVER_ERROR_EVENT, payload)
            if not payload:  # an empty data line carries nothing (some servers use it as a keepalive)
                continue
            try:
                obj = parse_json(payload)
            except ValueError:
                return scan.fail(ErrorKind.MALFORMED_JSON, f"event data is not JSON: {payload[:200]}")
            try:
                if replay:
                    scratch = Scan()
                    if not handle(scratch, t, obj) and scratch.error is None and scratch.done_ns is None:
                        effect = _Effect(scratch)
                        if len(memo) < _MEMO_MAX:
                            memo[payload] = effect
                        effect.apply(scan, t)
                        continue
                if handle(scan, t, obj):
                    return scan
            except BadShape as exc:
                return scan.fail(ErrorKind.MALFORMED_JSON, f"unexpected event ({exc}): {payload[:200]}")
        if effects and len(read_memo) < _MEMO_MAX:
            read_memo[data] = effects
    parser.close()
    scan.not_sse = scan.events == 0 and parser.unknown_lines > 0
    return scan
