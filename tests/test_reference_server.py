"""The reference endpoint over HTTP: OpenAI conformance, errors, disconnects, metrics and timing."""

from __future__ import annotations

import asyncio
import json
import math
import socket
import statistics
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import aiohttp
import openai
import pytest

from tpsbench.reference.api import MODEL_NAME
from tpsbench.reference.model import DEFAULT_PARAMS, ModelParams, ReferenceModel
from tpsbench.reference.serve import ReferenceServerProcess, parse_param_overrides
from tpsbench.reference.server import ServerHandle, start_server
from tpsbench.reference.telemetry import pace_warnings

T = TypeVar("T")


def with_server(main: Callable[[ServerHandle], Awaitable[T]], params: ModelParams = DEFAULT_PARAMS) -> T:
    """Run ``main`` against an in-process server (fine for conformance; timing uses a subprocess)."""

    async def wrapper() -> T:
        handle = await start_server(params=params)
        try:
            return await asyncio.wait_for(main(handle), 30)
        finally:
            await handle.stop()

    return asyncio.run(wrapper())


def chat_body(**extra: Any) -> dict[str, Any]:
    return {"model": MODEL_NAME, "messages": [{"role": "user", "content": "x" * 400}], **extra}


async def sse_events(resp: aiohttp.ClientResponse) -> AsyncIterator[tuple[float, Any]]:
    """(arrival time, parsed data) of each SSE event; ``[DONE]`` as the string."""
    async for line in resp.content:
        if line.startswith(b"data: "):
            data = line[6:].strip()
            yield time.perf_counter(), data.decode() if data == b"[DONE]" else json.loads(data)


# --- conformance with the openai client ---------------------------------------------------------------
def test_openai_client_chat_and_completions_streaming_and_not() -> None:
    async def main(h: ServerHandle) -> None:
        client = openai.AsyncOpenAI(base_url=h.url, api_key="unused", max_retries=0)
        models = await client.models.list()
        assert [m.id for m in models.data] == [MODEL_NAME]

        reply = await client.chat.completions.create(
            model=MODEL_NAME, messages=[{"role": "user", "content": "hello"}], max_tokens=20,
            extra_body={"ignore_eos": True},
        )  # fmt: skip
        assert (
            reply.usage is not None and reply.usage.completion_tokens == 20 and reply.usage.prompt_tokens == 2
        )
        assert reply.choices[0].finish_reason == "length"
        assert math.ceil(len(reply.choices[0].message.content or "") / 4) == 20

        stream = await client.chat.completions.create(
            model=MODEL_NAME,
            messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}],
            max_completion_tokens=30, stream=True, stream_options={"include_usage": True},
            extra_body={"ignore_eos": True},
        )  # fmt: skip
        texts, usage, roles = [], None, 0
        async for chunk in stream:
            if chunk.usage is not None:
                usage = chunk.usage
            for choice in chunk.choices:
                roles += choice.delta.role == "assistant"
                if choice.delta.content:
                    texts.append(choice.delta.content)
        assert roles == 1 and usage is not None
        assert (usage.prompt_tokens, usage.completion_tokens) == (3, 30)  # ceil((8 + 2) chars / 4)
        assert sum(math.ceil(len(t) / 4) for t in texts) == 30
        assert len(texts) < 30  # several tokens per chunk (speculative decoding)

        done = await client.completions.create(
            model=MODEL_NAME, prompt="x" * 40, max_tokens=7, extra_body={"ignore_eos": True}
        )
        assert (
            done.choices[0].text == " tok" * 7 and done.usage is not None and done.usage.prompt_tokens == 10
        )

        pieces = [
            c.choices[0].text
            async for c in await client.completions.create(
                model=MODEL_NAME, prompt="x", max_tokens=9, stream=True, extra_body={"ignore_eos": True}
            )
            if c.choices
        ]
        assert "".join(pieces) == " tok" * 9

        with pytest.raises(openai.NotFoundError, match="does not exist"):
            await client.chat.completions.create(model="gpt-4", messages=[{"role": "user", "content": "x"}])
        await client.close()

    with_server(main)


# --- errors -------------------------------------------------------------------------------------------
BAD_REQUESTS: list[tuple[str, Any, int, str | None]] = [
    ("/chat/completions", b"{not json", 400, None),
    ("/chat/completions", [1, 2], 400, None),
    ("/chat/completions", {"messages": [{"role": "user", "content": "x"}]}, 400, "model"),
    ("/chat/completions", {"model": "nope", "messages": [{"role": "user", "content": "x"}]}, 404, "model"),
    ("/chat/completions", {"model": MODEL_NAME}, 400, "messages"),
    ("/chat/completions", {"model": MODEL_NAME, "messages": []}, 400, "messages"),
    ("/chat/completions", {"model": MODEL_NAME, "messages": ["hi"]}, 400, "messages[0]"),
    ("/chat/completions", chat_body(max_tokens=0), 400, "max_tokens"),
    ("/chat/completions", chat_body(max_tokens="ten"), 400, "max_tokens"),
    ("/chat/completions", chat_body(max_completion_tokens=-5), 400, "max_completion_tokens"),
    ("/chat/completions", chat_body(max_tokens=2_000_000), 400, "max_tokens"),
    ("/chat/completions", chat_body(max_tokens=5, min_tokens=10), 400, "min_tokens"),
    ("/chat/completions", chat_body(stream="yes"), 400, "stream"),
    ("/chat/completions", chat_body(stream_options={"include_usage": True}), 400, "stream_options"),
    ("/chat/completions", chat_body(n=2), 400, "n"),
    ("/completions", {"model": MODEL_NAME}, 400, "prompt"),
    ("/completions", {"model": MODEL_NAME, "prompt": ["a", "b"]}, 400, "prompt"),
    ("/nowhere", {}, 404, None),
]


def test_malformed_requests_get_openai_style_4xx() -> None:
    async def main(h: ServerHandle) -> None:
        async with aiohttp.ClientSession() as http:
            for path, body, status, param in BAD_REQUESTS:
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                async with http.post(
                    h.url + path, data=data, headers={"Content-Type": "application/json"}
                ) as r:
                    err = (await r.json())["error"]
                    assert r.status == status, (path, body, err)
                    assert err["message"] and err["type"] and err["param"] == param, (path, body, err)
            async with http.get(h.url + "/chat/completions") as r:
                assert r.status == 405 and (await r.json())["error"]["message"]
            assert h.engine.stats()["requests"]["submitted"] == 0

    with_server(main)


# --- streaming details --------------------------------------------------------------------------------
def test_continuous_usage_is_cumulative_and_matches_the_text() -> None:
    async def main(h: ServerHandle) -> list[Any]:
        body = chat_body(max_tokens=40, ignore_eos=True, stream=True,
                         stream_options={"include_usage": True, "continuous_usage_stats": True})  # fmt: skip
        async with aiohttp.ClientSession() as http, http.post(h.url + "/chat/completions", json=body) as r:
            assert r.headers["Content-Type"].startswith("text/event-stream")
            return [data async for _, data in sse_events(r)]

    events = with_server(main)
    assert events[-1] == "[DONE]"
    final = events[-2]
    assert final["choices"] == [] and final["usage"] == {
        "prompt_tokens": 100,
        "completion_tokens": 40,
        "total_tokens": 140,
    }
    assert events[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    total = 0
    for e in events[1:-2]:
        total += math.ceil(len(e["choices"][0]["delta"]["content"]) / 4)
        assert e["usage"]["completion_tokens"] == total
    assert total == 40 and events[-3]["choices"][0]["finish_reason"] == "length"


def test_without_ignore_eos_lengths_vary_and_min_tokens_holds() -> None:
    params = DEFAULT_PARAMS.with_overrides({"eos_mean_tokens": 12, "spec_max_batch": 64})

    async def main(h: ServerHandle) -> list[tuple[int, str]]:
        async def one(**extra: Any) -> tuple[int, str]:
            async with http.post(
                h.url + "/completions", json={"model": MODEL_NAME, "prompt": "x", **extra}
            ) as r:
                d = await r.json()
                return d["usage"]["completion_tokens"], d["choices"][0]["finish_reason"]

        async with aiohttp.ClientSession() as http:
            free = await asyncio.gather(*(one(max_tokens=200) for _ in range(20)))
            floored = await asyncio.gather(*(one(max_tokens=200, min_tokens=50) for _ in range(3)))
            return [*free, *floored]

    results = with_server(main, params)
    free, floored = results[:20], results[20:]
    assert len({n for n, _ in free}) > 3 and all(n < 200 and reason == "stop" for n, reason in free)
    assert all(n >= 50 for n, _ in floored)


def test_disconnect_mid_stream_frees_the_slot() -> None:
    async def main(h: ServerHandle) -> None:
        async with aiohttp.ClientSession() as http:
            body = chat_body(max_tokens=100_000, ignore_eos=True, stream=True)
            resp = await http.post(h.url + "/chat/completions", json=body)
            n = 0
            async for _ in sse_events(resp):
                n += 1
                if n == 5:
                    break
            async with http.get(h.root + "/pace") as r:
                assert (await r.json())["engine"]["active"] == 1
            resp.close()  # drop the connection mid-stream
            for _ in range(100):
                async with http.get(h.root + "/pace") as r:
                    engine = (await r.json())["engine"]
                if engine["active"] == 0:
                    break
                await asyncio.sleep(0.01)
            assert engine["active"] == 0 and engine["batch"] == 0
            assert engine["requests"]["cancelled"] == 1

    with_server(main)


def test_metrics_reset_returns_the_window_that_ended() -> None:
    async def main(h: ServerHandle) -> tuple[Any, Any]:
        async with aiohttp.ClientSession() as http:
            async with http.post(
                h.url + "/chat/completions", json=chat_body(max_tokens=10, ignore_eos=True)
            ) as r:
                assert r.status == 200
            async with http.post(h.root + "/pace/reset") as r:
                before = await r.json()
            async with http.get(h.root + "/pace") as r:
                return before, await r.json()

    before, after = with_server(main)
    assert before["engine"]["tokens"]["completion"] == 10 and before["engine"]["lag_s"]["count"] > 0
    assert after["engine"]["tokens"]["completion"] == 0 and after["engine"]["steps"] == 0
    assert set(after) >= {"engine", "delivery_lag_s", "server_ttft_s", "warnings"}


def test_prometheus_metrics_are_vllm_families_that_count_what_was_served() -> None:
    from prometheus_client.parser import text_string_to_metric_families

    params = DEFAULT_PARAMS.with_overrides({"max_batch": 4})

    async def main(h: ServerHandle) -> tuple[str, str, str]:
        async with aiohttp.ClientSession() as http:
            async with http.get(h.root + "/metrics") as r:
                assert r.headers["Content-Type"].startswith("text/plain")
                idle = await r.text()
            body = chat_body(max_tokens=50, ignore_eos=True, stream=True)
            streams = [await http.post(h.url + "/chat/completions", json=body) for _ in range(6)]
            await streams[0].content.readline()  # the headers and a first event: the engine is busy
            async with http.get(h.root + "/metrics") as r:
                busy = await r.text()
            for resp in streams:
                await resp.read()
            async with http.get(h.root + "/metrics") as r:
                return idle, busy, await r.text()

    def samples(text: str) -> dict[str, float]:
        out = {}
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                assert s.labels == {"model_name": MODEL_NAME}
                out[s.name] = s.value
        return out

    idle, busy, after = (samples(t) for t in with_server(main, params))
    assert idle["vllm:num_requests_running"] == 0 and idle["vllm:generation_tokens_total"] == 0
    assert busy["vllm:num_requests_running"] == 4 and busy["vllm:num_requests_waiting"] == 2
    assert busy["vllm:kv_cache_usage_perc"] == 1.0  # 4 of 4 slots
    assert after["vllm:generation_tokens_total"] == 6 * 50 and after["vllm:prompt_tokens_total"] == 6 * 100
    assert after["vllm:request_success_total"] == 6 and after["vllm:num_requests_running"] == 0
    drafts, accepted = (
        after["vllm:spec_decode_num_draft_tokens_total"],
        after["vllm:spec_decode_num_accepted_tokens_total"],
    )
    # k = 3 drafts per decode step while B <= 8; a decode step commits accepted + 1 tokens
    assert 0 < accepted < drafts and drafts % 3 == 0


def test_http_keep_alive_pipelining_http10_and_framing_errors() -> None:
    async def main(h: ServerHandle) -> list[bytes]:
        out = []
        reader, writer = await asyncio.open_connection(h.host, h.port)
        get = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
        writer.write(get + get)  # two pipelined requests on one connection
        await writer.drain()
        for _ in range(2):
            out.append(await reader.readuntil(b'{"status":"ok"}'))
        body = json.dumps(chat_body(max_tokens=3, ignore_eos=True, stream=True)).encode()
        writer.write(
            b"POST /v1/chat/completions HTTP/1.0\r\nContent-Length: %d\r\n\r\n%b" % (len(body), body)
        )
        out.append(await reader.read())  # HTTP/1.0: raw body, the connection closes at the end
        writer.close()
        reader, writer = await asyncio.open_connection(h.host, h.port)
        writer.write(b"POST /v1/completions HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n")
        out.append(await reader.read())
        writer.close()
        return out

    first, second, http10, chunked = with_server(main)
    assert first.startswith(b"HTTP/1.1 200") and second.startswith(b"HTTP/1.1 200")
    assert b"Transfer-Encoding" not in http10 and http10.rstrip().endswith(b"data: [DONE]")
    assert chunked.startswith(b"HTTP/1.1 411") and b'"error"' in chunked


# --- the subprocess and real-time behaviour -----------------------------------------------------------
def test_timing_at_concurrency_1_matches_the_model() -> None:
    """Cadence, TTFT, token count and TPS/user of lone streams vs the model, through HTTP (own process).

    Tolerances are for a shared 2-core machine: a few ms of scheduling delay at either end of a stream are
    diluted by 500 tokens (~180 steps); the exact timeline is checked without host noise in
    test_reference_engine.py.
    """
    isl, osl = 1000, 500
    model = ReferenceModel()

    async def one(http: aiohttp.ClientSession, url: str) -> tuple[float, list[float], list[int], int]:
        body = {"model": MODEL_NAME, "prompt": "x" * (4 * isl), "max_tokens": osl, "ignore_eos": True,
                "stream": True, "stream_options": {"include_usage": True}}  # fmt: skip
        sent = time.perf_counter()
        times, tokens, usage = [], [], -1
        async with http.post(url + "/completions", json=body) as r:
            async for t, data in sse_events(r):
                if isinstance(data, dict) and data["choices"]:
                    times.append(t)
                    tokens.append(math.ceil(len(data["choices"][0]["text"]) / 4))
                elif isinstance(data, dict):
                    usage = data["usage"]["completion_tokens"]
        return sent, times, tokens, usage

    async def main(url: str) -> list[tuple[float, list[float], list[int], int]]:
        async with aiohttp.ClientSession() as http:
            await one(http, url)  # warm the connection
            return [await one(http, url) for _ in range(3)]

    with ReferenceServerProcess(seed=7) as server:
        runs = asyncio.run(main(server.url))

    step = model.step_time(1, isl + osl / 2, 3)
    cadences, ttfts, tps, tps_expected = [], [], [], []
    for sent, times, tokens, usage in runs:
        assert usage == sum(tokens) == osl and tokens[0] == 1
        assert set(tokens[1:]) <= {1, 2, 3, 4} and len(set(tokens[1:])) >= 3  # bursts of 1..k+1 tokens
        decode = times[-1] - times[0]
        cadences.append(decode / (len(times) - 1))
        ttfts.append(times[0] - sent)
        tps.append((osl - 1) / decode)
        tps_expected.append((osl - 1) / ((len(times) - 1) * step))  # the model, given these draws
    assert statistics.median(cadences) == pytest.approx(step, rel=0.03)
    assert statistics.median(tps) == pytest.approx(statistics.median(tps_expected), rel=0.03)
    # TPS/user also vs the prediction: 200 tokens leave ~4% s.d. from the acceptance draws alone
    assert statistics.median(tps) == pytest.approx(model.predict(1, isl, osl).tps_user, rel=0.10)
    # TTFT = t_pf(isl) plus the HTTP round trip through two Python processes (1-2 ms here); contention only
    # adds to it (a time slice is a few ms), so check the least disturbed request.
    assert model.prefill_time(isl) - 0.0005 < min(ttfts) < model.prefill_time(isl) + 0.006


def test_server_process_passes_params_and_reports_bad_ones() -> None:
    with ReferenceServerProcess({"max_batch": 3, "accept_probs": "0.9,0.8,0.7"}) as server:

        async def main() -> Any:
            async with aiohttp.ClientSession() as http, http.get(server.root + "/pace") as r:
                return await r.json()

        assert asyncio.run(main())["engine"]["max_batch"] == 3
    with pytest.raises(ValueError, match="unknown reference model parameter 'nope'"):
        ReferenceServerProcess({"nope": 1})
    assert parse_param_overrides(["draft_len=0", " max_batch = 8 "]) == {"draft_len": "0", "max_batch": "8"}
    with pytest.raises(ValueError, match="NAME=VALUE"):
        parse_param_overrides(["draft_len"])


def test_shutdown_ends_open_streams_with_an_error_event() -> None:
    async def main() -> list[Any]:
        handle = await start_server()
        async with aiohttp.ClientSession() as http:
            body = chat_body(max_tokens=100_000, ignore_eos=True, stream=True)
            async with http.post(handle.url + "/chat/completions", json=body) as r:
                events = []
                async for _, data in sse_events(r):
                    events.append(data)
                    if len(events) == 3:
                        asyncio.get_running_loop().create_task(handle.stop())
                return events

    events = asyncio.run(asyncio.wait_for(main(), 10))
    assert events[-1] == "[DONE]" and events[-2]["error"]["code"] == "server_shutting_down"


def test_pace_warnings_flag_a_simulator_that_fell_behind() -> None:
    def metrics(lag_p50: float, lag_max: float, delivery_p99: float) -> dict[str, Any]:
        return {
            "engine": {"step_s_mean": 0.005, "lag_s": {"count": 100, "p50": lag_p50, "max": lag_max}},
            "delivery_lag_s": {"p99": delivery_p99},
        }

    assert pace_warnings(metrics(0.0001, 0.004, 0.002)) == []
    assert pace_warnings({"engine": {"steps": 0, "lag_s": {"count": 0}}}) == []
    behind = pace_warnings(metrics(0.2, 0.4, 0.4))
    assert len(behind) == 2 and "fell behind" in behind[0] and "delivery lag p99 400.0 ms" in behind[1]
    assert len(pace_warnings(metrics(0.0001, 0.004, 0.009))) == 1  # jitter only


def test_every_streamed_chunk_is_stamped_once() -> None:
    """The step sink writes plain middle steps from the encoder's frames: the wire has one token event per
    engine chunk (each one a delivery-lag sample), and the usage and the text count every token."""

    async def main(h: ServerHandle) -> None:
        h.server.reset_pace()
        async with aiohttp.ClientSession() as http:
            payload = chat_body(max_tokens=40, ignore_eos=True, stream=True)
            payload["stream_options"] = {"include_usage": True}
            async with http.post(h.url + "/chat/completions", json=payload) as resp:
                events = [data async for _, data in sse_events(resp)]
        token_events = [
            e
            for e in events
            if isinstance(e, dict) and e["choices"] and e["choices"][0]["delta"].get("content")
        ]  # fmt: skip (not the role-only delta)
        assert len(token_events) > 10  # speculation: 1..k+1 tokens a chunk, 40 in all
        assert h.server.delivery.count == len(token_events)
        assert events[-2]["usage"]["completion_tokens"] == 40 and events[-1] == "[DONE]"
        assert sum(len(e["choices"][0]["delta"]["content"]) for e in token_events) == 4 * 40

    with_server(main)


def test_a_full_socket_keeps_every_streamed_byte_in_order() -> None:
    """Where the step sink sends a frame itself and the socket takes part of it or none, the rest goes to
    the transport's buffer (transport.write): the client still reads every HTTP chunk whole, in order."""

    async def main(h: ServerHandle) -> tuple[bytes, int]:
        reader, writer = await asyncio.open_connection(h.host, h.port)
        writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        body = json.dumps(chat_body(max_tokens=1_000_000, ignore_eos=True, stream=True)).encode()
        writer.write(
            b"POST /v1/chat/completions HTTP/1.1\r\nContent-Length: %d\r\n\r\n%b" % (len(body), body)
        )
        received = await reader.readuntil(b" tok")  # the first token: its stream's middle frames exist
        (conn,) = h.server.connections
        transport = conn.transport
        assert transport is not None and conn._gen is not None
        transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16384)
        h.server.deliver_step([(conn._gen, 2, None)] * 3_000, asyncio.get_running_loop().time())
        buffered = transport.get_write_buffer_size()
        while received.count(b"data: ") < 3_000:
            received += await reader.read(65536)
        writer.close()
        return received, buffered

    received, buffered = with_server(main)
    assert buffered > 100_000  # the socket took a few frames; the transport holds the rest
    stream = received.partition(b"\r\n\r\n")[2]
    events = 0
    while (end := stream.find(b"\r\n")) >= 0 and len(stream) >= end + 2 + int(stream[:end], 16) + 2:
        size = int(stream[:end], 16)
        chunk, stream = stream[end + 2 : end + 2 + size], stream[end + 2 + size :]
        assert chunk.startswith(b"data: {") and chunk.endswith(b"}\n\n") and stream.startswith(b"\r\n")
        stream = stream[2:]
        events += chunk.count(b"data: ")
    assert events >= 3_000
