"""The gate on repeated runs (Welch t on per-repeat values) and on the curve (TPS/GPU at the baseline's
TPS/user), on synthetic runs written through the real pipeline (tpsbench.results.synthetic)."""

from __future__ import annotations

from pathlib import Path

from tpsbench import gate
from tpsbench.gate import Method, Verdict
from tpsbench.gate.curve import at
from tpsbench.results.synthetic import Shape, write_synthetic_run

LOADS = (4, 16, 64)


def _pair(tmp: Path, cand: Shape, repeats: int) -> gate.GateResult:
    b = write_synthetic_run(tmp / "b", seed=1, loads=LOADS, n=120, shape=Shape(), repeats=repeats)
    c = write_synthetic_run(tmp / "c", seed=2, loads=LOADS, n=120, shape=cand, repeats=repeats)
    return gate.evaluate(b, c)


def test_repeats_are_tested_on_run_to_run_variance(tmp_path: Path) -> None:
    result = _pair(tmp_path, Shape(), repeats=3)
    assert result.mode == "repeats" and result.exit_code == gate.EXIT_PASS, result.reasons
    row = next(r for r in result.rows if r.metric == "tps_user_p50")
    assert row.test is Method.WELCH and (row.n_baseline, row.n_candidate) == (3, 3)
    assert "3 vs 3 repeats" in row.note
    assert not any("one run for" in w for w in result.warnings)
    err = next(r for r in result.rows if r.metric == "error_rate")
    assert err.test is Method.FISHER  # error counts stay a per-request (binomial) test


def test_a_planted_regression_is_caught_on_repeats_and_on_the_curve(tmp_path: Path) -> None:
    result = _pair(tmp_path, Shape(tps_factor=0.85), repeats=3)
    assert result.exit_code == gate.EXIT_REGRESSION
    assert any(r.metric == "tps_user_p50" and r.test is Method.WELCH for r in result.regressions)
    curve = [r for r in result.curve if r.metric == "curve_tps_per_gpu"]
    assert curve and any(r.verdict is Verdict.REGRESSED for r in curve)
    assert any("this build serves" in r and "fewer tokens per GPU" in r for r in result.reasons)


def test_one_run_falls_back_to_per_request_tests_with_a_warning(tmp_path: Path) -> None:
    result = _pair(tmp_path, Shape(), repeats=1)
    assert result.mode == "per-request"
    assert any("one run for the baseline and candidate" in w for w in result.warnings)
    assert {r.test for r in result.curve} <= {Method.CURVE_Z, Method.NONE}
    assert result.exit_code == gate.EXIT_PASS, result.reasons


def test_curve_reading_interpolates_and_refuses_to_extrapolate_far() -> None:
    xs, ys = [1000.0, 600.0, 200.0], [120.0, 600.0, 1200.0]
    assert at(xs, ys, 600.0) == 600.0 and at(xs, ys, 400.0) == 900.0
    assert at(xs, ys, 1010.0) is not None  # within 2% of the span beyond the end
    assert at(xs, ys, 1030.0) is None and at([1.0], [2.0], 1.0) is None
