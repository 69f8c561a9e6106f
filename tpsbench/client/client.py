"""The streaming client: build the request, send it through a transport, decode it to a record.

    client = Client(endpoint, "http://127.0.0.1:8000/v1", "my-model", make_transport("h11"))
    record = (await client.send(prompt, request_id=0, level=0, workload=scenario.workload)).record

``endpoint.api`` picks the API module (:mod:`tpsbench.client.apis`: chat, completions, messages,
responses), which builds the request and reads the stream. :meth:`Client.send` does nothing per chunk: the
transport keeps ``(arrival ns, bytes)`` reads, and :func:`decode_exchange` (pure, so it is tested on
scripted exchanges) turns them into a :class:`~tpsbench.core.record.RequestRecord` once the request is
over, with the same rules for every API:

- SSE events, each stamped with the arrival of the read that completed it (:mod:`.sse`);
- a *token chunk* is an event that carries generated text (each API module says which: chat
  ``choices[0].delta.content`` and reasoning / tool-call deltas, Anthropic ``content_block_delta``,
  Responses ``response.output_text.delta`` ...); bookkeeping events (roles, usage, ``message_start``,
  ``response.created``) are not, so TTFT is the first generated text;
- tokens per chunk and the total follow :mod:`tpsbench.client.tokens`, from the usage the stream reports;
- ``end_ns`` is the arrival of the API's end event (``data: [DONE]``, ``message_stop``,
  ``response.completed``) if it came, else the end of the body (or the error).

Outcome, first that applies: a malformed JSON event (``MALFORMED_JSON``) or an in-stream error event
(``SERVER_ERROR_EVENT``) at the point it occurred; the end event seen: success, or ``NO_TOKENS`` when no
token chunk came; bytes that are not an event stream at all (``MALFORMED_SSE``); the transport's error
(timeouts, ``STREAM_CUT`` from a dropped connection, HTTP status); else the body ended before the end event
(``STREAM_CUT``). Chunks received before a failure are kept.

Every request carries ``X-Request-Id``, a version-4 UUID whose first groups are random per client and whose
last group is the record's id in 12 decimal digits (``3f2a9c1e-5b7d-4c1a-8e2f-000000000042``), so server
logs can be matched to records (tpsbench.reference.pace does, for its ground truth). UUID-shaped because
some servers reject anything else (llama-cpp-python's server answers HTTP 400 with an empty body).

The API key is sent as the API wants it (``Authorization: Bearer <key>``, Anthropic's ``x-api-key``) only; it
is removed from anything the server
echoes into ``error_detail``, and never logged or recorded.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import Callable, Mapping, Sequence
from secrets import token_hex
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from tpsbench.client.apis import api_for
from tpsbench.client.apis.base import PromptLike, Scan, StreamApi, advance
from tpsbench.client.apis.chat import CHAT
from tpsbench.client.proxy import ProxySettings
from tpsbench.client.tokens import account_tokens
from tpsbench.client.transport.base import RawExchange, Transport
from tpsbench.client.transport.httpx import httpx_proxy
from tpsbench.config.scenario import Endpoint, Workload
from tpsbench.core.record import ErrorKind, Reply, RequestRecord, default_clock
from tpsbench.core.redact import redact_text
from tpsbench.core.tls import verify_for

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


def join_url(base_url: str, path: str) -> str:
    """``path`` appended to the base URL's path, its query (``?api-version=...``) kept at the end.

    >>> join_url("http://h:8000/v1/?api-version=2", "/models")
    'http://h:8000/v1/models?api-version=2'
    """
    parts = urlsplit(base_url)
    return urlunsplit(parts._replace(path=parts.path.rstrip("/") + path))


class EndpointError(RuntimeError):
    """A non-streaming call to the endpoint failed (e.g. ``/models``); the message never has the key.

    ``status`` is the HTTP status (None: no response), ``body`` the start of the response body (redacted),
    ``connect`` whether the connection itself failed (refused, DNS, TLS)."""

    def __init__(
        self, message: str, *, status: int | None = None, body: str | None = None, connect: bool = False
    ) -> None:
        super().__init__(message)
        self.status, self.body, self.connect = status, body, connect


def build_body(endpoint: Endpoint, model: str, prompt: PromptLike, workload: Workload) -> dict[str, Any]:
    """The JSON body of one streaming request for ``endpoint.api`` (each API module documents its own)."""
    return api_for(endpoint.api).build_body(endpoint, model, prompt, workload)


class Client:
    """Sends streaming requests to one OpenAI-compatible endpoint and returns raw records.

    ``base_url`` includes ``/v1``. ``count_tokens`` (optional) counts output tokens when the server reports
    no usage. With ``keep_text``, the :class:`Reply` of every request carries its generated text: a
    slow tokenizer counts the estimated ones after the load (see ``ServerTokenizer``), and a multi-turn
    session sends it back as the assistant's turn.
    The transport stamps every time; ``clock`` is the run's clock, kept as ``client.clock`` for callers
    that stamp around a request (it must be the clock the transport was given).
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
        self.model = model
        self.transport = transport
        self.count_tokens = count_tokens
        self.clock = clock
        self.api = api_for(endpoint.api)
        self.url = join_url(base_url, self.api.path)
        headers = {
            "Content-Type": "application/json",
            "Accept": "text/event-stream",
            # Compression would make the server's compressor buffer tokens, distorting chunk arrival times.
            "Accept-Encoding": "identity",
            **self.api.fixed_headers(),
        }
        given = {k.lower() for k in endpoint.headers}
        headers = {k: v for k, v in headers.items() if k.lower() not in given} | endpoint.headers
        if api_key:
            headers.update(self.api.auth_headers(api_key))
        self._headers: Mapping[str, str] = headers
        self._secrets: tuple[str, ...] = (api_key,) if api_key else ()
        # X-Request-Id lets server logs (and the pace server's ground truth) be matched to records. A random
        # per-client prefix, because ids restart at 0 every run and vLLM adopts this header as its engine
        # request id, where two in-flight duplicates (two runs on one server) break it (vllm#10583).
        h = token_hex(9)
        self._request_id_prefix: str | None = f"{h[:8]}-{h[8:12]}-4{h[12:15]}-8{h[15:18]}-"
        if any(k.lower() == "x-request-id" for k in headers):
            self._request_id_prefix = None  # the scenario set its own
        self._decode_slots: tuple[asyncio.AbstractEventLoop, asyncio.Semaphore] | None = None

    async def _scan(self, reads: Sequence[tuple[int, bytes]]) -> Scan:
        """Decode a finished body in steps, at most :data:`DECODERS` bodies at a time: requests that end
        together (a closed loop in lock step) would otherwise each add a step to every loop iteration, and
        the loop's timers and reads wait for all of them (64 at once: 20 ms)."""
        loop = asyncio.get_running_loop()
        if self._decode_slots is None or self._decode_slots[0] is not loop:
            self._decode_slots = (loop, asyncio.Semaphore(DECODERS))
        async with self._decode_slots[1]:
            return await _scan_in_steps(self.api, reads)

    def __repr__(self) -> str:  # never show headers: they hold the key
        return f"Client(url={self.url!r}, model={self.model!r})"

    def build_body(self, prompt: PromptLike, workload: Workload) -> dict[str, Any]:
        """See :func:`build_body`."""
        return self.api.build_body(self.endpoint, self.model, prompt, workload)

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
    ) -> Reply:
        """Send one request and return its :class:`Reply` (the record, and the text if ``keep_text``);
        request failures are recorded, not raised.

        :class:`asyncio.CancelledError` (Ctrl-C) propagates: the caller records the request as
        ``ErrorKind.CANCELLED`` (the runner does).
        """
        body = json.dumps(self.build_body(prompt, workload), separators=(",", ":")).encode()
        headers = self._headers
        if self._request_id_prefix is not None:
            headers = {**headers, "X-Request-Id": f"{self._request_id_prefix}{request_id:012d}"}
        raw = await self.transport.stream(self.url, headers, body, self._timeouts)
        ok = raw.status is not None and 200 <= raw.status < 300
        scan = await self._scan(raw.reads) if ok else None
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
            api=self.api,
            scan=scan,
        )
        if self.keep_text:
            return Reply(record, text)
        return Reply(record)


DECODERS = 2  # bodies decoded at once (see Client._scan)


async def _scan_in_steps(api: StreamApi, reads: Sequence[tuple[int, bytes]]) -> Scan:
    """Decode a finished body, yielding to the loop between slices: in one go, 1,000 chunks with their own
    usage take about 7 ms, in which every other stream's chunks would be stamped late."""
    steps = api.scan_steps(reads)
    while (scan := advance(steps)) is None:
        await asyncio.sleep(0)
    return scan


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
    api: StreamApi = CHAT,
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
        api=api,
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
    api: StreamApi = CHAT,
    scan: Scan | None = None,
) -> tuple[RequestRecord, str]:
    """:func:`decode_exchange`, and the generated text of the token chunks joined ("" if none).
    ``scan``: the body already decoded (``api.scan(raw.reads)``), as :meth:`Client.send` does in steps."""
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
        prompt_index=getattr(prompt, "prompt_index", None),  # which row of a file (PromptSpec has it)
        resent=raw.resent,
    )
    if raw.status is None or not 200 <= raw.status < 300:
        rec.error = raw.error or ErrorKind.OTHER
        rec.error_detail = _clean(raw.error_detail, secrets)
        return rec, ""

    if scan is None:
        scan = api.scan(raw.reads)
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
        detail = f"body ended before {api.end_event} ({scan.events} events, {len(scan.texts)} token chunks)"
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
    proxies: ProxySettings | None = None,
    tls: ssl.SSLContext | None = None,
) -> list[str]:
    """The model ids ``GET {base_url}/models`` lists, in the server's order (plain httpx: not streaming),
    through the run's proxy and TLS settings.

    Raises :class:`EndpointError` (key redacted) when the endpoint cannot be reached or answers badly.
    """
    url = join_url(base_url, "/models")
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    secrets = (api_key,) if api_key else ()
    try:
        via = httpx_proxy(proxies.for_url(url) if proxies is not None else None)
        verify = tls if tls is not None else verify_for([url])
        async with httpx.AsyncClient(
            transport=transport, timeout=timeout, trust_env=False, proxy=via, verify=verify
        ) as http:
            resp = await http.get(url, headers=headers)
    except httpx.HTTPError as exc:
        message = _redact(f"GET {url} failed: {type(exc).__name__}: {exc}", secrets)
        raise EndpointError(message, connect=isinstance(exc, httpx.ConnectError)) from None
    if resp.status_code != 200:
        body = _redact(resp.text[:300], secrets)
        message = _redact(f"GET {url}: HTTP {resp.status_code}: {body}", secrets)
        raise EndpointError(message, status=resp.status_code, body=body)
    try:
        ids = [str(m["id"]) for m in resp.json()["data"]]
    except (ValueError, KeyError, TypeError) as exc:
        detail = f"GET {url}: unexpected response ({type(exc).__name__}): {resp.text[:200]}"
        raise EndpointError(_redact(detail, secrets)) from None
    if not ids:
        raise EndpointError(f"GET {url}: the endpoint lists no models; set endpoint.model in the scenario")
    return ids
