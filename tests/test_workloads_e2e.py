"""Every workload kind end to end on the bundled reference endpoint (short: a few dozen requests): a
dataset, a replayed trace, a closed-loop ramp and a capped open-loop level; the records say which prompt
each request sent and how long capped requests queued."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from tpsbench.config.loader import load_scenario
from tpsbench.config.scenario import Scenario
from tpsbench.load.benchmark import run_benchmark
from tpsbench.reference.serve import ReferenceServerProcess
from tpsbench.results import files

DATA = Path(__file__).parent / "data" / "workloads"
SCENARIOS = Path(__file__).parent.parent / "scenarios"


@pytest.fixture(scope="module")
def reference_url() -> object:
    with ReferenceServerProcess(seed=0) as server:
        yield server.url


def _records(run_dir: Path) -> list[dict[str, Any]]:
    return [r.to_dict() for r in files.read_records(run_dir / files.REQUESTS)]


def _run(scenario: Scenario, url: str, tmp_path: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    outcome = asyncio.run(run_benchmark(scenario.with_overrides(base_url=url), out_root=tmp_path))
    return outcome.summary, _records(outcome.run_dir)


def test_dataset_ramp_and_cap(reference_url: str, tmp_path: Path) -> None:
    s = Scenario.model_validate(
        {
            "workload": {
                "dataset": {"path": str(DATA / "sharegpt.json"), "format": "sharegpt"},
                "output_tokens": 8,
            },
            "load": [
                {"concurrency": 3, "requests": 9, "ramp_s": 0.2},
                {"rate": 40, "arrival": "constant", "requests": 12, "warmup": 0, "max_concurrency": 2},
            ],
        }
    )
    summary, records = _run(s, reference_url, tmp_path)
    assert [p["ok"] for p in summary["points"]] == [9, 12]
    assert {r["prompt_index"] for r in records} == {0, 1, 3}
    closed = [r for r in records if r["level"] == 0]
    assert all(r["queue_ns"] is None for r in closed)
    capped = [r for r in records if r["level"] == 1]
    assert all(r["queue_ns"] is not None for r in capped)
    assert max(r["queue_ns"] for r in capped) > 0  # 40/s into 2 slots of ~60 ms requests: some wait
    assert summary["points"][1]["queue_s"]["n"] == 12 and summary["points"][1]["max_concurrency"] == 2


def test_trace_scenario_replays_on_the_trace_clock(reference_url: str, tmp_path: Path) -> None:
    s = load_scenario(SCENARIOS / "trace-mooncake.yaml")
    summary, records = _run(s, reference_url, tmp_path)
    points = summary["points"]
    assert [p["trace"] for p in points] == ["mooncake.jsonl", "mooncake.jsonl x4", "azure.csv x2"]
    assert [p["measured"] for p in points] == [24, 24, 12]
    first = sorted((r for r in records if r["level"] == 0), key=lambda r: r["request_id"])
    t0 = first[0]["scheduled_ns"]
    assert [(r["scheduled_ns"] - t0) // 1_000_000 for r in first[:3]] == [
        0,
        50,
        100,
    ]  # 50 ms apart, as recorded
    assert [r["input_tokens"] for r in first[:2]] == [
        1224,
        712,
    ]  # the reference endpoint counts ceil(chars/4)
    assert all(p["sched_lag_s"]["n"] == p["measured"] for p in points)


def test_session_scenarios_break_down_by_turn(reference_url: str, tmp_path: Path) -> None:
    s = load_scenario(SCENARIOS / "sessions-dataset.yaml")
    summary, records = _run(s, reference_url, tmp_path)
    point = summary["points"][0]
    assert point["ok"] == 12
    assert [t["turn"] for t in point["by_turn"]] == [0, 1, 2]
    sessions: dict[int, list[dict[str, Any]]] = {}
    for r in sorted(records, key=lambda r: r["request_id"]):
        sessions.setdefault(r["session_id"], []).append(r)
    for turns in sessions.values():
        assert [r["turn"] for r in turns] == list(range(len(turns)))
        # the history grows by the server's answer and the next user message: prompts get longer each turn
        inputs = [r["input_tokens"] for r in turns]
        assert all(b > a + r["output_tokens"] - 1 for a, b, r in zip(inputs, inputs[1:], turns, strict=False))
    assert {r["prompt_index"] for r in records} <= {0, 1, 3}


def test_console_warnings_name_trace_levels() -> None:
    from tpsbench.cli.console import warning_lines
    from tpsbench.results.views import Point

    point: dict[str, Any] = {"level": 0, "concurrency": None, "rate": None, "trace": "mooncake.jsonl x2"}
    point["warning_causes"] = [{"cause": "client_bound", "detail": "scheduling lag p99 = 12 ms"}]
    text = "\n".join(warning_lines([Point(point)]))
    assert "trace=mooncake.jsonl x2" in text
