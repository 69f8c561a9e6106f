"""The point-level TPS/user definitions (``tps_user_mlperf``, ``tps_user_vllm``: tpsbench.results.definitions)
as gate rows, compare rows and scenario thresholds, on synthetic runs written through the real pipeline
(tpsbench.results.synthetic: records through the writer, summaries by summarize_level)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from tpsbench import gate
from tpsbench.cli.app import app
from tpsbench.config.errors import ScenarioError
from tpsbench.config.loader import load_scenario
from tpsbench.core.metricspec import metric_spec
from tpsbench.gate import Method, Verdict
from tpsbench.report.compare import compare
from tpsbench.results import metrics
from tpsbench.results.synthetic import Shape, write_synthetic_run
from tpsbench.results.views import open_run

LOADS = (4, 16)
POINT_LEVEL = {"tps_user_mlperf": 5.0, "tps_user_vllm": 5.0}


def _row(result: gate.GateResult, point: str, metric: str) -> gate.Row:
    return next(r for r in result.rows if r.point == point and r.metric == metric)


def _points(run: Path) -> list[dict[str, object]]:
    points: list[dict[str, object]] = json.loads((run / "summary.json").read_text())["points"]
    return points


def test_specs_name_the_quantity_each_is_tested_on() -> None:
    s = metric_spec("tps_user_mlperf")
    assert (s.kind, s.block, s.stat, s.q, s.better) == (
        "inverse_quantile",
        "tpot_inferencex_s",
        "p90",
        0.9,
        "higher",
    )
    v = metric_spec("tps_user_vllm")
    assert (v.kind, v.better) == ("per_user_throughput", "higher")
    for bad in ("tps_user_mlperf_p50", "tps_user_vllm_p90", "tps_user_mlperf2"):
        with pytest.raises(ValueError, match="tps_user_mlperf, tps_user_vllm"):
            metric_spec(bad)
    assert gate.parse_thresholds(["tps_user_mlperf=5%", "tps_user_vllm=7"]) == {
        "tps_user_mlperf": 5.0,
        "tps_user_vllm": 7.0,
    }


def test_a_slower_decode_regresses_both_point_level_definitions(tmp_path: Path) -> None:
    b = write_synthetic_run(tmp_path / "b", seed=1, loads=LOADS, n=200)
    c = write_synthetic_run(tmp_path / "c", seed=2, loads=LOADS, n=200, shape=Shape(tps_factor=0.85))
    result = gate.evaluate(b, c, POINT_LEVEL)
    assert result.exit_code == gate.EXIT_REGRESSION
    for point, pb, pc in zip(("c=4", "c=16"), _points(b), _points(c), strict=True):
        mlperf = _row(result, point, "tps_user_mlperf")
        # the gate's value is the summary's (1 / p90 of the per-request InferenceX TPOT), on both sides
        assert mlperf.baseline == pytest.approx(pb["tps_user_mlperf"], rel=1e-12)
        assert mlperf.candidate == pytest.approx(pc["tps_user_mlperf"], rel=1e-12)
        assert mlperf.test is Method.BOOTSTRAP and mlperf.verdict is Verdict.REGRESSED
        assert mlperf.change is not None and mlperf.change == pytest.approx(-15, abs=3)
        assert "tested on TPOT (InferenceX) p90" in mlperf.note
        # same test as the TPOT p90 row it inverts
        tpot = gate.evaluate(b, c, {"tpot_inferencex_s_p90": 5})
        assert _row(tpot, point, "tpot_inferencex_s_p90").p_value == mlperf.p_value

        vllm = _row(result, point, "tps_user_vllm")
        assert vllm.baseline == pytest.approx(pb["tps_user_vllm"], rel=1e-12)
        assert vllm.candidate == pytest.approx(pc["tps_user_vllm"], rel=1e-12)
        assert vllm.test is Method.RATIO and vllm.verdict is Verdict.REGRESSED
        out = _row(result, point, "output_tps")
        assert vllm.change == pytest.approx(out.change) and vllm.p_value == out.p_value  # one concurrency
    assert any("TPS/user (MLPerf)" in r for r in result.reasons)
    assert any("TPS/user (vLLM)" in r for r in result.reasons)


def test_the_p90_reciprocal_is_one_over_the_linear_quantile(tmp_path: Path) -> None:
    run = open_run(write_synthetic_run(tmp_path / "r", seed=3, loads=(4,), n=50))
    p = run.points[0]
    tpot = [v for r in p.ok_records if (v := metrics.tpot_inferencex_s(r)) is not None]
    assert p.tps_user_mlperf == pytest.approx(1 / float(np.quantile(tpot, 0.9)), rel=1e-12)


def test_identical_configurations_pass_on_the_point_level_definitions(tmp_path: Path) -> None:
    b = write_synthetic_run(tmp_path / "b", seed=1, loads=LOADS, n=200)
    c = write_synthetic_run(tmp_path / "c", seed=2, loads=LOADS, n=200)
    result = gate.evaluate(b, c, POINT_LEVEL)
    assert result.exit_code == gate.EXIT_PASS, result.reasons
    for point in ("c=4", "c=16"):
        for name, test in (("tps_user_mlperf", Method.BOOTSTRAP), ("tps_user_vllm", Method.RATIO)):
            row = _row(result, point, name)
            assert row.test is test and row.verdict is Verdict.UNCHANGED, row
            assert row.change is not None and abs(row.change) < 5


def test_point_level_rows_come_from_the_candidates_scenario(tmp_path: Path) -> None:
    b = write_synthetic_run(tmp_path / "b", seed=1, loads=(16,), n=200)
    c = write_synthetic_run(
        tmp_path / "c", seed=2, loads=(16,), n=200, shape=Shape(tps_factor=0.85), gate_thresholds=POINT_LEVEL
    )
    result = gate.evaluate(b, c)
    assert {"tps_user_mlperf", "tps_user_vllm"} <= {r.metric for r in result.regressions}
    assert result.thresholds["tps_user_mlperf"] == 5.0


def test_point_level_rows_on_repeats_use_the_per_repeat_values(tmp_path: Path) -> None:
    b = write_synthetic_run(tmp_path / "b", seed=1, loads=(16,), n=120, repeats=3)
    c = write_synthetic_run(
        tmp_path / "c", seed=2, loads=(16,), n=120, repeats=3, shape=Shape(tps_factor=0.85)
    )
    result = gate.evaluate(b, c, POINT_LEVEL)
    assert result.mode == "repeats"
    for name in POINT_LEVEL:
        row = _row(result, "c=16", name)
        assert row.test is Method.WELCH and (row.n_baseline, row.n_candidate) == (3, 3)
        assert row.verdict is Verdict.REGRESSED
        per_repeat = _points(b)[0]["repeats"]["metrics"][name]["values"]  # type: ignore[index]
        assert row.baseline == pytest.approx(sum(per_repeat) / 3)


def test_summary_only_point_level_rows_are_reported_not_tested(tmp_path: Path) -> None:
    b = write_synthetic_run(tmp_path / "b", seed=1, loads=(16,), n=200)
    c = write_synthetic_run(tmp_path / "c", seed=2, loads=(16,), n=200, shape=Shape(tps_factor=0.85))
    (b / "requests.jsonl").unlink()
    result = gate.evaluate(b, c, POINT_LEVEL)
    for name in POINT_LEVEL:
        row = _row(result, "c=16", name)
        assert row.test is Method.NONE and row.verdict is Verdict.LARGE_NOT_SIGNIFICANT
        assert row.baseline == pytest.approx(_points(b)[0][name])


def test_validate_and_gate_reject_the_same_names(tmp_path: Path) -> None:
    ok = tmp_path / "ok.yaml"
    ok.write_text(
        "load: [{concurrency: 1, requests: 1}]\ngate: {thresholds: {tps_user_mlperf: 5, tps_user_vllm: 8}}\n"
    )
    assert load_scenario(ok).gate.thresholds == {"tps_user_mlperf": 5.0, "tps_user_vllm": 8.0}
    bad = tmp_path / "bad.yaml"
    bad.write_text("load: [{concurrency: 1, requests: 1}]\ngate: {thresholds: {tps_user_vllm_p50: 5}}\n")
    with pytest.raises(ScenarioError, match="tps_user_vllm_p50"):
        load_scenario(bad)
    b = write_synthetic_run(tmp_path / "b", seed=1, loads=(4,), n=20)
    c = write_synthetic_run(tmp_path / "c", seed=2, loads=(4,), n=20)
    assert gate.evaluate(b, c, {"tps_user_vllm_p50": 5}).exit_code == gate.EXIT_NOT_COMPARABLE
    runner = CliRunner()
    md = tmp_path / "gate.md"
    args = ["gate", "--baseline", str(b), "--candidate", str(c), "--markdown", str(md)]
    cli = runner.invoke(app, [*args, "--threshold", "tps_user_mlperf=5%"])
    assert cli.exit_code == gate.EXIT_PASS, cli.output
    assert "TPS/user (MLPerf)" in md.read_text()
    cli = runner.invoke(app, [*args, "--threshold", "tps_user_mlperf_p90=5%"])
    assert cli.exit_code == 2 and "tps_user_mlperf_p90" in cli.output
    cli = runner.invoke(app, ["validate", str(bad)])
    assert cli.exit_code == 2 and "tps_user_vllm_p50" in cli.output


def test_compare_shows_the_point_level_definitions(tmp_path: Path) -> None:
    b = write_synthetic_run(tmp_path / "b", seed=1, loads=(16,), n=100)
    c = write_synthetic_run(tmp_path / "c", seed=2, loads=(16,), n=100, shape=Shape(tps_factor=0.85))
    result = compare([open_run(b), open_run(c)], metrics=["tps_user_mlperf", "tps_user_vllm"])
    assert [r.metric for r in result.rows] == ["TPS/user (MLPerf)", "TPS/user (vLLM)"]
    for row, name in zip(result.rows, ("tps_user_mlperf", "tps_user_vllm"), strict=True):
        vb, vc = _points(b)[0][name], _points(c)[0][name]
        assert row.cells[0].value == pytest.approx(vb) and row.cells[1].value == pytest.approx(vc)
        assert row.cells[1].delta == pytest.approx(vc / vb - 1)  # type: ignore[operator]
        assert row.higher_is_better
