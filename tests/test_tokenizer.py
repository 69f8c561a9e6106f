"""Tokenizers: a local tokenizer.json, a server's tokenize route (three dialects, scripted), the scenario
setting, and counting in a run against a server that reports no usage."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import PACE_TOKENS

from tpsbench.config.loader import load_scenario
from tpsbench.config.scenario import Scenario, ScenarioError
from tpsbench.core.record import TokenSource
from tpsbench.load.benchmark import run_benchmark
from tpsbench.results.views import open_run
from tpsbench.workload.tokenizer import HFTokenizer, ServerTokenizer, TokenizerError, load_tokenizer

tokenizers = pytest.importorskip("tokenizers", reason="pip install tokenizers (in the llamacpp extra)")


@pytest.fixture(scope="module")
def tokenizer_json(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A word-level tokenizer.json made here (nothing downloaded): known words, the rest [UNK]."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {"[UNK]": 0, "tok": 1, "hello": 2, "world": 3, ",": 4}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    path = tmp_path_factory.mktemp("tok") / "tokenizer.json"
    tok.save(str(path))
    return path


def test_tokenizer_json_counts_like_the_library(tokenizer_json: Path) -> None:
    tok = load_tokenizer(str(tokenizer_json))
    assert isinstance(tok, HFTokenizer) and not tok.deferred and tok.name == str(tokenizer_json)
    assert [tok.count(t) for t in ("", "hello world", " tok tok tok", "hello ,world")] == [0, 2, 3, 2]
    with pytest.raises(TokenizerError, match="cannot load tokenizer"):
        HFTokenizer(tokenizer_json.with_name("missing.json"))


def test_scenario_tokenizer_setting(tmp_path: Path, tokenizer_json: Path) -> None:
    (tmp_path / "t.json").write_text(tokenizer_json.read_text())
    path = tmp_path / "s.yaml"
    path.write_text("endpoint: {tokenizer: t.json}\nload: [{concurrency: 1, requests: 1}]\n")
    assert load_scenario(path).endpoint.tokenizer == str(tmp_path / "t.json")  # relative to the file
    path.write_text("endpoint: {tokenizer: 'gguf:m.gguf'}\nload: [{concurrency: 1, requests: 1}]\n")
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    assert (info.value.line, info.value.field) == (1, "endpoint.tokenizer")
    assert f"tokenizer file not found: {tmp_path / 'm.gguf'}" in info.value.message
    path.write_text("endpoint:\n  tokenizer: bert\nload: [{concurrency: 1, requests: 1}]\n")
    with pytest.raises(ScenarioError, match=r"s.yaml:2: endpoint.tokenizer: expected 'estimate', 'server'"):
        load_scenario(path)
    for ok in ("estimate", "server", None):
        assert Scenario.model_validate(
            {"endpoint": {"tokenizer": ok}, "load": [{"concurrency": 1, "requests": 1}]}
        )
    assert load_tokenizer("estimate") is None and load_tokenizer(None) is None


def _tokenize_server(dialect: str) -> httpx.MockTransport:
    """A scripted server that answers one dialect's tokenize route (1 token per word, BOS for llama-cpp)."""

    def handler(request: httpx.Request) -> httpx.Response:
        body: dict[str, Any] = json.loads(request.content)
        if dialect == "llama-cpp-python" and request.url.path == "/extras/tokenize/count":
            return httpx.Response(200, json={"count": 1 + len(body["input"].split())})
        if dialect == "vllm" and request.url.path == "/tokenize" and "prompt" in body:
            assert body["add_special_tokens"] is False and body["model"] == "m"
            return httpx.Response(200, json={"count": len(body["prompt"].split()), "tokens": []})
        if dialect == "llama-server" and request.url.path == "/tokenize":  # as the real one: 200, no tokens,
            text = body.get("content", "")  # for a body without "content" (vLLM's dialect)
            return httpx.Response(200, json={"tokens": list(range(len(text.split())))})
        return httpx.Response(404, json={"detail": "Not Found"})

    return httpx.MockTransport(handler)


@pytest.mark.parametrize(
    ("dialect", "route"),
    [("llama-cpp-python", "/extras/tokenize/count"), ("vllm", "/tokenize"), ("llama-server", "/tokenize")],
)
def test_server_tokenizer_finds_the_route_and_removes_what_the_server_adds(dialect: str, route: str) -> None:
    tok = ServerTokenizer("http://srv:8000/v1", "m", transport=_tokenize_server(dialect))
    assert tok.deferred and tok.name == f"server:http://srv:8000{route}"
    assert [tok.count(t) for t in ("", "one", "one two three")] == [0, 1, 3]
    tok.close()


def test_server_tokenizer_without_a_route_says_what_to_do() -> None:
    with pytest.raises(TokenizerError, match=r"answered none of the tokenize routes.*tokenizer\.json"):
        ServerTokenizer("http://srv/v1", transport=_tokenize_server("none"))


def _no_usage_scenario(url: str, tokenizer: str | None, workers: int = 1) -> Scenario:
    return Scenario.model_validate(
        {
            "endpoint": {
                "base_url": url,
                "model": "pace",
                "tokenizer": tokenizer,
                # the pace server honours include_usage; turning it off makes it a server without usage
                "extra_body": {"stream_options": {"include_usage": False}},
            },
            "workload": {"input_tokens": 8, "output_tokens": 21},
            "load": [{"concurrency": 2, "requests": 4}],
            "workers": workers,
        }
    )


@pytest.mark.parametrize("workers", [1, 2])
def test_a_run_without_usage_counts_with_the_tokenizer(
    pace_url: str, tokenizer_json: Path, tmp_path: Path, workers: int
) -> None:
    outcome = asyncio.run(
        run_benchmark(_no_usage_scenario(pace_url, str(tokenizer_json), workers), out_root=tmp_path)
    )
    run = open_run(outcome.run_dir)
    assert len(run.records) == 6 and all(r.token_source is TokenSource.TOKENIZER for r in run.records)
    # " tok" pieces, PACE_TOKENS (3) per chunk: 21 tokens in 7 chunks, so counting chunks would say 7
    chunks = -(-21 // PACE_TOKENS)
    assert chunks != 21 and all(r.output_tokens == 21 and len(r.chunk_ns) == chunks for r in run.records)
    assert outcome.summary["points"][0]["token_sources"] == {"tokenizer": 4}
    assert outcome.summary["run"]["tokenizer"] == str(tokenizer_json)
    assert run.metadata["tokenizer"] == str(tokenizer_json)


def test_a_server_tokenizer_needs_a_route_and_one_process(pace_url: str, tmp_path: Path) -> None:
    with pytest.raises(TokenizerError, match="answered none of the tokenize routes"):
        asyncio.run(run_benchmark(_no_usage_scenario(pace_url, "server"), out_root=tmp_path))
    assert not list(tmp_path.iterdir())  # refused before the run directory was made
