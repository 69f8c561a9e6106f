"""The reference endpoint's Anthropic Messages and OpenAI Responses APIs: the wire format (event order,
usage, error shapes), and tpsbench runs on them end to end, agreeing with a chat run of the same workload."""

from __future__ import annotations

import asyncio
import json
import statistics
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import pytest

from tpsbench.client.sse import SSEParser
from tpsbench.config.scenario import Scenario
from tpsbench.load.benchmark import run_benchmark
from tpsbench.reference.api import MODEL_NAME
from tpsbench.reference.server import ServerHandle, start_server

T = TypeVar("T")
MESSAGES = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "x" * 40}]


def with_server(main: Callable[[ServerHandle], Awaitable[T]]) -> T:
    async def wrapper() -> T:
        handle = await start_server()
        try:
            return await main(handle)
        finally:
            await handle.stop()

    return asyncio.run(wrapper())


async def post(h: ServerHandle, path: str, body: dict[str, Any]) -> tuple[int, bytes]:
    async with aiohttp.ClientSession() as http, http.post(h.url + path, json=body) as resp:
        return resp.status, await resp.read()


def events(raw: bytes) -> list[tuple[str | None, dict[str, Any]]]:
    return [(e.event, json.loads(e.data)) for e in SSEParser().feed(raw)]


def test_messages_stream_is_anthropic_shaped_and_counts_its_tokens() -> None:
    body = {"model": MODEL_NAME, "messages": MESSAGES[1:], "system": "be brief", "max_tokens": 12}
    status, raw = with_server(lambda h: post(h, "/messages", {**body, "stream": True, "ignore_eos": True}))
    assert status == 200 and b"[DONE]" not in raw
    evs = events(raw)
    assert all(name == data["type"] for name, data in evs)
    kinds = [name for name, _ in evs]
    assert kinds[:3] == ["message_start", "content_block_start", "ping"]
    assert kinds[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert set(kinds[3:-3]) == {"content_block_delta"}
    text = "".join(d["delta"]["text"] for _, d in evs if d["type"] == "content_block_delta")
    assert len(text) == 4 * 12  # " tok" per token
    assert evs[0][1]["message"]["usage"]["input_tokens"] == 12  # ceil((8 + 40) / 4)
    final = evs[-2][1]
    assert final["usage"]["output_tokens"] == 12 and final["delta"]["stop_reason"] == "max_tokens"


def test_responses_stream_is_openai_shaped_and_ends_incomplete_at_the_limit() -> None:
    body = {
        "model": MODEL_NAME,
        "input": MESSAGES,
        "max_output_tokens": 12,
        "stream": True,
        "ignore_eos": True,
    }
    status, raw = with_server(lambda h: post(h, "/responses", body))
    assert status == 200 and b"[DONE]" not in raw
    evs = events(raw)
    kinds = [name for name, _ in evs]
    assert kinds[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert kinds[-1] == "response.incomplete"
    assert [d["sequence_number"] for _, d in evs] == list(range(len(evs)))
    text = "".join(d["delta"] for _, d in evs if d["type"] == "response.output_text.delta")
    final = evs[-1][1]["response"]
    assert (
        len(text) == 4 * 12 and final["usage"]["output_tokens"] == 12 and final["usage"]["input_tokens"] == 12
    )
    assert final["incomplete_details"] == {"reason": "max_output_tokens"}
    assert final["output"][0]["content"][0]["text"] == text


def test_non_streamed_bodies_and_error_shapes() -> None:
    async def main(h: ServerHandle) -> list[tuple[int, Any]]:
        out = []
        for path, body in (
            (
                "/messages",
                {"model": MODEL_NAME, "messages": MESSAGES[1:], "max_tokens": 3, "ignore_eos": True},
            ),
            (
                "/responses",
                {"model": MODEL_NAME, "input": "hello", "max_output_tokens": 3, "ignore_eos": True},
            ),
            ("/messages", {"model": MODEL_NAME, "messages": MESSAGES[1:]}),
            ("/responses", {"model": MODEL_NAME, "max_output_tokens": 3}),
        ):
            status, raw = await post(h, path, body)
            out.append((status, json.loads(raw)))
        return out

    (s1, msg), (s2, resp), (s3, err1), (s4, err2) = with_server(main)
    assert s1 == 200 and msg["type"] == "message" and msg["content"][0]["text"] == " tok" * 3
    assert msg["usage"] == {"input_tokens": 10, "output_tokens": 3} and msg["stop_reason"] == "max_tokens"
    assert s2 == 200 and resp["status"] == "incomplete" and resp["usage"]["output_tokens"] == 3
    assert s3 == 400 and err1["type"] == "error" and "max_tokens" in err1["error"]["message"]
    assert s4 == 400 and err2["error"]["param"] == "input"


def _scenario(api: str) -> Scenario:
    return Scenario.model_validate(
        {
            "name": f"ref-{api}",
            "endpoint": {"api": api},
            "workload": {"input_tokens": 64, "output_tokens": 48},
            "load": [{"concurrency": 4, "requests": 24}],
        }
    )


def test_chat_messages_and_responses_runs_on_the_reference_endpoint_agree(tmp_path: Path) -> None:
    points = {}
    for api in ("chat", "messages", "responses"):
        outcome = asyncio.run(run_benchmark(_scenario(api), out_root=tmp_path))
        lines = [json.loads(x) for x in (outcome.run_dir / "requests.jsonl").read_text().splitlines()]
        assert all(x["error"] is None for x in lines), api
        assert all(x["output_tokens"] == 48 and x["token_source"] == "usage" for x in lines), api
        assert statistics.median(x["input_tokens"] for x in lines) >= 64
        meta = json.loads((outcome.run_dir / "metadata.json").read_text())
        assert meta["endpoint"]["api"] == api
        points[api] = outcome.summary["points"][0]
    chat = points["chat"]
    for api in ("messages", "responses"):
        # the same simulated engine: TPS/user within a few percent, TTFT within a few ms (one noisy core)
        assert points[api]["tps_user"]["p50"] == pytest.approx(chat["tps_user"]["p50"], rel=0.05), api
        assert points[api]["ttft_s"]["p50"] == pytest.approx(chat["ttft_s"]["p50"], abs=0.02), api
