"""Sweeps: the scenario block, the stopping rules and the capacity verdict, then a sweep against the bundled
reference endpoint with a known knee (``max_batch: 4``: past 4 streams requests only queue)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from tpsbench.cli.app import app
from tpsbench.config.loader import load_scenario
from tpsbench.config.scenario import Scenario, ScenarioError, Steps, Sweep
from tpsbench.load.benchmark import run_benchmark
from tpsbench.load.sweep import LevelPlan, capacity, stop_reason
from tpsbench.reference.model import ModelParams, ReferenceModel
from tpsbench.report.markdown import to_markdown
from tpsbench.results import files


def _point(
    level: int, c: int, tps: float, *, slo_met: bool | None = None, errors: float = 0.0
) -> dict[str, Any]:
    return {
        "level": level,
        "concurrency": c,
        "rate": None,
        "output_tps": tps,
        "output_tps_per_gpu": None,
        "slo_met": slo_met,
        "error_rate": errors,
        "goodput": None if slo_met is None else tps / 100,
        "tps_user": {"p50": 1000 / c},
        "ttft_s": {"p99": 0.01 * c},
    }


def test_steps_are_geometric_or_arithmetic_and_integer_for_concurrency() -> None:
    assert Steps(start=1, factor=2, max=256).values(integer=True) == [1, 2, 4, 8, 16, 32, 64, 128, 256]
    assert Steps(start=1, factor=2, max=100).values(integer=True)[-1] == 64
    assert Steps(start=1, factor=1.3, max=5).values(integer=True) == [1, 2, 3, 4, 5]  # always grows by >= 1
    assert Steps(start=0.5, step=0.5, max=2).values(integer=False) == [0.5, 1.0, 1.5, 2.0]
    sweep = Sweep.model_validate({"concurrency": {"start": 2, "max": 16}})
    assert [lv.concurrency for lv in map(sweep.level, sweep.values())] == [2, 4, 8, 16]
    assert [lv.requests for lv in map(sweep.level, sweep.values())] == [20, 20, 32, 64]  # max(20, 4c)
    rate = Sweep.model_validate(
        {"rate": {"start": 1, "step": 1, "max": 3}, "duration_s": 5, "arrival": "constant"}
    )
    assert [(lv.rate, lv.requests, lv.duration_s, lv.arrival) for lv in map(rate.level, rate.values())] == [
        (1.0, None, 5.0, "constant"),
        (2.0, None, 5.0, "constant"),
        (3.0, None, 5.0, "constant"),
    ]


def test_sweep_block_errors_name_the_line_and_field(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(
        "sweep:\n"
        "  concurrency: {start: 8, factor: 2, step: 1, max: 4}\n"
        "  rate: {start: 1, max: 2}\n"
        "  min_gain: -1\n"
    )
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    got = [(i.line, i.field, i.message) for i in info.value.issues]
    assert (2, "sweep.concurrency", "set 'factor' (geometric) or 'step' (arithmetic), not both") in got
    assert (4, "sweep.min_gain", "expected a number >= 0, got -1") in got
    ok = tmp_path / "ok.yaml"
    ok.write_text("sweep: {rate: {start: 1, max: 2}, concurrency: {start: 1, max: 2}}\n")
    with pytest.raises(ScenarioError, match="set exactly one of 'concurrency'"):
        load_scenario(ok)
    both = tmp_path / "both.yaml"
    both.write_text("load: [{concurrency: 1, requests: 1}]\nsweep: {concurrency: {start: 1, max: 2}}\n")
    with pytest.raises(ScenarioError, match="not both"):
        load_scenario(both)


def test_concurrency_override_replaces_a_sweep() -> None:
    s = Scenario.model_validate({"sweep": {"concurrency": {"start": 1, "max": 64}, "requests": 7}})
    fixed = s.with_overrides(concurrency=[2, 3])
    # the override's sizing rule: max(the sweep's requests, 4 x c)
    assert fixed.sweep is None and [(lv.concurrency, lv.requests) for lv in fixed.fixed_levels] == [
        (2, 8),
        (3, 12),
    ]


def test_stop_rules() -> None:
    sweep = Sweep.model_validate({"concurrency": {"start": 1, "max": 64}, "max_error_rate": 0.01})
    assert stop_reason([_point(0, 1, 100)], sweep) is None
    assert stop_reason([_point(0, 1, 100), _point(1, 2, 190)], sweep) is None
    assert stop_reason([_point(0, 1, 100), _point(1, 2, 104)], sweep)[0] == "throughput_plateau"  # type: ignore[index]
    # against the best earlier level, not only the previous one
    dip = [_point(0, 1, 100), _point(1, 2, 200), _point(2, 4, 150), _point(3, 8, 205)]
    assert stop_reason(dip[:3], sweep)[0] == "throughput_plateau"  # type: ignore[index]
    assert stop_reason([_point(0, 1, 100), _point(1, 2, 300, slo_met=False)], sweep)[0] == "slo_broken"  # type: ignore[index]
    reason = stop_reason([_point(0, 1, 100, errors=0.02)], sweep)
    assert reason is not None and reason[0] == "errors" and "2.0%" in reason[1]


def test_capacity_is_the_knee_among_levels_that_meet_the_slo() -> None:
    sweep = Sweep.model_validate({"concurrency": {"start": 1, "max": 64}, "min_gain": 0.05})
    points = [
        _point(0, 1, 100, slo_met=True),
        _point(1, 2, 190, slo_met=True),
        _point(2, 4, 196, slo_met=True),
    ]
    cap = capacity(points, sweep, "throughput_plateau", "c=4 ...")
    # c=4 gave 3% more than c=2: within min_gain, so c=2 is the knee (c=4 only adds latency)
    assert (cap["concurrency"], cap["output_tps"], cap["goodput"]) == (2, 190, 1.9)
    assert cap["levels"] == ["c=1", "c=2", "c=4"] and cap["reason_stopped"] == "throughput_plateau"
    broken = [*points[:2], _point(2, 4, 400, slo_met=False)]
    assert capacity(broken, sweep, "slo_broken")["concurrency"] == 2  # 400 tok/s broke the SLO: not counted
    none = capacity([_point(0, 1, 100, slo_met=False)], sweep, "slo_broken")
    assert none["concurrency"] is None and "no level met the SLO" in none["reason_detail"]


def test_level_plan_generates_levels_until_it_stops() -> None:
    s = Scenario.model_validate({"sweep": {"concurrency": {"start": 1, "max": 1000}, "requests": 4}})
    plan = LevelPlan(s)
    seen = []
    for index, level in plan:
        seen.append(level.concurrency)
        plan.observe(_point(index, level.concurrency or 0, 100 * min(level.concurrency or 0, 8)))
    assert seen == [1, 2, 4, 8, 16]
    assert plan.reason == "throughput_plateau"
    cap = plan.capacity()
    assert cap is not None and cap["concurrency"] == 8

    short = LevelPlan(
        Scenario.model_validate({"sweep": {"concurrency": {"start": 1, "max": 4}, "requests": 4}})
    )
    for index, level in short:
        short.observe(_point(index, level.concurrency or 0, 100.0 * (level.concurrency or 0)))
    assert short.reason == "max_reached"
    fixed = LevelPlan(Scenario.model_validate({"load": [{"concurrency": 3, "requests": 1}]}))
    assert [lv.concurrency for _, lv in fixed] == [3] and fixed.capacity() is None


# The stopping thresholds of the reference sweeps come from the reference model, not from a timing margin.
# Below the batch limit the model predicts output TPS growing by tens of percent per step; past it, zero
# (requests only queue). What a run measures past the limit is a client effect: a queued request fills the
# moment between one answer and the next user's request (the client's turnaround, a few percent of an
# answer, more on a loaded machine). So min_gain is half the model's gain at the last step below the knee:
# far from both the predicted gain below it and the client's gap-filling above it.
def _model(max_batch: int) -> ReferenceModel:
    return ReferenceModel(ModelParams().with_overrides({"max_batch": max_batch}))


def _half_gain_below_knee(max_batch: int, isl: int, osl: int) -> float:
    below, knee = _model(max_batch).predict_curve([max_batch // 2, max_batch], isl, osl)
    return 0.5 * (knee.output_tps / below.output_tps - 1)


def _reference_sweep(slo: dict[str, Any] | None = None, max_batch: int = 4) -> Scenario:
    return Scenario.model_validate(
        {
            "name": "knee",
            "endpoint": {"api": "completions"},
            "workload": {"input_tokens": 32, "output_tokens": 128},
            "reference": {"max_batch": max_batch},  # the simulated server decodes at most this many at once
            "sweep": {
                "concurrency": {"start": 1, "factor": 2, "max": 64},
                "requests": 24,
                "min_gain": _half_gain_below_knee(max_batch, 32, 128),
            },
            "slo": slo or {},
        }
    )


def test_the_model_gain_threshold_separates_the_steps() -> None:
    gain = _half_gain_below_knee(4, 32, 128)
    below, knee, past = _model(4).predict_curve([2, 4, 8], 32, 128)
    assert 0.2 < gain < 0.5 and knee.output_tps / below.output_tps - 1 > 2 * gain - 1e-9
    assert past.output_tps == knee.output_tps  # past the batch limit the model predicts no gain at all


def test_sweep_stops_at_the_knee_of_the_reference_endpoint(tmp_path: Path) -> None:
    outcome = asyncio.run(run_benchmark(_reference_sweep(), out_root=tmp_path))
    summary = files.read_summary(outcome.run_dir / files.SUMMARY_JSON)
    cap = summary["capacity"]
    loads = [p["concurrency"] for p in summary["points"]]
    # Throughput grows to c=4 (the batch limit), then stops growing: the sweep ends one step past the knee.
    assert loads == [1, 2, 4, 8], [round(p["output_tps"]) for p in summary["points"]]
    assert cap["concurrency"] == 4 and cap["reason_stopped"] == "throughput_plateau"
    assert cap["output_tps"] == summary["points"][2]["output_tps"]
    assert summary["run"]["sweep"]["concurrency"]["max"] == 64
    assert "**Capacity**: c=4" in to_markdown(summary)


def test_sweep_stops_when_the_slo_breaks(tmp_path: Path) -> None:
    # Past the batch limit requests queue for a whole answer: the TTFT p99 limit sits halfway between the
    # model's TTFT at the limit (prefill, milliseconds) and one step past it (a queued answer, ~200 ms).
    at_limit, past = _model(8).predict_curve([8, 16], 32, 128)
    limit = (at_limit.ttft_s + past.ttft_s) / 2
    assert past.ttft_s > 10 * at_limit.ttft_s
    scenario = _reference_sweep({"ttft_s": {"p99": limit}}, max_batch=8)
    outcome = asyncio.run(run_benchmark(scenario, out_root=tmp_path))
    points = outcome.summary["points"]
    assert [p["slo_met"] for p in points][-1] is False and all(p["slo_met"] for p in points[:-1])
    cap = outcome.summary["capacity"]
    assert cap["reason_stopped"] == "slo_broken" and cap["concurrency"] == points[-2]["concurrency"] == 8
    assert cap["goodput"] is not None and cap["goodput"] > 0


def test_cli_validate_and_run_print_the_sweep(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    gain = _half_gain_below_knee(2, 16, 32)
    path.write_text(
        "name: knee\n"
        "endpoint: {api: completions}\n"
        "workload: {input_tokens: 16, output_tokens: 32}\n"
        "reference: {max_batch: 2}\n"
        f"sweep: {{concurrency: {{start: 1, max: 16}}, requests: 12, min_gain: {gain:.3f}}}\n"
    )
    runner = CliRunner()
    res = runner.invoke(app, ["validate", str(path)])
    assert res.exit_code == 0 and "sweep until the knee, at most: c=1, c=2, c=4, c=8, c=16" in res.output
    res = runner.invoke(app, ["run", str(path), "--out", str(tmp_path / "r"), "--no-report"])
    assert res.exit_code == 0, res.output
    assert "capacity: c=2" in res.output and "throughput_plateau" in res.output
