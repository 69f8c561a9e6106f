"""End to end against a real HTTP server on 127.0.0.1 streaming on a known schedule: 50 ms to the first
token, then a chunk of 3 tokens every 10 ms. tpsbench's medians must match what the server actually sent
(its own send log) within 2%, at concurrency 1, 16 and 64."""

from __future__ import annotations

import asyncio
import json
import statistics
from pathlib import Path

import httpx
import pytest

from tpsbench.benchmark import run_benchmark
from tpsbench.paceserver import truth
from tpsbench.scenario import Scenario
from tpsbench.serverprocess import ServerProcess


@pytest.fixture(scope="module")
def pace_url() -> object:
    with ServerProcess(
        [
            "-m",
            "tpsbench.paceserver",
            "--port",
            "0",
            "--ttft-ms",
            "50",
            "--interval-ms",
            "10",
            "--tokens",
            "3",
        ]
    ) as server:
        yield server.url


def _scenario(url: str, concurrency: int, api: str = "chat") -> Scenario:
    return Scenario.model_validate(
        {
            "name": f"pace-c{concurrency}",
            "endpoint": {"base_url": url, "api": api, "model": "pace"},
            "workload": {"input_tokens": 16, "output_tokens": 60},
            "load": [{"concurrency": concurrency, "requests": max(16, 2 * concurrency)}],
        }
    )


@pytest.mark.parametrize("concurrency", [1, 16, 64])
def test_measured_medians_match_server_send_log(pace_url: str, concurrency: int, tmp_path: Path) -> None:
    root = pace_url.removesuffix("/v1")
    httpx.post(root + "/log/reset")
    outcome = asyncio.run(run_benchmark(_scenario(pace_url, concurrency), out_root=tmp_path))
    server = truth(httpx.get(root + "/log").json())

    point = outcome.summary["points"][0]
    assert point["ok"] == point["measured"] == max(16, 2 * concurrency)
    # tpsbench's numbers are over measured requests only; the server log also holds the warmup requests,
    # so compare medians of the whole distributions (all requests follow one schedule)
    lines = [json.loads(x) for x in (outcome.run_dir / "requests.jsonl").read_text().splitlines()]
    client_ttft = statistics.median(x["ttft_s"] for x in lines)
    client_tps = statistics.median(x["tps_user"] for x in lines)
    server_ttft = statistics.median(server["ttft_s"])
    server_tps = statistics.median(server["tps_user"])
    assert client_ttft == pytest.approx(server_ttft, rel=0.02)
    assert client_tps == pytest.approx(server_tps, rel=0.02)
    # and the schedule itself: 3 tokens / 10 ms = 300 tokens/s, all 60 tokens counted
    assert point["tps_user"]["p50"] == pytest.approx(300, rel=0.05)
    assert all(x["output_tokens"] == 60 for x in lines)


def test_completions_api_and_run_directory_contract(pace_url: str, tmp_path: Path) -> None:
    outcome = asyncio.run(run_benchmark(_scenario(pace_url, 4, api="completions"), out_root=tmp_path))
    names = {p.name for p in outcome.run_dir.iterdir()}
    assert {"scenario.yaml", "metadata.json", "requests.jsonl", "summary.json", "summary.csv"} <= names
    summary = json.loads((outcome.run_dir / "summary.json").read_text())
    assert summary["schema"] == 1
    point = summary["points"][0]
    assert point["concurrency"] == 4
    for block in ("ttft_s", "tps_user", "tpot_s", "itl_s", "e2e_s"):
        assert {"mean", "p50", "p90", "p99"} <= set(point[block])
    for key in ("output_tps", "output_tps_per_gpu", "request_rate", "error_rate", "goodput"):
        assert key in point
    # a second run never overwrites the first
    again = asyncio.run(run_benchmark(_scenario(pace_url, 4, api="completions"), out_root=tmp_path))
    assert again.run_dir != outcome.run_dir and outcome.run_dir.exists()
