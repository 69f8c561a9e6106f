"""The Anthropic Messages and OpenAI Responses APIs on scripted streams: requests, token chunks, usage,
end events and in-stream errors (httpx.MockTransport for the request side, recorded reads for decoding)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tpsbench.client.apis import api_for
from tpsbench.client.client import Client, decode_exchange
from tpsbench.client.transport.base import RawExchange
from tpsbench.client.transport.httpx import HttpxTransport
from tpsbench.config.scenario import Endpoint, Scenario, Workload
from tpsbench.core.record import ErrorKind, RequestRecord, TokenSource

KEY = "sk-ant-test-0123456789abcdef"


@dataclass
class Prompt:
    messages: list[dict[str, str]] | None = None
    prompt: str | None = None
    input_tokens: int = 12
    max_tokens: int = 5


PROMPT = Prompt(messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}])


def ev(kind: str, **data: Any) -> bytes:
    """One typed SSE event as both APIs send it: ``event: <type>`` and the type in the data too."""
    return f"event: {kind}\ndata: {json.dumps({'type': kind, **data})}\n\n".encode()


# --- Anthropic Messages --------------------------------------------------------------------------------


def m_start(input_tokens: int = 9) -> bytes:
    usage = {"input_tokens": input_tokens, "output_tokens": 1}
    return ev("message_start", message={"id": "msg_1", "role": "assistant", "content": [], "usage": usage})


def block_start(index: int = 0, kind: str = "text") -> bytes:
    return ev("content_block_start", index=index, content_block={"type": kind, kind: ""})


def text(t: str, index: int = 0) -> bytes:
    return ev("content_block_delta", index=index, delta={"type": "text_delta", "text": t})


def thinking(t: str) -> bytes:
    return ev("content_block_delta", index=0, delta={"type": "thinking_delta", "thinking": t})


def m_delta(output_tokens: int, stop: str = "max_tokens") -> bytes:
    return ev(
        "message_delta",
        delta={"stop_reason": stop, "stop_sequence": None},
        usage={"output_tokens": output_tokens},
    )


M_STOP = ev("message_stop")
PING = ev("ping")


def decode(api: str, reads: list[tuple[int, bytes]], **raw_kw: Any) -> RequestRecord:
    kw: dict[str, Any] = {
        "send_ns": 0,
        "end_ns": 99_999,
        "status": 200,
        "headers_ns": 1,
        "body_complete": True,
    }
    kw.update(raw_kw)
    raw = RawExchange(reads=reads, **kw)
    return decode_exchange(raw, prompt=PROMPT, request_id=0, level=0, api=api_for(api), secrets=[KEY])


def test_messages_ttft_is_the_first_text_delta_not_message_start_or_a_ping() -> None:
    rec = decode(
        "messages",
        [
            (10, m_start(9) + block_start()),
            (20, PING),
            (30, text("Hel")),
            (40, text("lo wor") + text("ld")),
            (50, ev("content_block_stop", index=0) + m_delta(4)),
            (60, M_STOP),
        ],
    )
    assert rec.ok
    assert rec.chunk_ns == [30, 40, 40]
    assert rec.chunk_tokens == [1.0, 2.0, 1.0]
    assert rec.output_tokens == 4 and rec.token_source is TokenSource.USAGE
    assert rec.input_tokens == 9 and rec.finish_reason == "max_tokens"
    assert rec.end_ns == 60


def test_messages_events_split_across_reads_take_the_arrival_of_their_last_byte() -> None:
    stream = m_start() + block_start() + text("ab") + text("cd") + m_delta(2) + M_STOP
    cut1 = stream.index(b"ab") + 1  # inside the first delta
    cut2 = stream.index(b"cd") + 4  # inside the second delta, after its text
    reads = [(10, stream[:cut1]), (20, stream[cut1:cut2]), (30, stream[cut2:])]
    rec = decode("messages", reads)
    assert rec.ok and rec.chunk_ns == [20, 30] and rec.end_ns == 30


def test_messages_thinking_and_tool_input_deltas_are_generated_tokens_a_signature_is_not() -> None:
    rec = decode(
        "messages",
        [
            (
                10,
                m_start()
                + ev("content_block_start", index=0, content_block={"type": "thinking", "thinking": ""}),
            ),
            (20, thinking("let me")),
            (30, ev("content_block_delta", index=0, delta={"type": "signature_delta", "signature": "sig=="})),
            (
                40,
                ev(
                    "content_block_delta",
                    index=1,
                    delta={"type": "input_json_delta", "partial_json": '{"a":'},
                ),
            ),
            (50, text("ok", index=2) + m_delta(6, "end_turn") + M_STOP),
        ],
    )
    assert rec.ok and rec.chunk_ns == [20, 40, 50]
    assert rec.output_tokens == 6 and rec.finish_reason == "end_turn"


def test_messages_multi_token_chunks_without_usage_are_estimated_from_their_text() -> None:
    rec = decode("messages", [(10, m_start() + text("x" * 12)), (20, text("y" * 4) + M_STOP)])
    assert rec.ok and rec.token_source is TokenSource.ESTIMATE
    assert rec.output_tokens == 4 and rec.chunk_tokens == [3.0, 1.0]


def test_messages_cached_input_tokens_count_as_input() -> None:
    usage = {"input_tokens": 3, "cache_read_input_tokens": 100, "cache_creation_input_tokens": 7}
    start = ev("message_start", message={"id": "m", "usage": usage})
    rec = decode("messages", [(10, start + text("a") + M_STOP)])
    assert rec.input_tokens == 110


def test_messages_error_event_mid_stream_keeps_chunks_and_the_message() -> None:
    err = {"type": "overloaded_error", "message": f"Overloaded (key {KEY})"}
    rec = decode("messages", [(10, m_start() + text("a")), (20, PING + ev("error", error=err)), (30, M_STOP)])
    assert rec.error is ErrorKind.SERVER_ERROR_EVENT
    assert rec.error_detail is not None and "Overloaded" in rec.error_detail and KEY not in rec.error_detail
    assert rec.chunk_ns == [10] and rec.end_ns == 99_999


def test_messages_stream_without_message_stop_is_cut() -> None:
    rec = decode("messages", [(10, m_start() + text("a"))])
    assert rec.error is ErrorKind.STREAM_CUT
    assert rec.error_detail is not None and "before message_stop" in rec.error_detail


def test_messages_no_done_marker_is_needed_and_a_stray_one_is_not_json() -> None:
    rec = decode("messages", [(10, m_start() + M_STOP)])
    assert rec.error is ErrorKind.NO_TOKENS
    rec = decode("messages", [(10, text("a") + b"data: [DONE]\n\n")])
    assert rec.error is ErrorKind.MALFORMED_JSON


def test_messages_malformed_delta_is_named() -> None:
    bad = ev("content_block_delta", index=0, delta={"type": "text_delta", "text": 5})
    rec = decode("messages", [(10, bad)])
    assert rec.error is ErrorKind.MALFORMED_JSON and "delta.text is not a string" in (rec.error_detail or "")


# --- OpenAI Responses ----------------------------------------------------------------------------------


def r_created() -> bytes:
    return ev("response.created", response={"id": "resp_1", "status": "in_progress"}, sequence_number=0)


def r_text(t: str) -> bytes:
    return ev("response.output_text.delta", item_id="msg_1", output_index=0, content_index=0, delta=t)


def r_done(output_tokens: int | None, kind: str = "response.completed", **response: Any) -> bytes:
    body: dict[str, Any] = {"id": "resp_1", "status": "completed", **response}
    if output_tokens is not None:
        body["usage"] = {
            "input_tokens": 11,
            "output_tokens": output_tokens,
            "total_tokens": 11 + output_tokens,
        }
    return ev(kind, response=body)


def test_responses_ttft_is_the_first_text_delta_and_usage_is_exact() -> None:
    rec = decode(
        "responses",
        [
            (10, r_created() + ev("response.in_progress", response={"id": "resp_1"})),
            (15, ev("response.output_item.added", output_index=0, item={"type": "message"})),
            (20, ev("response.content_part.added", part={"type": "output_text", "text": ""})),
            (30, r_text("Hel")),
            (40, r_text("lo wor") + r_text("ld")),
            (50, ev("response.output_text.done", text="Hello world") + r_done(4)),
        ],
    )
    assert rec.ok and rec.chunk_ns == [30, 40, 40] and rec.end_ns == 50
    assert rec.output_tokens == 4 and rec.chunk_tokens == [1.0, 2.0, 1.0]
    assert rec.input_tokens == 11 and rec.finish_reason == "completed"


def test_responses_reasoning_deltas_count_and_incomplete_is_a_complete_stream() -> None:
    rec = decode(
        "responses",
        [
            (10, r_created()),
            (20, ev("response.reasoning_summary_text.delta", delta="think")),
            (25, ev("response.reasoning_text.delta", delta="more")),
            (30, r_text("answer")),
            (
                40,
                r_done(
                    5,
                    "response.incomplete",
                    status="incomplete",
                    incomplete_details={"reason": "max_output_tokens"},
                ),
            ),
        ],
    )
    assert rec.ok and rec.chunk_ns == [20, 25, 30]
    assert rec.output_tokens == 5 and rec.finish_reason == "max_output_tokens"


def test_responses_failed_and_error_events_are_server_errors_with_the_message() -> None:
    failed = ev(
        "response.failed",
        response={"id": "r", "status": "failed", "error": {"code": "server_error", "message": "boom"}},
    )
    rec = decode("responses", [(10, r_created() + r_text("a")), (20, failed)])
    assert rec.error is ErrorKind.SERVER_ERROR_EVENT and "boom" in (rec.error_detail or "")
    assert rec.chunk_ns == [10]
    rec = decode(
        "responses", [(10, r_text("a") + ev("error", code="rate_limit_exceeded", message="slow down"))]
    )
    assert rec.error is ErrorKind.SERVER_ERROR_EVENT and "slow down" in (rec.error_detail or "")


def test_responses_body_ending_before_completed_is_cut() -> None:
    rec = decode("responses", [(10, r_created() + r_text("a"))])
    assert rec.error is ErrorKind.STREAM_CUT and "before response.completed" in (rec.error_detail or "")


def test_responses_split_event_and_keepalive_comments() -> None:
    stream = r_created() + b": keepalive\n\n" + r_text("ab") + r_done(1)
    cut = stream.index(b'"ab"') + 2
    rec = decode("responses", [(10, stream[:cut]), (20, stream[cut:])])
    assert rec.ok and rec.chunk_ns == [20]


# --- the request side, through the client and httpx.MockTransport --------------------------------------


def send(
    endpoint: Endpoint, script: list[bytes], api_key: str | None = KEY
) -> tuple[httpx.Request, RequestRecord]:
    seen: list[httpx.Request] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)

        async def body() -> AsyncIterator[bytes]:
            for data in script:
                yield data

        return httpx.Response(200, content=body(), headers={"content-type": "text/event-stream"})

    async def go() -> RequestRecord:
        transport = HttpxTransport(transport=httpx.MockTransport(handler))
        client = Client(endpoint, "http://test/v1", "m", transport, api_key=api_key)
        try:
            return (await client.send(PROMPT, request_id=3, level=0, workload=Workload())).record
        finally:
            await transport.aclose()

    rec = asyncio.run(go())
    return seen[0], rec


def test_messages_request_url_headers_and_body() -> None:
    req, rec = send(Endpoint(api="messages"), [m_start(), text("a"), m_delta(1), M_STOP])
    assert rec.ok and rec.output_tokens == 1
    assert str(req.url) == "http://test/v1/messages"
    assert req.headers["x-api-key"] == KEY and "authorization" not in req.headers
    assert req.headers["anthropic-version"] == "2023-06-01"
    assert json.loads(req.content) == {
        "model": "m",
        "system": "be brief",
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 5,
        "stream": True,
        "ignore_eos": True,
        "min_tokens": 5,
    }


def test_messages_version_header_and_body_can_be_overridden() -> None:
    ep = Endpoint(api="messages", headers={"Anthropic-Version": "2099-01-01"}, extra_body={"temperature": 0})
    req, _ = send(ep, [M_STOP], api_key=None)
    assert req.headers.get_list("anthropic-version") == ["2099-01-01"]
    assert "x-api-key" not in req.headers
    assert json.loads(req.content)["temperature"] == 0


def test_responses_request_url_headers_and_body() -> None:
    req, rec = send(Endpoint(api="responses"), [r_created(), r_text("ab"), r_done(2)])
    assert rec.ok and rec.output_tokens == 2
    assert str(req.url) == "http://test/v1/responses"
    assert req.headers["authorization"] == f"Bearer {KEY}"
    assert json.loads(req.content) == {
        "model": "m",
        "input": PROMPT.messages,
        "max_output_tokens": 5,
        "stream": True,
        "store": False,
        "ignore_eos": True,
        "min_tokens": 5,
    }


def test_scenario_accepts_the_new_apis_and_rejects_others() -> None:
    for api in ("messages", "responses"):
        assert (
            Scenario.model_validate(
                {"endpoint": {"api": api}, "load": [{"concurrency": 1, "requests": 1}]}
            ).endpoint.api
            == api
        )
    with pytest.raises(ValueError):
        api_for("anthropic")


def test_chat_only_options_are_refused_for_the_typed_apis() -> None:
    load = [{"concurrency": 1, "requests": 1}]
    with pytest.raises(ValueError, match="api 'responses' always sends 'max_output_tokens'"):
        Scenario.model_validate(
            {
                "endpoint": {"api": "responses"},
                "workload": {"max_tokens_field": "max_completion_tokens"},
                "load": load,
            }
        )
    with pytest.raises(ValueError, match=r"continuous_usage .* not to api 'messages'"):
        Scenario.model_validate({"endpoint": {"api": "messages", "continuous_usage": True}, "load": load})
