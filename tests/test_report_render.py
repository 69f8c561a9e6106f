"""Rendering a run directory headless: the files, their content, the reference curve, label placement."""

from __future__ import annotations

import itertools
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from report_fixtures import FakeReferenceModel, fake_model_module, write_run

from tpsbench.report import charts, load_run, render_report
from tpsbench.report.references import curve_concurrencies, model_curve

MODEL = "tpsbench.reference.model"
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
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(sys.modules, MODEL, fake_model_module())
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


def test_summary_md_matches_the_serializer(sweep: Path, rendered: list[Path]) -> None:
    from tpsbench.report import to_markdown

    md = (sweep / "report" / "summary.md").read_text(encoding="utf-8")
    assert md == to_markdown(load_run(sweep).summary)


def test_the_model_is_asked_for_the_runs_workload(sweep: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, MODEL, fake_model_module())
    run = load_run(sweep, requests=False)
    cs = curve_concurrencies(run)
    assert cs[0] == 1 and cs[-1] == 64 and {1, 2, 4, 8, 16, 32, 64} <= set(cs)
    curve = model_curve(cs, *run.isl_osl)  # type: ignore[arg-type]
    assert FakeReferenceModel.calls == [(cs, 1000, 60)]
    assert curve is not None and [m.concurrency for m in curve] == cs
    fig = charts.pareto_figure([charts.Series(run.name, run)], model=curve)
    labels = [line.get_label() for line in fig.axes[0].get_lines()]
    assert any(str(label).startswith("reference model") for label in labels)


def test_without_the_model_module_the_curve_is_left_out(
    sweep: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, MODEL, None)  # makes `import` raise ModuleNotFoundError
    assert model_curve([1, 2], 1000, 100) is None
    render_report(sweep, formats=("html",), out_dir=tmp_path)
    assert "tpsbench.reference.model is not installed" in (tmp_path / "report.html").read_text(
        encoding="utf-8"
    )


def test_summary_json_alone_renders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, MODEL, None)
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
    run = load_run(sweep, requests=False)
    fig = charts.pareto_figure([charts.Series(run.name, run)])
    ax = fig.axes[0]
    renderer = charts._renderer(fig)
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
