"""llama-cpp-python's OpenAI server (Python, one request at a time) on the Gemma 3 270M GGUF: the cases the
C++ llama-server of tests/test_llamacpp.py does not have.

Its quirks, each handled and tested: no usage in the stream despite ``include_usage`` (counts come from a
tokenizer, or are labelled estimates); ``max_completion_tokens`` ignored (``max_tokens`` honoured; shorter
answers are reported as ``short_outputs``); a role-only first delta (not a token); the
``/extras/tokenize/count`` route (the ``server`` tokenizer's llama-cpp-python dialect). The package is
installed anyway: it is the ``gguf:`` tokenizer (tpsbench.workload.tokenizer.GGUFTokenizer).

Skipped when llama-cpp-python is not installed (``pip install -e '.[llamacpp]'``), failed instead in CI.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from llama_fixtures import MODEL, assemble_gguf, free_port, missing

from tpsbench.client.client import Client
from tpsbench.client.sse import SSEParser
from tpsbench.client.transport import RawExchange, make_transport
from tpsbench.config.scenario import Scenario, Timeouts
from tpsbench.core.record import Reply
from tpsbench.core.serverprocess import ServerProcess
from tpsbench.load.benchmark import run_benchmark
from tpsbench.results import files, metrics
from tpsbench.workload.prompts import build_prompts
from tpsbench.workload.tokenizer import GGUFTokenizer, ServerTokenizer

OSL = 32
pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def gguf(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        missing("llama-cpp-python is not installed: pip install -e '.[llamacpp]'")
    return assemble_gguf(request, tmp_path_factory)


@pytest.fixture(scope="module")
def llama(gguf: Path) -> Iterator[str]:
    """llama-cpp-python's server on a free loopback port, one thread (the client has the other core)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/v1"
    args = [
        "-m", "llama_cpp.server",
        "--model", str(gguf), "--model_alias", MODEL,
        "--host", "127.0.0.1", "--port", str(port),
        "--n_ctx", "2048", "--n_threads", "1",
        "--chat_format", "gemma",  # the GGUF has no chat template; the fallback (llama-2) answers nothing
        "--interrupt_requests", "False",  # else every new request cuts off the stream in progress
    ]  # fmt: skip
    with ServerProcess(
        args, executable=sys.executable, url=url, ready_path="/v1/models", startup_timeout_s=120
    ):
        yield url


@pytest.fixture(scope="module")
def vocab(gguf: Path) -> GGUFTokenizer:
    return GGUFTokenizer(gguf)


def _scenario(url: str, gguf: Path, api: str, load: list[dict[str, Any]], **over: Any) -> Scenario:
    endpoint = {"base_url": url, "api": api, "model": MODEL, "tokenizer": f"gguf:{gguf}"}
    endpoint |= over.pop("endpoint", {})
    workload = {"input_tokens": 24, "output_tokens": OSL, "seed": 1} | over.pop("workload", {})
    return Scenario.model_validate(
        {"name": f"llama-cpp-python-{api}", "endpoint": endpoint, "workload": workload, "load": load, **over}
    )


def _run(scenario: Scenario, tmp_path: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    outcome = asyncio.run(run_benchmark(scenario, out_root=tmp_path))
    records = files.read_records(outcome.run_dir / files.REQUESTS)  # raw fields win over derived metrics
    return outcome.summary, [metrics.request_metrics(r) | r.to_dict() for r in records]


def _send_one(scenario: Scenario, url: str, vocab: GGUFTokenizer, transport: Any, **client: Any) -> Reply:
    """The scenario's first prompt, sent once through a :class:`Client` on ``transport`` (closed after)."""
    prompt = build_prompts(scenario.workload, "chat", 1, tokenizer=vocab)[0]

    async def go() -> Reply:
        sender = Client(scenario.endpoint, url, MODEL, transport, **client)
        try:
            return await sender.send(prompt, request_id=0, level=0, workload=scenario.workload)
        finally:
            await transport.aclose()

    return asyncio.run(go())


class _Recording:
    """A transport that keeps every raw exchange, to look at the bytes the server sent."""

    def __init__(self) -> None:
        self.inner = make_transport("h11")
        self.exchanges: list[RawExchange] = []

    async def stream(self, url: str, headers: Any, body: bytes, timeouts: Timeouts) -> RawExchange:
        raw = await self.inner.stream(url, headers, body, timeouts)
        self.exchanges.append(raw)
        return raw

    async def aclose(self) -> None:
        await self.inner.aclose()


def test_role_only_first_delta_and_no_usage_in_the_stream(
    llama: str, gguf: Path, vocab: GGUFTokenizer
) -> None:
    scenario = _scenario(
        llama, gguf, "chat", [{"concurrency": 1, "requests": 1}], workload={"output_tokens": 8}
    )
    recording = _Recording()
    record = _send_one(scenario, llama, vocab, recording, count_tokens=vocab.count).record
    assert record.error is None, (record.error_detail, recording.exchanges[0])
    events: list[tuple[int, dict[str, Any]]] = []
    parser = SSEParser()
    for t, data in recording.exchanges[0].reads:
        events += [(t, json.loads(ev.data)) for ev in parser.feed(data) if ev.data.strip() != "[DONE]"]
    deltas = [e["choices"][0]["delta"] if e.get("choices") else {} for _, e in events]
    assert deltas[0] == {"role": "assistant"}  # the quirk: a role-only first event
    assert not any("usage" in e for _, e in events)  # ...and no usage, although include_usage was asked
    content = [t for (t, _), d in zip(events, deltas, strict=True) if d.get("content")]
    assert record.error is None and record.token_source.value == "tokenizer"
    assert record.chunk_ns == content  # the role-only event is not a token chunk: TTFT starts at content
    assert len(record.chunk_ns) == len(events) - 2  # all but the role-only event and the finish event


def test_without_a_tokenizer_counts_are_labelled_estimates(llama: str, gguf: Path, tmp_path: Path) -> None:
    scenario = _scenario(
        llama,
        gguf,
        "completions",
        [{"concurrency": 1, "requests": 2, "warmup": 0}],
        endpoint={"tokenizer": None},
    )
    summary, lines = _run(scenario, tmp_path)
    point = summary["points"][0]
    assert point["token_sources"] == {"estimate": 2}
    assert any("estimated from characters" in w for w in point["warnings"])
    assert all(x["token_source"] == "estimate" for x in lines)


def test_max_completion_tokens_is_ignored_and_reported_as_short_outputs(
    llama: str, gguf: Path, tmp_path: Path
) -> None:
    # The server reads max_tokens only: asked through max_completion_tokens for 24 tokens, it stops at its
    # default of 16. tpsbench says so instead of reporting a 16-token answer as a 24-token one.
    scenario = _scenario(
        llama,
        gguf,
        "completions",
        [{"concurrency": 1, "requests": 2, "warmup": 0}],
        workload={"output_tokens": 24, "max_tokens_field": "max_completion_tokens"},
    )
    summary, lines = _run(scenario, tmp_path)
    point = summary["points"][0]
    assert point["errors"] == {} and point["short_outputs"] == 2
    assert any(c["cause"] == "short_outputs" for c in point["warning_causes"]), point["warnings"]
    assert all(x["output_tokens"] < 24 and x["requested_output_tokens"] == 24 for x in lines)
    assert all(x["finish_reason"] == "length" and x["n_chunks"] == 16 for x in lines)


def test_server_tokenizer_speaks_the_extras_dialect_and_counts_after_each_level(
    llama: str, gguf: Path, vocab: GGUFTokenizer, tmp_path: Path
) -> None:
    server = ServerTokenizer(llama, MODEL)
    try:
        assert server.name.endswith("/extras/tokenize/count")
        texts = [
            "hello world",
            "Once upon a time, in a land far away.",
            " spaces  and\nnewlines\t",
            "été ☃ 東京",
        ]
        assert [server.count(t) for t in texts] == [vocab.count(t) for t in texts]
        assert server.count("") == 0  # the BOS the server adds is removed
        # A generated answer is counted as its text, exactly as the GGUF vocabulary counts that text.
        scenario = _scenario(llama, gguf, "chat", [{"concurrency": 1, "requests": 1}])
        transport = make_transport("h11")
        reply = _send_one(scenario, llama, vocab, transport, count_tokens=server.count, keep_text=True)
        record, text = reply.record, reply.text
        assert record.error is None and text, record.error_detail
        assert record.output_tokens == vocab.count(text)
    finally:
        server.close()
    scenario = _scenario(
        llama,
        gguf,
        "chat",
        [{"concurrency": 1, "requests": 2, "warmup": 0}],
        endpoint={"tokenizer": "server"},
    )
    summary, lines = _run(scenario, tmp_path)
    assert summary["run"]["tokenizer"].startswith("server:")
    assert summary["points"][0]["token_sources"] == {"tokenizer": 2}
    # A count of the text, not of the generation: this small model's sampled tokens often re-tokenize into
    # fewer (21 of 32 seen, finish_reason "length"), so the bound is from above; the exact count is above.
    assert all(x["token_source"] == "tokenizer" and 0 < x["output_tokens"] <= OSL + 2 for x in lines)
    assert all(sum(x["chunk_tokens"]) == pytest.approx(x["output_tokens"]) for x in lines)
