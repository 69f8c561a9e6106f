"""The OpenAI-compatible client: build the request, send it through a transport, decode it to a record.

    client = Client(endpoint, "http://127.0.0.1:8000/v1", "my-model", make_transport("aiohttp"))
    record = await client.send(prompt, request_id=0, level=0, workload=scenario.workload)

:meth:`Client.send` does nothing per chunk: the transport keeps ``(arrival ns, bytes)`` reads, and
:func:`decode_exchange` (pure, so it is tested on scripted exchanges) turns them into a
:class:`~tpsbench.core.record.RequestRecord` once the request is over:

- SSE events, each stamped with the arrival of the read that completed it (:mod:`.sse`);
- a *token chunk* is an event whose ``choices[0]`` carries generated text: ``delta.content``,
  ``delta.reasoning_content`` / ``delta.reasoning``, ``delta.tool_calls[*].function.arguments`` (chat) or
  ``text`` (completions). Role-only deltas and usage-only chunks are not token chunks;
- ``usage`` comes from the last event that has it; ``finish_reason`` from the last choice that has one;
- tokens per chunk and the total follow :mod:`tpsbench.client.tokens`;
- ``end_ns`` is the arrival of ``data: [DONE]`` if it came, else the end of the body (or the error).

Outcome, first that applies: a malformed JSON event (``MALFORMED_JSON``) or an in-stream error event
(``SERVER_ERROR_EVENT``) at the point it occurred; ``[DONE]`` seen: success, or ``NO_TOKENS`` when no token
chunk came; bytes that are not an event stream at all (``MALFORMED_SSE``); the transport's error (timeouts,
``STREAM_CUT`` from a dropped connection, HTTP status); else the body ended before ``[DONE]``
(``STREAM_CUT``). Chunks received before a failure are kept.

Every request carries ``X-Request-Id``, a version-4 UUID whose first groups are random per client and whose
last group is the record's id in 12 decimal digits (``3f2a9c1e-5b7d-4c1a-8e2f-000000000042``), so server
logs can be matched to records (tpsbench.reference.pace does, for its ground truth). UUID-shaped because
some servers reject anything else (llama-cpp-python's server answers HTTP 400 with an empty body).

The API key is sent as ``Authorization: Bearer <key>`` only; it is removed from anything the server
echoes into ``error_detail``, and never logged or recorded.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from secrets import token_hex
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

import httpx

from tpsbench.client.sse import SSEParser
from tpsbench.client.tokens import account_tokens
from tpsbench.client.transport.base import RawExchange, Transport
from tpsbench.config.scenario import Endpoint, Workload
from tpsbench.core.record import ErrorKind, RequestRecord, TokenSource, default_clock
from tpsbench.core.redact import redact_text

__all__ = [
    "MAX_DETAIL_CHARS",
    "Client",
    "EndpointError",
    "PromptLike",
    "build_body",
    "decode_exchange",
    "decode_exchange_text",
    "join_url",
    "list_models",
]

MAX_DETAIL_CHARS = 1000  # error_detail is one field of one JSONL line: enough to diagnose, not a dump


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


def join_url(base_url: str, path: str) -> str:
    """``path`` appended to the base URL's path, its query (``?api-version=...``) kept at the end.

    >>> join_url("http://h:8000/v1/?api-version=2", "/models")
    'http://h:8000/v1/models?api-version=2'
    """
    parts = urlsplit(base_url)
    return urlunsplit(parts._replace(path=parts.path.rstrip("/") + path))


class EndpointError(RuntimeError):
    """A non-streaming call to the endpoint failed (e.g. ``/models``); the message never has the key."""


def build_body(endpoint: Endpoint, model: str, prompt: PromptLike, workload: Workload) -> dict[str, Any]:
    """The JSON body of one streaming request.

    ``{"model", "messages" | "prompt", "stream": true, "stream_options": {"include_usage": true}}`` (plus
    ``"continuous_usage_stats": true`` with ``endpoint.continuous_usage``), ``max_tokens`` under
    ``workload.max_tokens_field``, ``"ignore_eos": true`` and ``"min_tokens": max_tokens`` when the workload
    asks for them, then ``endpoint.extra_body`` merged on top (shallow: it can override any key).
    """
    body: dict[str, Any] = {"model": model}
    if endpoint.api == "chat":
        if prompt.messages is not None:
            body["messages"] = prompt.messages
        elif prompt.prompt is not None:
            body["messages"] = [{"role": "user", "content": prompt.prompt}]
        else:
            raise ValueError("prompt has neither messages nor prompt text")
    else:
        if prompt.prompt is not None:
            body["prompt"] = prompt.prompt
        elif prompt.messages is not None:
            body["prompt"] = "\n\n".join(m.get("content", "") for m in prompt.messages)
        else:
            raise ValueError("prompt has neither messages nor prompt text")
    stream_options: dict[str, Any] = {"include_usage": True}
    if endpoint.continuous_usage:
        stream_options["continuous_usage_stats"] = True
    body["stream"] = True
    body["stream_options"] = stream_options
    body[workload.max_tokens_field] = prompt.max_tokens
    if workload.ignore_eos:
        body["ignore_eos"] = True
    if workload.min_tokens:
        body["min_tokens"] = prompt.max_tokens
    body.update(endpoint.extra_body)
    return body


class Client:
    """Sends streaming requests to one OpenAI-compatible endpoint and returns raw records.

    ``base_url`` includes ``/v1``. ``count_tokens`` (optional) counts output tokens when the server reports
    no usage. With ``keep_text``, the generated text of every request whose count had to be estimated is
    kept in ``client.texts[request_id]`` (the caller pops it), so a slow tokenizer can count it after the
    load (see ``ServerTokenizer``). The transport stamps every time; ``clock`` is
    the run's clock, kept as ``client.clock`` for callers that stamp around a request (it must be the
    clock the transport was given).
    """

    def __init__(
        self,
        endpoint: Endpoint,
        base_url: str,
        model: str,
        transport: Transport,
        *,
        api_key: str | None = None,
        count_tokens: Callable[[str], int] | None = None,
        clock: Callable[[], int] = default_clock,
        keep_text: bool = False,
    ) -> None:
        self.endpoint = endpoint
        self._timeouts = endpoint.timeouts.resolve()
        self.keep_text = keep_text
        self.texts: dict[int, str] = {}
        self.model = model
        self.transport = transport
        self.count_tokens = count_tokens
        self.clock = clock
        self.url = join_url(base_url, "/chat/completions" if endpoint.api == "chat" else "/completions")
        headers = {
            "Content-Type": "application/json",
            "Accept": "text/event-stream",
            # Compression would make the server's compressor buffer tokens, distorting chunk arrival times.
            "Accept-Encoding": "identity",
            **endpoint.headers,
        }
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self._headers: Mapping[str, str] = headers
        self._secrets: tuple[str, ...] = (api_key,) if api_key else ()
        # X-Request-Id lets server logs (and the pace server's ground truth) be matched to records. A random
        # per-client prefix, because ids restart at 0 every run and vLLM adopts this header as its engine
        # request id, where two in-flight duplicates (two runs on one server) break it (vllm#10583).
        h = token_hex(9)
        self._request_id_prefix: str | None = f"{h[:8]}-{h[8:12]}-4{h[12:15]}-8{h[15:18]}-"
        if any(k.lower() == "x-request-id" for k in headers):
            self._request_id_prefix = None  # the scenario set its own

    def __repr__(self) -> str:  # never show headers: they hold the key
        return f"Client(url={self.url!r}, model={self.model!r})"

    def build_body(self, prompt: PromptLike, workload: Workload) -> dict[str, Any]:
        """See :func:`build_body`."""
        return build_body(self.endpoint, self.model, prompt, workload)

    async def send(
        self,
        prompt: PromptLike,
        *,
        request_id: int,
        level: int,
        scheduled_ns: int | None = None,
        warmup: bool = False,
        worker: int = 0,
        workload: Workload,
    ) -> RequestRecord:
        """Send one request and return its record; request failures are recorded, not raised.

        :class:`asyncio.CancelledError` (Ctrl-C) propagates: the caller records the request as
        ``ErrorKind.CANCELLED`` (the runner does).
        """
        body = json.dumps(self.build_body(prompt, workload), separators=(",", ":")).encode()
        headers = self._headers
        if self._request_id_prefix is not None:
            headers = {**headers, "X-Request-Id": f"{self._request_id_prefix}{request_id:012d}"}
        raw = await self.transport.stream(self.url, headers, body, self._timeouts)
        record, text = decode_exchange_text(
            raw,
            prompt=prompt,
            request_id=request_id,
            level=level,
            scheduled_ns=scheduled_ns,
            warmup=warmup,
            worker=worker,
            count_tokens=self.count_tokens,
            secrets=self._secrets,
        )
        if self.keep_text and record.token_source is TokenSource.ESTIMATE:
            self.texts[request_id] = text
        return record


@dataclass(slots=True)
class _Scan:
    """What the event stream said, event by event."""

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


class _BadShape(Exception):
    """An event whose JSON is not the shape of a streaming completion chunk."""


def decode_exchange(
    raw: RawExchange,
    *,
    prompt: PromptLike,
    request_id: int,
    level: int,
    scheduled_ns: int | None = None,
    warmup: bool = False,
    worker: int = 0,
    count_tokens: Callable[[str], int] | None = None,
    secrets: Sequence[str] = (),
) -> RequestRecord:
    """Turn one raw exchange into its :class:`RequestRecord` (rules in the module docstring).

    ``secrets`` (the API key) are replaced by ``[REDACTED]`` in ``error_detail`` and ``finish_reason``.
    """
    return decode_exchange_text(
        raw,
        prompt=prompt,
        request_id=request_id,
        level=level,
        scheduled_ns=scheduled_ns,
        warmup=warmup,
        worker=worker,
        count_tokens=count_tokens,
        secrets=secrets,
    )[0]


def decode_exchange_text(
    raw: RawExchange,
    *,
    prompt: PromptLike,
    request_id: int,
    level: int,
    scheduled_ns: int | None = None,
    warmup: bool = False,
    worker: int = 0,
    count_tokens: Callable[[str], int] | None = None,
    secrets: Sequence[str] = (),
) -> tuple[RequestRecord, str]:
    """:func:`decode_exchange`, and the generated text of the token chunks joined ("" if none)."""
    rec = RequestRecord(
        request_id=request_id,
        level=level,
        send_ns=raw.send_ns,
        end_ns=raw.end_ns,
        scheduled_ns=scheduled_ns,
        headers_ns=raw.headers_ns,
        worker=worker,
        warmup=warmup,
        status=raw.status,
        input_tokens=prompt.input_tokens,
        requested_output_tokens=prompt.max_tokens,
    )
    if raw.status is None or not 200 <= raw.status < 300:
        rec.error = raw.error or ErrorKind.OTHER
        rec.error_detail = _clean(raw.error_detail, secrets)
        return rec, ""

    scan = _scan_events(raw.reads)
    if scan.error is not None:
        rec.error, detail = scan.error, scan.error_detail
    elif scan.done_ns is not None:
        rec.end_ns = scan.done_ns
        detail = None
        if not scan.texts:
            rec.error = ErrorKind.NO_TOKENS
            detail = f"stream completed without generated text (finish_reason={scan.finish_reason})"
    elif scan.not_sse:
        rec.error = ErrorKind.MALFORMED_SSE
        head = b"".join(data for _, data in raw.reads[:8])[:800].decode("utf-8", errors="replace")
        detail = f"response is not an event stream: {head[:200]}"
    elif raw.error is not None:
        rec.error, detail = raw.error, raw.error_detail
    else:
        rec.error = ErrorKind.STREAM_CUT
        detail = f"body ended before data: [DONE] ({scan.events} events, {len(scan.texts)} token chunks)"
    rec.error_detail = _clean(detail, secrets)

    counts = account_tokens(
        scan.texts, chunk_usage=scan.chunk_usage, usage=scan.completion_tokens, count_tokens=count_tokens
    )
    rec.chunk_ns = scan.chunk_ns
    rec.chunk_tokens = counts.chunk_tokens
    rec.output_tokens = counts.output_tokens
    rec.token_source = counts.source
    if scan.prompt_tokens is not None:
        rec.input_tokens = scan.prompt_tokens
    rec.finish_reason = _clean(scan.finish_reason, secrets)
    return rec, "".join(scan.texts)


_raw_json = json.JSONDecoder().raw_decode  # json.loads minus two wrapper frames: this runs once per chunk


def _scan_events(reads: list[tuple[int, bytes]]) -> _Scan:
    """Walk the events in order, stopping at ``[DONE]`` or at the first error."""
    scan = _Scan()
    parser = SSEParser()
    for t, data in reads:
        for ev in parser.feed(data):
            scan.events += 1
            payload = ev.data.strip()
            if payload == "[DONE]":
                scan.done_ns = t
                return scan
            if ev.event == "error":
                scan.error, scan.error_detail = ErrorKind.SERVER_ERROR_EVENT, payload
                return scan
            if not payload:  # an empty data line carries nothing (some servers use it as a keepalive)
                continue
            try:
                obj, end = _raw_json(payload)
                if end != len(payload):
                    raise ValueError("extra data after the JSON value")
            except ValueError:
                scan.error = ErrorKind.MALFORMED_JSON
                scan.error_detail = f"event data is not JSON: {payload[:200]}"
                return scan
            try:
                if _apply_chunk(scan, t, obj):
                    return scan
            except _BadShape as exc:
                scan.error = ErrorKind.MALFORMED_JSON
                scan.error_detail = f"unexpected chunk ({exc}): {payload[:200]}"
                return scan
    parser.close()
    # Nothing parsed as an event and some line was not SSE at all (e.g. a JSON body): not an event stream.
    scan.not_sse = scan.events == 0 and parser.unknown_lines > 0
    return scan


def _apply_chunk(scan: _Scan, t: int, obj: Any) -> bool:
    """Apply one decoded event; True if it was an in-stream error. Raises _BadShape for unexpected JSON."""
    if type(obj) is not dict:
        raise _BadShape("not a JSON object")
    err = obj.get("error")
    if err or obj.get("object") == "error":  # {"error": {...}}, or vLLM's older ErrorResponse
        scan.error = ErrorKind.SERVER_ERROR_EVENT
        scan.error_detail = json.dumps(err if err else obj, ensure_ascii=False)
        return True
    completion: int | None = None
    usage = obj.get("usage")
    if usage is not None:
        if type(usage) is not dict:
            raise _BadShape("usage is not an object")
        completion = _int_or_none(usage.get("completion_tokens"))
        if completion is not None:
            scan.completion_tokens = completion
        prompt_tokens = _int_or_none(usage.get("prompt_tokens"))
        if prompt_tokens is not None:
            scan.prompt_tokens = prompt_tokens
    choices = obj.get("choices")
    if not choices:
        return False
    if type(choices) is not list or type(choices[0]) is not dict:
        raise _BadShape("choices is not a list of objects")
    choice = choices[0]
    reason = choice.get("finish_reason")
    if reason is not None:
        scan.finish_reason = str(reason)
    text = _choice_text(choice)
    if text:
        scan.chunk_ns.append(t)
        scan.texts.append(text)
        scan.chunk_usage.append(completion)
    return False


def _choice_text(choice: dict[str, Any]) -> str:
    """All generated text of one choice: completions ``text``; chat content, reasoning, tool-call args."""
    delta = choice.get("delta")
    if delta is None:
        text = choice.get("text")
        return "" if text is None else _str(text, "text")
    if type(delta) is not dict:
        raise _BadShape("delta is not an object")
    parts: list[str] = []
    for key in ("content", "reasoning_content", "reasoning"):
        value = delta.get(key)
        if value is not None:
            parts.append(_str(value, key))
    calls = delta.get("tool_calls")
    if calls:
        if type(calls) is not list:
            raise _BadShape("tool_calls is not a list")
        for call in calls:
            fn = call.get("function") if type(call) is dict else None
            args = fn.get("arguments") if type(fn) is dict else None
            if args is not None:
                parts.append(_str(args, "arguments"))
    text = choice.get("text")  # no server sends both; if one did, its text is generated too
    if text is not None:
        parts.append(_str(text, "text"))
    return parts[0] if len(parts) == 1 else "".join(parts)


def _str(value: Any, name: str) -> str:
    if type(value) is not str:
        raise _BadShape(f"{name} is not a string")
    return value


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _clean(text: str | None, secrets: Sequence[str]) -> str | None:
    return None if text is None else _redact(text, secrets)


def _redact(text: str, secrets: Sequence[str]) -> str:
    """Secrets replaced (:func:`tpsbench.core.redact.redact_text`, which also drops a key cut at the end),
    then trimmed to :data:`MAX_DETAIL_CHARS`; redacting first means trimming cannot leave half a key."""
    text = redact_text(text, secrets)
    if len(text) > MAX_DETAIL_CHARS:
        text = text[:MAX_DETAIL_CHARS] + "..."
    return text


async def list_models(
    base_url: str,
    api_key: str | None = None,
    timeout: float = 10.0,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
) -> list[str]:
    """The model ids ``GET {base_url}/models`` lists, in the server's order (plain httpx: not streaming).

    Raises :class:`EndpointError` (key redacted) when the endpoint cannot be reached or answers badly.
    """
    url = join_url(base_url, "/models")
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    secrets = (api_key,) if api_key else ()
    try:
        async with httpx.AsyncClient(transport=transport, timeout=timeout, trust_env=False) as http:
            resp = await http.get(url, headers=headers)
    except httpx.HTTPError as exc:
        raise EndpointError(_redact(f"GET {url} failed: {type(exc).__name__}: {exc}", secrets)) from None
    if resp.status_code != 200:
        raise EndpointError(_redact(f"GET {url}: HTTP {resp.status_code}: {resp.text[:300]}", secrets))
    try:
        ids = [str(m["id"]) for m in resp.json()["data"]]
    except (ValueError, KeyError, TypeError) as exc:
        detail = f"GET {url}: unexpected response ({type(exc).__name__}): {resp.text[:200]}"
        raise EndpointError(_redact(detail, secrets)) from None
    if not ids:
        raise EndpointError(f"GET {url}: the endpoint lists no models; set endpoint.model in the scenario")
    return ids
