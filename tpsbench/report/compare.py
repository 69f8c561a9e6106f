"""Several runs side by side: one Pareto chart and one table of relative differences against the first run.

Runs of different workloads (ISL/OSL), models or APIs measure different things, so they are refused with
:class:`NotComparable` naming the reason, unless ``force=True``, which draws them flagged instead.

The comparison is computed here (:func:`compare`) and written by
:func:`tpsbench.report.render.compare_runs`, which draws the chart and writes the page and the table.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tpsbench.config.report import Mark
from tpsbench.core import fmt
from tpsbench.core.metricspec import DEFAULT_METRICS, MetricSpec, metric_spec
from tpsbench.report.headline import marks_by_run
from tpsbench.results import matching
from tpsbench.results.views import Point, Run


class NotComparable(ValueError):
    """The runs measure different things; ``reasons`` says which run differs from the first and how."""

    def __init__(self, reasons: Sequence[str]) -> None:
        self.reasons = list(reasons)
        super().__init__("; ".join(self.reasons))


def incomparability(base: Run, other: Run) -> str | None:
    """Why ``other`` cannot be compared with ``base``, or None: the one rule of
    :func:`tpsbench.results.matching.comparability_reasons` (the gate's too)."""
    return ", ".join(matching.comparability_reasons(base, other)) or None


@dataclass(frozen=True, slots=True)
class CompareCell:
    """One run's value of a metric at a load, and how it differs from the first run's."""

    value: float | None
    text: str  # the value with its unit (and CI for medians)
    delta: float | None = None  # (value - first) / first; None for the first run or when undefined
    noise: bool | None = None  # True when the medians' CIs overlap: the change may be noise

    @property
    def display(self) -> str:
        if self.delta is None:
            return self.text
        mark = " ≈" if self.noise else ""
        return f"{self.text} ({fmt.percent(self.delta, signed=True)}{mark})"


@dataclass(frozen=True, slots=True)
class CompareRow:
    load: str
    metric: str
    higher_is_better: bool
    cells: list[CompareCell]
    spec: MetricSpec | None = None  # the metric's spec (units for the terminal table)


@dataclass(frozen=True)
class CompareResult:
    """What :func:`compare_runs` found and wrote. ``flags`` maps a run's label to why it is not comparable
    with the first (only when forced); ``files`` are the paths written; ``marks`` what every run was read
    against (the first run's scenario ``report.marks``, then ``--mark``)."""

    labels: list[str]
    runs: list[Run]
    rows: list[CompareRow]
    flags: dict[str, str] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)
    marks: list[Mark] = field(default_factory=list)

    def delta(self, load: str, metric: str, label: str) -> float | None:
        """How ``label``'s run differs from the first at a load, relatively: ``delta("c=16", "TPS/user p50",
        "PR")``."""
        k = self.labels.index(label)
        for row in self.rows:
            if row.load == load and row.metric == metric:
                return row.cells[k].delta
        raise KeyError(f"no row for {metric!r} at {load!r}")


_Interval = tuple[float, float] | None


def _show(spec: MetricSpec, v: float | None, ci: _Interval) -> str:
    if spec.kind == "error_rate":
        return fmt.percent(v)
    return fmt.seconds_with_ci(v, ci) if spec.unit == "s" else fmt.with_ci(v, ci)


# The rows of a comparison: the gate's default metrics (core/metricspec.py), in its order.
METRICS: tuple[MetricSpec, ...] = tuple(metric_spec(m) for m in DEFAULT_METRICS)


def _cell(spec: MetricSpec, point: Point | None, base: Point | None) -> CompareCell:
    if point is None:
        return CompareCell(None, fmt.DASH)
    v, ci = matching.summary_value(point, spec), matching.summary_ci(point, spec)
    text = _show(spec, v, ci)
    if base is point or base is None or v is None:
        return CompareCell(v, text)
    b = matching.summary_value(base, spec)
    if b is None or b == 0:
        return CompareCell(v, text)  # a relative change from zero (e.g. no errors) is undefined
    noise = matching.ci_overlap(ci, matching.summary_ci(base, spec))
    return CompareCell(v, text, (v - b) / b, noise)


def compare_table(runs: Sequence[Run], metrics: Sequence[MetricSpec] = METRICS) -> list[CompareRow]:
    """Rows of (load, metric) for every load any run measured, in the first run's order then the others';
    cells hold each run's value and its change relative to the first run (pure). Loads are matched by
    :func:`tpsbench.results.matching.keyed_points`, as the gate matches them. ``metrics`` (default: the
    gate's defaults) may name any gated metric, e.g. another harness's TPS/user (``tps_user_aiperf_p50``)."""
    by_load = [matching.keyed_points(run.points) for run in runs]
    keys: dict[matching.Key, str] = {}
    for pts in by_load:
        for key, (label, _) in pts.items():
            keys.setdefault(key, label)
    rows = []
    for key, label in keys.items():
        points = [found[1] if (found := pts.get(key)) else None for pts in by_load]
        for spec in metrics:
            cells = [_cell(spec, p, points[0]) for p in points]
            rows.append(CompareRow(label, spec.title, spec.higher_is_better, cells, spec))
    return rows


def _unique_labels(runs: Sequence[Run], labels: Sequence[str] | None) -> list[str]:
    if labels is not None:
        if len(labels) != len(runs):
            raise ValueError(f"{len(labels)} labels for {len(runs)} runs: give one label per run")
        if len(set(labels)) != len(labels):
            raise ValueError(f"labels must differ: {list(labels)}")
        return list(labels)
    out: list[str] = []
    for run in runs:
        name, n = run.name, 2
        while name in out:
            name, n = f"{run.name} ({n})", n + 1
        out.append(name)
    return out


def compare(
    runs: Sequence[Run],
    labels: Sequence[str] | None = None,
    *,
    force: bool = False,
    metrics: Sequence[str] | None = None,
) -> CompareResult:
    """Compare loaded runs without writing anything. Raises :class:`NotComparable` unless ``force``;
    ``metrics`` names the rows (gated metric names, see core/metricspec.py; ValueError for unknown ones)."""
    specs = tuple(metric_spec(m) for m in metrics) if metrics else METRICS
    if len(runs) < 2:
        raise ValueError("compare needs at least two runs")
    names = _unique_labels(runs, labels)
    flags = {names[i]: why for i, run in enumerate(runs[1:], 1) if (why := incomparability(runs[0], run))}
    if flags and not force:
        raise NotComparable([f"{label} differs from {names[0]}: {why}" for label, why in flags.items()])
    return CompareResult(labels=names, runs=list(runs), rows=compare_table(runs, specs), flags=flags)


def _short(spec: MetricSpec, v: float | None) -> str:
    if spec.kind == "error_rate":
        return fmt.percent(v)
    return fmt.seconds(v) if spec.unit == "s" else fmt.tps(v)


def rich_table(result: CompareResult) -> Any:
    """The comparison as a rich Table for the terminal (values without their intervals, so two or three
    runs fit 80 columns; the Markdown and HTML tables carry the intervals). Changes are relative to the
    first run, coloured when the medians' intervals do not overlap."""
    from rich.table import Table

    table = Table(title=f"tpsbench compare: {' vs '.join(result.labels)}", title_justify="left")
    table.add_column("load")
    table.add_column("metric")
    for label in result.labels:
        table.add_column(label, justify="right", overflow="fold")
    previous = None
    for row in result.rows:
        spec = row.spec or METRICS[0]
        cells = []
        for cell in row.cells:
            text = _short(spec, cell.value)
            if cell.delta is not None:
                better = (cell.delta > 0) == row.higher_is_better
                style = "dim" if cell.noise is not False else "green" if better else "red"
                mark = " ≈" if cell.noise else ""
                text += f" [{style}]{fmt.percent(cell.delta, signed=True)}{mark}[/]"
            cells.append(text)
        table.add_row(
            row.load if row.load != previous else "",
            f"{row.metric} {'↑' if row.higher_is_better else '↓'}",
            *cells,
        )
        previous = row.load
    return table


def rich_marks_table(result: CompareResult) -> Any | None:
    """Each run against the marks for the terminal, as ``compare.md`` has it (a row per mark, a column per
    run: its best number and share of the mark); None when there is nothing to read against."""
    from rich.table import Table
    from rich.text import Text

    headers, rows = marks_by_run(result.runs, result.labels, result.marks)
    if not rows:
        return None
    table = Table(title="against the marks: each run's best and its share", title_justify="left")
    for k, header in enumerate(headers):
        table.add_column(header, justify="right" if k >= 2 else "left", overflow="fold")
    for row in rows:
        table.add_row(*(Text(cell) for cell in row))  # a mark's name is the user's text, not markup
    return table
