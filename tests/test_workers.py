"""Multi-process load generation: shares of a level run in worker processes and merge into one run
directory on one clock."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from tpsbench.config.scenario import Scenario
from tpsbench.load.benchmark import run_benchmark
from tpsbench.load.workers import merge_self_checks


def test_two_workers_merge_into_one_run(pace_url: str, tmp_path: Path) -> None:
    scenario = Scenario.model_validate(
        {
            "endpoint": {"base_url": pace_url, "model": "pace"},
            "workload": {"input_tokens": 8, "output_tokens": 30},
            "workers": 2,
            "load": [
                {"concurrency": 5, "requests": 20},
                {"rate": 40, "arrival": "poisson", "requests": 20, "warmup": 2},
            ],
        }
    )
    outcome = asyncio.run(run_benchmark(scenario, out_root=tmp_path))
    lines = [json.loads(x) for x in (outcome.run_dir / "requests.jsonl").read_text().splitlines()]
    assert len(lines) == 25 + 22
    assert len({x["request_id"] for x in lines}) == len(lines)
    assert {x["worker"] for x in lines} == {0, 1}
    assert all(x["error"] is None and x["output_tokens"] == 30 for x in lines)
    closed, open_ = outcome.summary["points"]
    assert closed["measured"] == 20 and open_["measured"] == 20
    assert closed["self_check"]["workers"] == 2
    # one clock: open-loop sends follow the shared schedule (lag small), whichever worker sent them
    lags = [x["send_ns"] - x["scheduled_ns"] for x in lines if x["level"] == 1]
    assert max(lags) < 50_000_000
    assert all(0.01 < x["ttft_s"] < 0.5 for x in lines)


def test_merge_self_checks_takes_the_worst_worker() -> None:
    merged = merge_self_checks(
        [
            {"worker": 0, "loop_lag_p99_s": 0.001, "cpu_s": 1.0, "cpu_percent": 40.0, "loop_lag_samples": 5},
            {"worker": 1, "loop_lag_p99_s": 0.020, "cpu_s": 2.0, "cpu_percent": 95.0, "loop_lag_samples": 5},
        ]
    )
    assert merged["loop_lag_p99_s"] == 0.020
    assert merged["cpu_percent"] == 95.0
    assert merged["cpu_s"] == 3.0
    assert merged["loop_lag_samples"] == 10


def test_workers_on_a_local_ray_instance(pace_url: str, tmp_path: Path) -> None:
    pytest.importorskip("ray")
    scenario = Scenario.model_validate(
        {
            "endpoint": {"base_url": pace_url, "model": "pace"},
            "workload": {"input_tokens": 8, "output_tokens": 30},
            "workers": 2,
            "load": [{"concurrency": 4, "requests": 12}],
        }
    )
    outcome = asyncio.run(run_benchmark(scenario, out_root=tmp_path, cluster="local"))
    lines = [json.loads(x) for x in (outcome.run_dir / "requests.jsonl").read_text().splitlines()]
    assert len(lines) == 16
    assert {x["worker"] for x in lines} == {0, 1}
    assert all(x["error"] is None and x["output_tokens"] == 30 for x in lines)
    assert outcome.summary["points"][0]["self_check"]["workers"] == 2
    meta = json.loads((outcome.run_dir / "metadata.json").read_text())
    assert meta["cluster"] == "local"
