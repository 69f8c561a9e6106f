"""The client end to end on scripted streams (httpx.MockTransport + a scripted clock), and on loopback."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
import pytest
from aiohttp import web

from tpsbench.client.client import Client, EndpointError, build_body, decode_exchange, list_models
from tpsbench.client.transport.aiohttp import AiohttpTransport
from tpsbench.client.transport.base import RawExchange
from tpsbench.client.transport.httpx import HttpxTransport
from tpsbench.config.scenario import Endpoint, Timeouts, Workload
from tpsbench.core.record import ErrorKind, RequestRecord, TokenSource

T = TypeVar("T")
BASE = "http://test/v1/"
KEY = "sk-test-0123456789abcdef"


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


@dataclass
class Prompt:
    messages: list[dict[str, str]] | None = None
    prompt: str | None = None
    input_tokens: int = 12
    max_tokens: int = 5


CHAT_PROMPT = Prompt(messages=[{"role": "user", "content": "hi"}])
WORKLOAD = Workload()


class ScriptedClock:
    def __init__(self, start: int = 100) -> None:
        self.now = start

    def __call__(self) -> int:
        return self.now


def sse(obj: Any) -> bytes:
    return b"data: " + json.dumps(obj).encode() + b"\n\n"


DONE = b"data: [DONE]\n\n"


def delta(usage: dict[str, int] | None = None, finish: str | None = None, **d: Any) -> bytes:
    obj: dict[str, Any] = {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": d}]}
    obj["choices"][0]["finish_reason"] = finish
    if usage is not None:
        obj["usage"] = usage
    return sse(obj)


def usage_only(completion: int, prompt: int = 7) -> bytes:
    return sse({"choices": [], "usage": {"prompt_tokens": prompt, "completion_tokens": completion}})


def u(completion: int, prompt: int = 7) -> dict[str, int]:
    return {"prompt_tokens": prompt, "completion_tokens": completion}


@dataclass
class Server:
    """A scripted response: status, when headers come, then (time, bytes) reads; records requests."""

    script: list[tuple[int, bytes]]
    status: int = 200
    headers_at: int = 1_000
    end_at: int | None = None
    content_type: str = "text/event-stream"

    def __post_init__(self) -> None:
        self.clock = ScriptedClock()
        self.requests: list[httpx.Request] = []

    async def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        self.clock.now = self.headers_at

        async def body() -> AsyncIterator[bytes]:
            for t, data in self.script:
                self.clock.now = t
                yield data
            if self.end_at is not None:
                self.clock.now = self.end_at

        return httpx.Response(self.status, content=body(), headers={"content-type": self.content_type})

    def send(
        self,
        prompt: Prompt = CHAT_PROMPT,
        endpoint: Endpoint | None = None,
        api_key: str | None = None,
        **client_kw: Any,
    ) -> RequestRecord:
        async def go() -> RequestRecord:
            transport = HttpxTransport(clock=self.clock, transport=httpx.MockTransport(self.handler))
            client = Client(endpoint or Endpoint(), BASE, "m", transport, api_key=api_key, **client_kw)
            try:
                return (await client.send(prompt, request_id=3, level=1, workload=WORKLOAD)).record
            finally:
                await transport.aclose()

        return run(go())


# --- request building ---------------------------------------------------------------------------------


def test_request_id_header_is_a_uuid_that_ends_with_the_record_id() -> None:
    # llama-cpp-python's server answers HTTP 400 (empty body) to an X-Request-Id that is not a UUID.
    import uuid

    from tpsbench.reference.pace import request_key

    server = Server([(2_000, delta(content="x")), (3_000, DONE)])
    server.send()
    server.send()
    first, second = (r.headers["x-request-id"] for r in server.requests)
    assert str(uuid.UUID(first)) == first and uuid.UUID(first).version == 4
    assert first.endswith("-000000000003") and request_key(first) == 3
    assert first[:8] != second[:8]  # a new client, a new random prefix


def test_chat_body_url_and_headers() -> None:
    server = Server([(2_000, delta(content="x")), (3_000, DONE)])
    ep = Endpoint(headers={"X-Team": "perf"})
    server.send(endpoint=ep, api_key=KEY)
    (req,) = server.requests
    assert str(req.url) == "http://test/v1/chat/completions"
    assert req.headers["authorization"] == f"Bearer {KEY}"
    assert req.headers["x-team"] == "perf"
    assert req.headers["content-type"] == "application/json"
    assert req.headers["accept-encoding"] == "identity"
    assert json.loads(req.content) == {
        "model": "m",
        "messages": [{"role": "user", "content": "hi"}],
        "stream": True,
        "stream_options": {"include_usage": True},
        "max_tokens": 5,
        "ignore_eos": True,
        "min_tokens": 5,
    }


def test_no_authorization_header_without_key() -> None:
    server = Server([(2_000, delta(content="x")), (3_000, DONE)])
    server.send()
    assert "authorization" not in server.requests[0].headers


def test_body_options() -> None:
    ep = Endpoint(
        api="completions", continuous_usage=True, extra_body={"temperature": 0, "ignore_eos": False}
    )
    wl = Workload(ignore_eos=True, min_tokens=False, max_tokens_field="max_completion_tokens")
    body = build_body(ep, "m", Prompt(prompt="once upon", max_tokens=9), wl)
    assert body == {
        "model": "m",
        "prompt": "once upon",
        "stream": True,
        "stream_options": {"include_usage": True, "continuous_usage_stats": True},
        "max_completion_tokens": 9,
        "ignore_eos": False,  # extra_body wins
        "temperature": 0,
    }
    # Each API accepts the other's prompt form.
    assert build_body(Endpoint(), "m", Prompt(prompt="p"), wl)["messages"] == [
        {"role": "user", "content": "p"}
    ]
    assert build_body(ep, "m", CHAT_PROMPT, wl)["prompt"] == "hi"
    with pytest.raises(ValueError, match="neither"):
        build_body(ep, "m", Prompt(), wl)


def test_completions_url_and_repr_hides_key() -> None:
    client = Client(Endpoint(api="completions"), "http://h/v1", "m", AiohttpTransport(), api_key=KEY)
    assert client.url == "http://h/v1/completions"
    assert KEY not in repr(client)


# --- decoding successful streams ----------------------------------------------------------------------


def test_normal_chat_stream() -> None:
    server = Server(
        [
            (2_000, delta(role="assistant", content="")),  # role-only: not a token chunk
            (3_000, delta(content="Hello")),
            (4_000, delta(content=" world")),
            (5_000, delta(content="!", finish="length")),
            (5_100, usage_only(5, prompt=9)),
            (5_200, DONE),
        ],
        end_at=5_300,
    )
    rec = server.send()
    assert rec.ok, rec.error_detail
    assert (rec.request_id, rec.level, rec.status) == (3, 1, 200)
    assert (rec.send_ns, rec.headers_ns, rec.end_ns) == (100, 1_000, 5_200)  # end = [DONE] arrival
    assert rec.chunk_ns == [3_000, 4_000, 5_000]
    assert (rec.output_tokens, rec.token_source) == (5, TokenSource.USAGE)
    # e = ceil(chars/4) = [2, 2, 1], scaled to 5.
    assert rec.chunk_tokens == [2.0, 2.0, 1.0]
    assert (rec.input_tokens, rec.requested_output_tokens, rec.finish_reason) == (9, 5, "length")


def test_completions_stream() -> None:
    def text(t: str, finish: str | None = None) -> bytes:
        return sse(
            {"object": "text_completion", "choices": [{"index": 0, "text": t, "finish_reason": finish}]}
        )

    server = Server(
        [(2_000, text("Once")), (3_000, text(" upon", "length")), (3_100, usage_only(2)), (3_200, DONE)]
    )
    rec = server.send(Prompt(prompt="Tell a story"), endpoint=Endpoint(api="completions"))
    assert rec.ok
    assert str(server.requests[0].url) == "http://test/v1/completions"
    assert json.loads(server.requests[0].content)["prompt"] == "Tell a story"
    # e = ceil(chars/4) = [1, 2], scaled to n = 2.
    assert (rec.chunk_ns, rec.output_tokens) == ([2_000, 3_000], 2)
    assert rec.chunk_tokens == pytest.approx([2 / 3, 4 / 3])


def test_continuous_usage_gives_per_chunk_counts() -> None:
    # vLLM continuous_usage_stats: every chunk carries cumulative usage; speculative decoding sends 1-4.
    server = Server(
        [
            (2_000, delta(role="assistant", content="", usage=u(0))),
            (3_000, delta(content="A quick", usage=u(3))),  # a first chunk with several tokens
            (4_000, delta(content=" brown", usage=u(4))),
            (5_000, delta(content=" fox jumps", usage=u(7), finish="length")),
            (5_100, usage_only(7)),
            (5_200, DONE),
        ]
    )
    rec = server.send(endpoint=Endpoint(continuous_usage=True))
    assert json.loads(server.requests[0].content)["stream_options"]["continuous_usage_stats"] is True
    assert rec.ok
    assert (rec.chunk_tokens, rec.output_tokens, rec.token_source) == (
        [3.0, 1.0, 3.0],
        7,
        TokenSource.CHUNK_USAGE,
    )


def test_usage_in_the_last_content_chunk_only_is_not_per_chunk_usage() -> None:
    server = Server(
        [
            (2_000, delta(content="aaaa")),
            (3_000, delta(content="bbbbbbbb", usage=u(6), finish="stop")),
            (4_000, DONE),
        ]
    )
    rec = server.send()
    assert (rec.chunk_tokens, rec.output_tokens, rec.token_source) == ([2.0, 4.0], 6, TokenSource.USAGE)


def test_missing_usage_is_estimated_and_labelled() -> None:
    server = Server(
        [(2_000, delta(content="Hello")), (3_000, delta(content=" wonderful world")), (4_000, DONE)]
    )
    rec = server.send()
    # n = ceil(21 / 4) = 6; e = [2, 4] -> [2, 4].
    assert rec.ok
    assert (rec.output_tokens, rec.token_source, rec.chunk_tokens) == (6, TokenSource.ESTIMATE, [2.0, 4.0])
    assert rec.input_tokens == 12  # no usage.prompt_tokens: the prompt's own count


def test_missing_usage_with_a_tokenizer() -> None:
    server = Server([(2_000, delta(content="Hello")), (3_000, delta(content=" big world")), (4_000, DONE)])
    rec = server.send(count_tokens=lambda s: len(s.split()))
    assert (rec.output_tokens, rec.token_source) == (3, TokenSource.TOKENIZER)
    assert sum(rec.chunk_tokens) == pytest.approx(3)


def test_single_chunk_answer() -> None:
    server = Server([(2_000, delta(content="42", finish="stop")), (2_500, usage_only(1)), (2_600, DONE)])
    rec = server.send()
    assert (rec.chunk_ns, rec.chunk_tokens, rec.output_tokens) == ([2_000], [1.0], 1)


def test_reasoning_content_counts_as_generated_text() -> None:
    server = Server(
        [
            (2_000, delta(role="assistant")),
            (3_000, delta(reasoning_content="Let me think")),
            (4_000, delta(reasoning="...")),
            (5_000, delta(content="Yes")),
            (5_100, usage_only(6)),
            (5_200, DONE),
        ]
    )
    rec = server.send()
    assert rec.chunk_ns == [3_000, 4_000, 5_000]
    assert sum(rec.chunk_tokens) == pytest.approx(6)


def test_tool_call_arguments_are_tokens_but_the_header_delta_is_not() -> None:
    def call(args: str, name: str | None = None) -> dict[str, Any]:
        fn: dict[str, Any] = {"arguments": args}
        if name:
            fn["name"] = name
        return {"index": 0, "id": "c1", "type": "function", "function": fn}

    server = Server(
        [
            (2_000, delta(role="assistant", tool_calls=[call("", "get_weather")])),
            (3_000, delta(tool_calls=[call('{"city": ')])),
            (4_000, delta(tool_calls=[call('"Paris"}')], finish="tool_calls")),
            (4_100, usage_only(8)),
            (4_200, DONE),
        ]
    )
    rec = server.send()
    assert rec.ok
    assert rec.chunk_ns == [3_000, 4_000]
    assert rec.finish_reason == "tool_calls"


def test_event_split_across_reads_is_stamped_when_it_completed() -> None:
    chunk = delta(content="Hi")
    server = Server(
        [(2_000, chunk[:10]), (2_500, chunk[10:-1]), (2_700, chunk[-1:] + usage_only(1)), (3_000, DONE)]
    )
    rec = server.send()
    assert rec.chunk_ns == [2_700]


# --- failures -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "kind"), [(400, ErrorKind.HTTP_4XX), (429, ErrorKind.HTTP_429), (503, ErrorKind.HTTP_5XX)]
)
def test_http_errors_keep_status_and_body(status: int, kind: ErrorKind) -> None:
    body = b'{"error": {"message": "nope"}}'
    rec = Server([(2_000, body)], status=status, content_type="application/json").send()
    assert (rec.status, rec.error, rec.error_detail) == (status, kind, body.decode())
    assert (rec.chunk_ns, rec.output_tokens, rec.token_source) == ([], None, TokenSource.NONE)


def test_stream_cut_before_done_keeps_chunks() -> None:
    server = Server([(2_000, delta(content="Hello")), (3_000, delta(content=" wor"))], end_at=3_500)
    rec = server.send()
    assert rec.error is ErrorKind.STREAM_CUT
    assert rec.chunk_ns == [2_000, 3_000]
    assert rec.end_ns == 3_500
    assert rec.token_source is TokenSource.ESTIMATE and sum(rec.chunk_tokens) == pytest.approx(3)


def test_transport_stream_cut_keeps_chunks() -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        async def body() -> AsyncIterator[bytes]:
            yield delta(content="Hello")
            raise httpx.RemoteProtocolError("peer closed connection without sending complete message body")

        return httpx.Response(200, content=body())

    async def go() -> RequestRecord:
        transport = HttpxTransport(transport=httpx.MockTransport(handler))
        client = Client(Endpoint(), BASE, "m", transport)
        try:
            return (await client.send(CHAT_PROMPT, request_id=0, level=0, workload=WORKLOAD)).record
        finally:
            await transport.aclose()

    rec = run(go())
    assert rec.error is ErrorKind.STREAM_CUT
    assert len(rec.chunk_ns) == 1
    assert rec.error_detail and "RemoteProtocolError" in rec.error_detail


def test_malformed_json_event() -> None:
    server = Server([(2_000, delta(content="Hi")), (3_000, b"data: {not json\n\n"), (4_000, DONE)])
    rec = server.send()
    assert rec.error is ErrorKind.MALFORMED_JSON
    assert rec.error_detail and "{not json" in rec.error_detail
    assert rec.chunk_ns == [2_000]


def test_unexpected_chunk_shape_is_malformed_json() -> None:
    rec = Server([(2_000, sse({"choices": [{"delta": {"content": 5}}]})), (3_000, DONE)]).send()
    assert rec.error is ErrorKind.MALFORMED_JSON


def test_non_sse_body_on_200() -> None:
    body = json.dumps({"id": "x", "choices": [{"message": {"content": "Hello"}}]}).encode()
    rec = Server([(2_000, body)], content_type="application/json").send()
    assert rec.error is ErrorKind.MALFORMED_SSE
    assert rec.error_detail and '"choices"' in rec.error_detail


@pytest.mark.parametrize(
    "event",
    [
        sse({"error": {"message": "engine died", "code": 500}}),
        sse({"object": "error", "message": "engine died", "code": 500}),
        b'event: error\ndata: {"message": "engine died"}\n\n',
    ],
)
def test_server_error_event(event: bytes) -> None:
    rec = Server([(2_000, delta(content="Hi")), (3_000, event), (4_000, DONE)]).send()
    assert rec.error is ErrorKind.SERVER_ERROR_EVENT
    assert rec.error_detail and "engine died" in rec.error_detail
    assert rec.chunk_ns == [2_000]


def test_done_without_any_token_is_no_tokens() -> None:
    rec = Server(
        [(2_000, delta(role="assistant", content="", finish="stop")), (2_100, usage_only(0)), (2_200, DONE)]
    ).send()
    assert rec.error is ErrorKind.NO_TOKENS
    assert rec.output_tokens == 0


def test_empty_200_body_is_a_stream_cut() -> None:
    assert Server([]).send().error is ErrorKind.STREAM_CUT


def test_first_token_timeout() -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        async def body() -> AsyncIterator[bytes]:
            await asyncio.sleep(10)
            yield DONE

        return httpx.Response(200, content=body())

    async def go() -> RequestRecord:
        transport = HttpxTransport(transport=httpx.MockTransport(handler))
        ep = Endpoint(timeouts=Timeouts(first_token_s=0.05))
        client = Client(ep, BASE, "m", transport)
        try:
            return (await client.send(CHAT_PROMPT, request_id=0, level=0, workload=WORKLOAD)).record
        finally:
            await transport.aclose()

    rec = run(go())
    assert (rec.status, rec.error, rec.chunk_ns) == (200, ErrorKind.TIMEOUT_FIRST_TOKEN, [])


def test_connection_refused_through_aiohttp() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    async def go() -> RequestRecord:
        transport = AiohttpTransport()
        client = Client(Endpoint(), f"http://127.0.0.1:{port}/v1", "m", transport, api_key=KEY)
        try:
            return (await client.send(CHAT_PROMPT, request_id=0, level=0, workload=WORKLOAD)).record
        finally:
            await transport.aclose()

    rec = run(go())
    assert (rec.status, rec.error) == (None, ErrorKind.CONNECT)
    assert KEY not in json.dumps(rec.to_dict())


def test_api_key_echoed_by_the_server_is_redacted() -> None:
    async def echo(request: httpx.Request) -> httpx.Response:
        auth = request.headers["authorization"]
        return httpx.Response(401, text=f"invalid credentials: {auth!r} (key {KEY[:6]}...)")

    async def go() -> RequestRecord:
        transport = HttpxTransport(transport=httpx.MockTransport(echo))
        client = Client(Endpoint(), BASE, "m", transport, api_key=KEY)
        try:
            return (await client.send(CHAT_PROMPT, request_id=0, level=0, workload=WORKLOAD)).record
        finally:
            await transport.aclose()

    rec = run(go())
    assert rec.error is ErrorKind.HTTP_4XX
    assert KEY not in json.dumps(rec.to_dict())
    assert rec.error_detail and "Bearer [REDACTED]" in rec.error_detail


def test_redaction_covers_in_stream_errors_and_a_key_cut_at_the_body_limit() -> None:
    stream = Server([(2_000, sse({"error": {"message": f"bad key {KEY}"}}))])
    rec = stream.send(api_key=KEY)
    assert KEY not in json.dumps(rec.to_dict())
    raw = RawExchange(send_ns=0, end_ns=1, status=401, error=ErrorKind.HTTP_4XX, error_detail="x" + KEY[:-3])
    rec = decode_exchange(raw, prompt=CHAT_PROMPT, request_id=0, level=0, secrets=[KEY])
    assert rec.error_detail == "x[REDACTED]"


# --- pure decoding edge cases -------------------------------------------------------------------------


def decode(reads: list[tuple[int, bytes]], **raw_kw: Any) -> RequestRecord:
    kw: dict[str, Any] = {
        "send_ns": 0,
        "end_ns": 99_999,
        "status": 200,
        "headers_ns": 1,
        "body_complete": True,
    }
    kw.update(raw_kw)
    return decode_exchange(RawExchange(reads=reads, **kw), prompt=CHAT_PROMPT, request_id=0, level=0)


def test_done_then_a_transport_error_is_still_a_success() -> None:
    rec = decode([(10, delta(content="Hi")), (20, DONE)], error=ErrorKind.STREAM_CUT, body_complete=False)
    assert rec.ok and rec.end_ns == 20


def test_events_after_done_and_empty_keepalives_are_ignored() -> None:
    rec = decode([(10, b": ping\n\ndata:\n\n" + delta(content="Hi")), (20, DONE + b"data: {bad\n\n")])
    assert rec.ok and rec.chunk_ns == [10]


def test_a_resent_exchange_makes_a_resent_record() -> None:
    assert decode([(10, delta(content="Hi")), (20, DONE)], resent=True).resent
    assert not decode([(10, delta(content="Hi")), (20, DONE)]).resent
    assert decode([], status=None, error=ErrorKind.CONNECT, resent=True).resent


def test_repeated_reads_decode_as_the_general_walk_does() -> None:
    """The chat decoder remembers whole reads whose events it has replayed; the same bytes again (the same
    object, or an equal copy) must give exactly what parsing them would: every chunk at its own time, the
    usage of the read it came in, the events counted."""
    from tpsbench.client.apis.base import iter_events, run_steps
    from tpsbench.client.apis.chat import CHAT, _apply_chunk

    tok = delta(content=" tok")
    two = delta(content="a") + delta(content="b", usage={"completion_tokens": 2})
    reads = [(1, delta(role="assistant", content=""))]
    for i in range(2, 40):
        piece = tok if i % 3 else bytes(bytearray(tok))  # equal copies as well as the same object
        reads.append((i, two if i % 7 == 0 else piece))
    reads += [(50, b"data: {bad json"), (51, b"\n\n" + tok), (52, usage_only(45) + DONE)]
    fast = CHAT.scan(reads)
    general = run_steps(iter_events(reads, _apply_chunk, done_data="[DONE]", pure=False))
    assert fast == general
    assert fast.error is ErrorKind.MALFORMED_JSON  # the bad event stops both walks at the same place
    clean = [r for r in reads if r[0] < 50] + [(52, usage_only(45) + DONE)]
    fast, general = CHAT.scan(clean), run_steps(iter_events(clean, _apply_chunk, done_data="[DONE]"))
    assert fast == general and fast.done_ns == 52 and len(fast.chunk_ns) == 38 + 5
    assert fast.events == general.events and fast.chunk_usage.count(2) == 5


def test_transport_timeout_mid_stream_keeps_chunks() -> None:
    rec = decode([(10, delta(content="Hi"))], error=ErrorKind.TIMEOUT_REQUEST, body_complete=False)
    assert rec.error is ErrorKind.TIMEOUT_REQUEST and rec.chunk_ns == [10]


# --- list_models and a real loopback server -----------------------------------------------------------


def test_list_models() -> None:
    seen: list[httpx.Request] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"object": "list", "data": [{"id": "a"}, {"id": "b"}]})

    models = run(list_models(BASE, KEY, 5.0, transport=httpx.MockTransport(handler)))
    assert models == ["a", "b"]
    assert str(seen[0].url) == "http://test/v1/models"
    assert seen[0].headers["authorization"] == f"Bearer {KEY}"


def test_list_models_errors_are_redacted() -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, text=f"bad key {KEY}")

    with pytest.raises(EndpointError) as info:
        run(list_models(BASE, KEY, 5.0, transport=httpx.MockTransport(handler)))
    assert "HTTP 401" in str(info.value) and KEY not in str(info.value)


def test_client_against_a_loopback_aiohttp_server() -> None:
    async def chat(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        assert body["stream"] is True and request.headers["Authorization"] == f"Bearer {KEY}"
        resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await resp.prepare(request)
        await resp.write(delta(role="assistant", content=""))
        for word in ("one", " two", " three"):
            await asyncio.sleep(0.02)
            await resp.write(delta(content=word))
        await resp.write(usage_only(3) + DONE)
        await resp.write_eof()
        return resp

    async def go() -> RequestRecord:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", chat)
        runner = web.AppRunner(app, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        transport = AiohttpTransport()
        client = Client(Endpoint(), f"http://{host}:{port}/v1", "m", transport, api_key=KEY)
        try:
            return (await client.send(CHAT_PROMPT, request_id=0, level=0, workload=WORKLOAD)).record
        finally:
            await transport.aclose()
            await runner.cleanup()

    rec = run(go())
    assert rec.ok, rec.error_detail
    assert len(rec.chunk_ns) == 3 and rec.output_tokens == 3 and rec.token_source is TokenSource.USAGE
    gaps = [b - a for a, b in zip(rec.chunk_ns, rec.chunk_ns[1:], strict=False)]
    assert all(g >= 10_000_000 for g in gaps)  # 20 ms apart on the server
    assert rec.send_ns < rec.chunk_ns[0] <= rec.end_ns
