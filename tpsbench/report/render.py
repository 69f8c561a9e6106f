"""Writing reports to disk: the only module here that touches files besides reading the run directory.

>>> paths = render_report(Path("results/my-run"))    # doctest: +SKIP
>>> [p.name for p in paths]                           # doctest: +SKIP
['pareto.png', 'pareto.svg', ..., 'report.html', 'summary.md']
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure
from pydantic import ValidationError

from tpsbench.config.errors import ScenarioError
from tpsbench.config.loader import load_scenario
from tpsbench.config.report import Mark, Report
from tpsbench.reference.model import ModelParams
from tpsbench.report import chartkit, charts, levels
from tpsbench.report import headline as words
from tpsbench.report.compare import CompareResult, compare
from tpsbench.report.html import Image, compare_to_html, to_html
from tpsbench.report.markdown import compare_to_markdown, to_markdown
from tpsbench.report.references import ModelPoint, curve_concurrencies, model_curve
from tpsbench.report.timeline import timeline_figure
from tpsbench.results.files import SCENARIO, TELEMETRY, RunFileError, read_samples, read_scenario
from tpsbench.results.views import Run, open_run

FORMATS = frozenset({"png", "svg", "html", "md"})
REPORT_DIR = "report"


@dataclass(frozen=True)
class Chart:
    """A figure to write as ``name.png`` / ``name.svg`` and show in the HTML with its caption."""

    name: str
    title: str
    caption: str
    figure: Figure


def _check_formats(formats: Collection[str]) -> set[str]:
    wanted = set(formats)
    if unknown := wanted - FORMATS:
        raise ValueError(f"unknown report formats {sorted(unknown)}; choose from {sorted(FORMATS)}")
    return wanted


def _model_overrides(run: Run) -> dict[str, Any]:
    """The scenario's ``reference:`` parameters when the run measured the bundled reference endpoint, so
    the curve is the model that endpoint simulated; none for any other endpoint."""
    path = run.path / "scenario.yaml" if run.path is not None else None
    if run.info.get("reference_endpoint") is not True or path is None or not path.is_file():
        return {}
    return dict(load_scenario(path).reference)


def _model(run: Run, notes: list[str]) -> tuple[list[ModelPoint] | None, str]:
    """The reference model's curve for the run's workload and its legend label, or None and a note."""
    isl, osl = run.isl_osl
    if isl is None or osl is None:
        notes.append("Reference model curve left out: the summary does not state the workload's ISL/OSL.")
        return None, ""
    try:
        overrides = _model_overrides(run)
        curve = model_curve(curve_concurrencies(run), isl, osl, overrides)
    except (ScenarioError, ValueError) as e:  # a hand-edited scenario.yaml must not cost the whole report
        notes.append(f"Reference model curve left out: {e}")
        return None, ""
    changed = ", ".join(f"{k}={v}" for k, v in sorted(overrides.items()))
    return curve, charts.MODEL_LABEL + (f"\n{changed}" if changed else "")


def scenario_marks(run: Run, notes: list[str]) -> list[Mark]:
    """The marks of the run's scenario (``report.marks`` in its ``scenario.yaml``); none, with a note,
    when that section cannot be read (a hand-edited file must not cost the whole report)."""
    if run.path is None:
        return []
    try:
        data = read_scenario(run.path / SCENARIO) or {}
        return list(Report.model_validate(data.get("report") or {}).marks)
    except (RunFileError, ValidationError) as e:
        first = str(e).splitlines()[0]
        notes.append(f"The scenario's report.marks were left out: {first}")
        return []


def _merged(*groups: Sequence[Mark]) -> list[Mark]:
    """Marks in order, each once (the scenario's and the command line's may repeat one)."""
    return list(dict.fromkeys(m for g in groups for m in g))


def overlays_for(
    run: Run, notes: list[str], reference: bool | None = None, marks: Sequence[Mark] = ()
) -> charts.Overlays:
    """The one rule for what a Pareto chart of ``run`` is drawn next to: the reference model's curve and
    the published Maverick speeds when ``reference`` is True, or, when it is None (the default), only if
    the run measured the bundled reference endpoint; nothing when False. A run of another endpoint is
    not drawn against Maverick unless the user asks. The user's marks (the scenario's, then ``marks``)
    are drawn in every case."""
    user = _merged(scenario_marks(run, notes), marks)
    if not (run.info.get("reference_endpoint") is True if reference is None else reference):
        return charts.Overlays(marks=user)
    model, label = _model(run, notes)
    return charts.Overlays(
        model, label or charts.MODEL_LABEL, published=True, regime=_regime(run), marks=user
    )


def _regime(run: Run) -> tuple[int, str] | None:
    """Where the reference model changes regime: speculative decoding (draft_len > 0) runs only while the
    batch is at most spec_max_batch (reference/model.py), so the curve kinks after that concurrency."""
    try:
        params = ModelParams().with_overrides(_model_overrides(run))
    except (ScenarioError, ValueError):
        return None
    if params.draft_len == 0:
        return None
    b = params.spec_max_batch
    return b, f"speculative decoding (draft {params.draft_len}) off above batch {b}"


def _pareto_caption(overlays: charts.Overlays) -> str:
    text = (
        "One point per load level: median TPS/user with its confidence interval (x) against output TPS "
        "of the server (y). The line joins the Pareto frontier: levels no other level beats on both; "
        "hollow points are dominated."
    )
    if overlays.published:
        text += " Dotted verticals: published single-user speeds on Llama 4 Maverick."
    if overlays.model:
        text += " Dashed grey: the reference model's prediction for the same ISL/OSL."
    return text + _marks_caption(overlays)


def _marks_caption(overlays: charts.Overlays) -> str:
    if not overlays.marks:
        return ""
    names = ", ".join(m.name for m in overlays.marks)
    return f" Purple dash-dot: the marks given for this report ({names})."


def build_charts(
    run: Run, *, reference: bool | None = None, marks: Sequence[Mark] = ()
) -> tuple[list[Chart], list[str]]:
    """Every chart the run's data allows, and notes on what was left out and why. ``reference`` and
    ``marks``: see :func:`overlays_for`."""
    notes: list[str] = []
    overlays = overlays_for(run, notes, reference, marks)
    out = [
        Chart(
            "pareto",
            "Throughput vs interactivity",
            _pareto_caption(overlays),
            charts.pareto_figure([charts.Series(run.name, run)], overlays=overlays),
        ),
        Chart(
            "ttft",
            "Time to first token against load",
            "Median (with its confidence interval), p90 and p99 time to first token at each level. "
            "Queueing shows up first in p99.",
            levels.ttft_figure(run),
        ),
        Chart(
            "tps_user",
            "Per-user speed by load level",
            "Distribution of TPS/user over the requests of each level: the box spans p10 to p90, whiskers "
            "p1 to p99; the lower whisker is what the slowest users get.",
            levels.tps_user_figure(run),
        ),
        Chart(
            "itl",
            "Inter-chunk latency",
            "Cumulative distribution of the gaps between streamed chunks at each level (from every gap "
            "when requests.jsonl is present, else from the summary's quantiles).",
            levels.itl_figure(run),
        ),
    ]
    tpc = levels.tokens_per_chunk_figure(run)
    if tpc is not None:
        out.append(
            Chart(
                "tokens_per_chunk",
                "Tokens per streamed chunk",
                "Share of chunks carrying 1, 2, 3... tokens at each level, and the mean. Several tokens per "
                "chunk is speculative decoding (accepted draft tokens) or server-side buffering.",
                tpc,
            )
        )
    else:
        notes.append("Tokens-per-chunk chart left out: it needs the raw chunks of requests.jsonl.")
    if (server := _timeline(run)) is not None:
        out.append(server)
    return out, notes


def _timeline(run: Run) -> Chart | None:
    """The load timeline over the server's Prometheus series, when the run directory has both."""
    if run.path is None or not (run.path / TELEMETRY).is_file() or not run.has_records:
        return None
    source = run.info.get("source_tool")
    fig = timeline_figure(
        list(run.records),
        list(read_samples(run.path / TELEMETRY)),
        source=str(source) if source else None,
        title=words.title(run, "Load and server metrics"),
        identity=words.identity(run),
    )
    if fig is None:
        return None
    simulated = (
        " (the reference endpoint reports running requests over its max_batch slots: no KV-cache model)"
        if run.reference_endpoint
        else ""
    )
    return Chart(
        "server_timeline",
        "Load timeline and the server's metrics",
        "From the top: requests in flight; output tokens per second as the client received them (1 s "
        "bins) and as the server's generated-tokens counter grew between scrapes; requests the server "
        f"reported running and waiting; its KV-cache use, when reported{simulated}. Dotted lines: level "
        "starts.",
        fig,
    )


def _write(path: Path, data: bytes | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        path.write_text(data, encoding="utf-8")
    else:
        path.write_bytes(data)
    return path


def _write_charts(chart_list: list[Chart], out: Path, wanted: set[str]) -> tuple[list[Path], list[Image]]:
    files: list[Path] = []
    images: list[Image] = []
    for chart in chart_list:
        if wanted & {"png", "html"}:
            png = chartkit.figure_bytes(chart.figure, "png")  # rendered once, for the file and the page
            if "png" in wanted:
                files.append(_write(out / f"{chart.name}.png", png))
            images.append(Image(chart.title, png, chart.caption))
        if "svg" in wanted:
            files.append(_write(out / f"{chart.name}.svg", chartkit.figure_bytes(chart.figure, "svg")))
    return files, images


def render_report(
    run_dir: Path,
    *,
    formats: Collection[str] = ("png", "svg", "html", "md"),
    reference: bool | None = None,
    out_dir: Path | None = None,
    marks: Sequence[Mark] = (),
) -> list[Path]:
    """Render a run directory's report into ``RUN_DIR/report/`` (or ``out_dir``): PNG and SVG charts,
    ``report.html`` (self-contained) and ``summary.md``. ``reference`` chooses the overlays (see
    :func:`overlays_for`: by default only a run of the reference endpoint gets them); ``marks`` are
    read against beside the scenario's ``report.marks``. Returns the paths written."""
    wanted = _check_formats(formats)
    run_dir = Path(run_dir)
    run = open_run(run_dir)  # records are read only if a chart asks for them
    out = Path(out_dir) if out_dir is not None else run_dir / REPORT_DIR
    files: list[Path] = []
    read_against = _merged(scenario_marks(run, []), marks)  # build_charts notes a broken report section
    if wanted - {"md"}:
        chart_list, notes = build_charts(run, reference=reference, marks=marks)
        chart_files, images = _write_charts(chart_list, out, wanted)
        files += chart_files
        if "html" in wanted:
            page = to_html(run.summary, images, metadata=run.metadata, notes=notes, marks=read_against)
            files.append(_write(out / "report.html", page))
    if "md" in wanted:
        files.append(_write(out / "summary.md", to_markdown(run.summary, read_against)))
    return files


def write_comparison(
    result: CompareResult,
    out_dir: Path,
    *,
    formats: Collection[str],
    reference: bool | None = None,
    marks: Sequence[Mark] = (),
) -> CompareResult:
    """Write a comparison's chart, page and table into ``out_dir`` and return it with the paths written
    and the marks read against: the chart draws the first run's scenario marks and ``marks``, and the
    table reads every run against them."""
    wanted = _check_formats(formats)
    files: list[Path] = []
    base = result.runs[0]
    read_against = _merged(scenario_marks(base, []), marks)  # overlays_for notes a broken report section
    if wanted - {"md"}:
        notes: list[str] = []
        # the first run decides; the model's curve is one run's prediction, so a comparison leaves it out
        overlays = dataclasses.replace(overlays_for(base, notes, reference, marks), model=None)
        series = [
            charts.Series(label, run, result.flags.get(label))
            for label, run in zip(result.labels, result.runs, strict=True)
        ]
        chart = Chart(
            "compare_pareto",
            "Throughput vs interactivity, all runs",
            "Each run's load levels and Pareto frontier; hollow points are dominated within their run."
            + _marks_caption(overlays)
            + "".join(f" {n}" for n in notes),
            charts.pareto_figure(
                series,
                overlays=overlays,
                title=words.compare_title(result.runs, result.labels, "Throughput vs interactivity"),
            ),
        )
        chart_files, images = _write_charts([chart], out_dir, wanted)
        files += chart_files
        if "html" in wanted:
            files.append(_write(out_dir / "compare.html", compare_to_html(result, images, read_against)))
    if "md" in wanted:
        files.append(_write(out_dir / "compare.md", compare_to_markdown(result, read_against)))
    return dataclasses.replace(result, files=files, marks=read_against)


def compare_runs(
    run_dirs: list[Path],
    labels: list[str] | None,
    out_dir: Path,
    *,
    force: bool = False,
    formats: Collection[str] = ("png", "svg", "html", "md"),
    reference: bool | None = None,
    metrics: Sequence[str] | None = None,
    marks: Sequence[Mark] = (),
) -> CompareResult:
    """Compare run directories: write ``compare_pareto.png/.svg``, ``compare.html`` and ``compare.md`` (as
    ``formats`` asks) into ``out_dir`` and return the result with the paths written.

    >>> compare_runs([Path("results/a"), Path("results/b")], ["main", "PR"], Path("cmp"))  # doctest: +SKIP
    """
    runs = [open_run(Path(d)) for d in run_dirs]
    result = compare(runs, labels, force=force, metrics=metrics)
    return write_comparison(result, Path(out_dir), formats=formats, reference=reference, marks=marks)
