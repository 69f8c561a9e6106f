"""Charts fit to publish, on the committed runs (real summaries and records): titled by what was measured,
identified, headline against the published marks, the speculative-decoding switch annotated, CI level
stated, SVG text kept as text, merged published marks named in the order of their lines."""

from __future__ import annotations

from pathlib import Path

import pytest

from tpsbench.config.report import Mark
from tpsbench.report import charts
from tpsbench.report import headline as words
from tpsbench.report.chartkit import figure_bytes
from tpsbench.report.render import build_charts, overlays_for
from tpsbench.results.views import open_run

RESULTS = Path(__file__).resolve().parents[1] / "results"


def _texts(fig: object) -> str:
    return figure_bytes(fig, "svg").decode()  # type: ignore[arg-type]


def test_reference_pareto_states_what_which_and_how_good() -> None:
    run = open_run(RESULTS / "reference")
    svg = _texts(charts.pareto_figure([charts.Series(run.name, run)], overlays=overlays_for(run, [])))
    assert "<text" in svg and "glyph" not in svg  # text kept as text (svg.fonttype none)
    assert "Throughput vs interactivity · maverick-b200 (reference endpoint, ISL/OSL 1k/1k)" in svg
    assert f"run {run.name}" in svg
    assert "of the 1,038 record" in svg and "of 72,000" in svg
    assert "speculative decoding (draft 3) off above batch 8" in svg
    assert "95% CI of the median" in svg
    assert "Groq 276 | Amazon 291" in svg  # left to right, as the lines


def test_every_chart_of_a_run_names_the_run_and_what_was_measured() -> None:
    run = open_run(RESULTS / "reference")
    built, _ = build_charts(run)
    assert len(built) >= 4
    for chart in built:
        if chart.name == "timeline":
            continue
        svg = _texts(chart.figure)
        assert "maverick-b200" in svg and "ISL/OSL" in svg, chart.name


def test_repeats_draw_the_run_to_run_spread_and_say_so() -> None:
    run = open_run(RESULTS / "baseline")
    assert run.repeat_count == 3
    svg = _texts(charts.pareto_figure([charts.Series(run.name, run)]))
    assert "95% CI of the mean over 3 repeats" in svg and "3 repeats" in words.identity(run)


def test_headline_against_user_marks_for_another_endpoint() -> None:
    run = open_run(RESULTS / "spec-decoding-off")
    assert words.headline(run) is not None
    other = open_run(RESULTS / "baseline")
    line = words.headline(other, [Mark(name="X", tps_user=2000.0)])
    assert line is not None and "53.0% of X (2,000)" in line  # the user's mark, after the record
    assert "of the 1,038 record" in (words.headline(other) or "")


def _lines_y(fig: object) -> list[list[float]]:
    return [[float(v) for v in line.get_ydata()] for ax in fig.axes for line in ax.get_lines()]  # type: ignore[attr-defined]


def test_per_level_charts_draw_the_run_to_run_spread_with_its_ci_level() -> None:
    run = open_run(RESULTS / "baseline")
    assert run.repeat_count == 3
    built = {c.name: c for c in build_charts(run)[0]}
    for name in ("ttft", "tps_user"):
        svg = _texts(built[name].figure)
        assert "95% CI of their mean over 3 repeats (Student t)" in svg, name
    drawn = _lines_y(built["tps_user"].figure)
    for p in run.points:  # every repeat's median, drawn at its level
        est = p.repeat_estimate("tps_user_p50")
        assert est is not None and list(est.values) in drawn
    ttft_ms = _lines_y(built["ttft"].figure)
    for p in run.points:  # the p50 line is the mean over repeats, each repeat's p50 is a dot
        est = p.repeat_estimate("ttft_s_p50")
        assert est is not None and [v * 1000 for v in est.values] in ttft_ms
    assert "all 3 repeats pooled" in _texts(built["itl"].figure)
    single = {c.name: c for c in build_charts(open_run(RESULTS / "reference"))[0]}
    svg = _texts(single["ttft"].figure)
    assert "bootstrap over requests" in svg and "repeats" not in svg


def test_timeline_names_the_run_and_each_repeat() -> None:
    run = open_run(RESULTS / "baseline")
    chart = {c.name: c for c in build_charts(run)[0]}["server_timeline"]  # baseline has telemetry.jsonl
    svg = _texts(chart.figure)
    assert "ci-gate (reference endpoint" in svg and f"run {run.name}" in svg
    assert all(f"repeat {k}" in svg for k in (1, 2, 3))


def test_timeline_draws_kv_cache_apart_from_the_running_requests() -> None:
    """The reference endpoint's KV-cache use is running / max_batch: on the running requests' panel, at
    headroom 1.3 on both scales, the two lines coincided. Each now has its own panel and scale."""
    run = open_run(RESULTS / "baseline")
    fig = {c.name: c for c in build_charts(run)[0]}["server_timeline"].figure
    assert len(fig.axes) == 4
    queue, kv = fig.axes[2], fig.axes[3]
    fig.canvas.draw()  # lays the panels out
    assert kv.get_position().y1 < queue.get_position().y0  # a panel under the queue's, not a twin of it

    def named(ax: object) -> list[str]:
        return [str(ln.get_label()) for ln in ax.get_lines() if not str(ln.get_label()).startswith("_")]  # type: ignore[attr-defined]

    assert named(queue) == ["vllm:num_requests_running", "vllm:num_requests_waiting"]
    assert named(kv) == ["vllm:kv_cache_usage_perc"]
    peak = max(kv.get_lines()[0].get_ydata())  # type: ignore[type-var]
    assert 0 < peak < 10 and kv.get_ylim() == (0, pytest.approx(peak * 1.3))  # percent, from 0
    assert "KV cache used" in kv.get_ylabel() and kv.get_xlabel().startswith("time since")


def _point(c: int, p50: float, p1: float, p99: float) -> dict[str, object]:
    q = {"p1": p1, "p10": p50 * 0.9, "p50": p50, "p90": p50 * 1.1, "p99": p99, "mean": p50}
    return {"concurrency": c, "tps_user": q, "ttft_s": {"p50": 0.05, "p99": 0.2}, "output_tps": 100.0 * c}


def test_tps_user_axis_holds_the_whiskers_log_when_they_span_20x() -> None:
    from tpsbench.report.levels import tps_user_figure
    from tpsbench.results.views import Run

    narrow = Run.from_summary({"schema": 1, "points": [_point(1, 1000, 900, 1100), _point(8, 500, 450, 560)]})
    ax = tps_user_figure(narrow).axes[0]
    assert ax.get_yscale() == "linear" and ax.get_ylim()[1] >= 1100
    wide = Run.from_summary({"schema": 1, "points": [_point(1, 1000, 900, 6000), _point(8, 300, 200, 400)]})
    ax = tps_user_figure(wide).axes[0]
    assert ax.get_yscale() == "log" and ax.get_ylim()[0] <= 200 and ax.get_ylim()[1] >= 6000
