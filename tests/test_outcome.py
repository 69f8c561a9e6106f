"""The exit contract of `tpsbench run` (load/outcome.py) on real summary points, read through views.Point."""

from __future__ import annotations

from pathlib import Path

from tpsbench.load.outcome import EXIT_OK, EXIT_OVER_BUDGET, judge
from tpsbench.results import files
from tpsbench.results.synthetic import Shape, write_synthetic_run


def test_judge_reads_real_points(tmp_path: Path) -> None:
    run = write_synthetic_run(tmp_path / "bad", seed=1, loads=(2, 8), n=40, shape=Shape(error_p=0.3))
    points = files.read_summary(run / files.SUMMARY_JSON)["points"]
    verdict = judge(points, budget=0.01)
    assert verdict.exit_code == EXIT_OVER_BUDGET
    assert verdict.lines[1].startswith("  c=2: ") and "most common: http_5xx" in verdict.lines[1]
    assert "first: HTTP 500" in verdict.lines[1]
    assert judge(points, budget=1.0).exit_code == EXIT_OK


def test_a_trace_level_over_budget_is_named_by_its_trace() -> None:
    point = {"level": 0, "trace": "mooncake.jsonl x4", "measured": 4, "ok": 0, "errors": {"timeout": 4}}
    verdict = judge([point], budget=0.01)
    assert (
        verdict.lines[1]
        == "  trace=mooncake.jsonl x4: no successful request (4 of 4 failed); most common: timeout (4)"
    )
