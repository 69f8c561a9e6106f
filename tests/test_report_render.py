"""Rendering a run directory headless: the files, their content, the reference curve, label placement."""

from __future__ import annotations

import itertools
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from report_fixtures import write_run

from tpsbench.reference.model import ModelParams, ReferenceModel
from tpsbench.report import chartkit, charts, open_run, render_report, to_markdown
from tpsbench.report.references import curve_concurrencies, model_curve
from tpsbench.report.render import build_charts

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
CHARTS = ["itl", "pareto", "tokens_per_chunk", "tps_user", "ttft"]


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_run(
        tmp_path_factory.mktemp("runs") / "sweep",
        concurrencies=(1, 2, 4, 8, 16, 32, 64),
        requests_per_level=16,
        osl=60,
        slo={"tps_user": {"p50": 200.0}, "ttft_s": {"p99": 0.5}},
        warnings={6: ["client CPU at 95%: client-bound"]},
        client_bound=(6,),
    )


@pytest.fixture(scope="module")
def rendered(sweep: Path) -> list[Path]:
    return render_report(sweep)


def test_every_file_is_written(sweep: Path, rendered: list[Path]) -> None:
    report = sweep / "report"
    expected = [f"{c}.{ext}" for c in CHARTS for ext in ("png", "svg")] + ["report.html", "summary.md"]
    assert sorted(p.name for p in rendered) == sorted(expected)
    assert all(p.parent == report and p.stat().st_size > 0 for p in rendered)
    for name in CHARTS:
        assert (report / f"{name}.png").read_bytes()[:8] == PNG_MAGIC
        root = ET.parse(report / f"{name}.svg").getroot()
        assert root.tag.endswith("svg")


def test_html_embeds_every_chart_and_the_warnings(sweep: Path, rendered: list[Path]) -> None:
    page = (sweep / "report" / "report.html").read_text(encoding="utf-8")
    assert page.count('src="data:image/png;base64,') == len(CHARTS)
    assert "client CPU at 95%: client-bound" in page
    assert "Reference model curve left out" not in page
    assert "Tokens-per-chunk chart left out" not in page


def test_summary_md_matches_the_serializer(sweep: Path, rendered: list[Path]) -> None:
    md = (sweep / "report" / "summary.md").read_text(encoding="utf-8")
    assert md == to_markdown(open_run(sweep).summary)


def test_the_model_curve_is_for_the_runs_workload(sweep: Path) -> None:
    run = open_run(sweep)
    cs = curve_concurrencies(run)
    assert cs[0] == 1 and cs[-1] == 64 and {1, 2, 4, 8, 16, 32, 64} <= set(cs)
    curve = model_curve(cs, 1000, 60)
    expected = ReferenceModel(ModelParams()).predict_curve(cs, 1000, 60)
    assert [(m.concurrency, m.tps_user, m.output_tps) for m in curve] == [
        (c, p.tps_user, p.output_tps) for c, p in zip(cs, expected, strict=True)
    ]
    pareto = build_charts(run, reference=True)[0][0].figure  # asked for: drawn for any endpoint
    labels = [str(line.get_label()) for line in pareto.axes[0].get_lines()]
    assert any(label.startswith("reference model, same ISL/OSL") for label in labels)


def test_overlays_only_for_the_reference_endpoint_unless_asked(sweep: Path, tmp_path: Path) -> None:
    def overlays(run_dir: Path, reference: bool | None = None) -> tuple[bool, bool]:
        chart = build_charts(open_run(run_dir), reference=reference)[0][0]
        ax = chart.figure.axes[0]
        model = any("reference model" in str(line.get_label()) for line in ax.get_lines())
        published = any("Artificial Analysis" in a.get_xlabel() for a in chart.figure.axes + ax.child_axes)
        assert ("Dotted verticals" in chart.caption) == published
        return model, published

    assert overlays(sweep) == (False, False)  # another endpoint: not drawn against Maverick
    assert overlays(sweep, reference=True) == (True, True)
    ref = write_run(tmp_path / "ref", concurrencies=(1, 4), requests_per_level=6, osl=40, reference={})
    assert overlays(ref) == (True, True)
    assert overlays(ref, reference=False) == (False, False)


def test_a_reference_endpoint_run_gets_its_model_overrides(tmp_path: Path) -> None:
    rd = write_run(
        tmp_path / "ref", concurrencies=(1, 4), requests_per_level=6, osl=40, reference={"draft_len": 0}
    )
    chart_list, notes = build_charts(open_run(rd))
    model_line = next(
        line
        for line in chart_list[0].figure.axes[0].get_lines()
        if "reference model" in str(line.get_label())
    )
    assert "draft_len=0" in str(model_line.get_label())
    assert not any("Reference model" in n for n in notes)
    no_spec = model_curve([1], 1000, 40, {"draft_len": 0})[0].tps_user
    assert no_spec < 0.6 * model_curve([1], 1000, 40)[0].tps_user  # speculation off: about half the speed
    assert np.asarray(model_line.get_xdata())[0] == pytest.approx(no_spec)


def test_bad_model_overrides_cost_only_the_curve(tmp_path: Path) -> None:
    rd = write_run(
        tmp_path / "ref", concurrencies=(1,), requests_per_level=4, osl=20, reference={"draft_lenn": 0}
    )
    _, notes = build_charts(open_run(rd))
    assert any("unknown reference model parameter 'draft_lenn'" in n for n in notes)


def test_summary_json_alone_renders(tmp_path: Path) -> None:
    rd = write_run(
        tmp_path / "bare",
        concurrencies=(1, 4),
        rates=(2.0,),
        requests_per_level=6,
        osl=20,
        with_requests=False,
    )
    (rd / "metadata.json").unlink()
    paths = render_report(rd, formats=("png", "html"), reference=False)
    assert sorted(p.name for p in paths) == [
        "itl.png",
        "pareto.png",
        "report.html",
        "tps_user.png",
        "ttft.png",
    ]
    page = (rd / "report" / "report.html").read_text(encoding="utf-8")
    assert "Tokens-per-chunk chart left out" in page and "rate=2/s" in page


def test_unknown_format_is_refused(sweep: Path) -> None:
    with pytest.raises(ValueError, match=r"unknown report formats \['pdf'\]"):
        render_report(sweep, formats=("png", "pdf"))


def test_point_labels_do_not_overlap(sweep: Path) -> None:
    run = open_run(sweep)
    fig = charts.pareto_figure([charts.Series(run.name, run)])
    ax = fig.axes[0]
    renderer = chartkit.drawn_renderer(fig)
    boxes = [t.get_window_extent(renderer) for t in ax.texts if t.get_text().startswith("c=")]
    assert len(boxes) == 7
    assert not any(a.overlaps(b) for a, b in itertools.combinations(boxes, 2))
    legend = ax.get_legend()
    assert legend is not None
    assert not any(b.overlaps(legend.get_window_extent(renderer)) for b in boxes)


def test_empty_run_renders_placeholders(tmp_path: Path) -> None:
    rd = tmp_path / "empty"
    rd.mkdir()
    (rd / "summary.json").write_text(
        '{"schema": 1, "run": {"name": "empty"}, "points": []}', encoding="utf-8"
    )
    paths = render_report(rd, formats=("png", "md"), reference=False)
    assert {p.name for p in paths} == {"pareto.png", "ttft.png", "tps_user.png", "itl.png", "summary.md"}


def test_the_package_lends_render_functions_without_importing_matplotlib() -> None:
    """``tpsbench.report.render_report`` / ``compare_runs`` are render.py's own (one signature: the
    package's copies had drifted, its compare_runs took no marks or metrics), imported on first use."""
    import subprocess
    import sys

    code = (
        "import sys, tpsbench.report as r; assert 'matplotlib' not in sys.modules; "
        "from tpsbench.report import render; "
        "assert r.render_report is render.render_report and r.compare_runs is render.compare_runs"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    with pytest.raises(AttributeError, match="has no attribute 'drawn'"):
        _ = __import__("tpsbench.report").report.drawn
