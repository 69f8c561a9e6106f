"""Several runs side by side: one Pareto chart and one table of relative differences against the first run.

Runs of different workloads (ISL/OSL), models or APIs measure different things, so they are refused with
:class:`NotComparable` naming the reason, unless ``force=True``, which draws them flagged instead.

The comparison is computed here (:func:`compare`) and written by
:func:`tpsbench.report.render.compare_runs`, which draws the chart and writes the page and the table.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tpsbench.report import fmt
from tpsbench.report.data import Point, Run


class NotComparable(ValueError):
    """The runs measure different things; ``reasons`` says which run differs from the first and how."""

    def __init__(self, reasons: Sequence[str]) -> None:
        self.reasons = list(reasons)
        super().__init__("; ".join(self.reasons))


def _same(a: float | None, b: float | None) -> bool:
    return (a is None and b is None) or (a is not None and b is not None and math.isclose(a, b, rel_tol=1e-6))


def _tokens(v: float | None) -> str:
    return "unknown" if v is None else f"{v:,.0f}"


def incomparability(base: Run, other: Run) -> str | None:
    """Why ``other`` cannot be compared with ``base`` (workload ISL/OSL, model, API), or None."""
    why = []
    (bi, bo), (oi, oo) = base.isl_osl, other.isl_osl
    if not (_same(bi, oi) and _same(bo, oo)):
        why.append(f"workload ISL/OSL {_tokens(oi)}/{_tokens(oo)} vs {_tokens(bi)}/{_tokens(bo)} tokens")
    if base.model != other.model:
        why.append(f"model {other.model!r} vs {base.model!r}")
    if base.api != other.api:
        why.append(f"API {other.api!r} vs {base.api!r}")
    if base.prompts_file != other.prompts_file:
        why.append(f"prompts file {other.prompts_file!r} vs {base.prompts_file!r}")
    return ", ".join(why) or None


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


@dataclass(frozen=True)
class CompareResult:
    """What :func:`compare_runs` found and wrote. ``flags`` maps a run's label to why it is not comparable
    with the first (only when forced); ``files`` are the paths written."""

    labels: list[str]
    runs: list[Run]
    rows: list[CompareRow]
    flags: dict[str, str] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)

    def delta(self, load: str, metric: str, label: str) -> float | None:
        """How ``label``'s run differs from the first at a load, relatively: ``delta("c=16", "TPS/user p50",
        "PR")``."""
        k = self.labels.index(label)
        for row in self.rows:
            if row.load == load and row.metric == metric:
                return row.cells[k].delta
        raise KeyError(f"no row for {metric!r} at {load!r}")


_Interval = tuple[float, float] | None


@dataclass(frozen=True, slots=True)
class _Metric:
    name: str
    get: Callable[[Point], float | None]
    ci: Callable[[Point], _Interval]  # of the median, for the "may be noise" mark
    show: Callable[[float | None, _Interval], str]
    higher_is_better: bool


def _stat(metric: str, stat: str) -> Callable[[Point], float | None]:
    return lambda p: p.stat(metric, stat)


def _median_ci(metric: str) -> Callable[[Point], _Interval]:
    def get(p: Point) -> _Interval:
        d = p.dist(metric)
        return d.p50_ci if d is not None else None

    return get


def _no_ci(_: Point) -> _Interval:
    return None


METRICS: tuple[_Metric, ...] = (
    _Metric("TPS/user p50", _stat("tps_user", "p50"), _median_ci("tps_user"), fmt.with_ci, True),
    _Metric("TPS/user p10", _stat("tps_user", "p10"), _no_ci, fmt.with_ci, True),
    _Metric("output TPS", lambda p: p.number("output_tps"), _no_ci, fmt.with_ci, True),
    _Metric("TTFT p50", _stat("ttft_s", "p50"), _median_ci("ttft_s"), fmt.seconds_with_ci, False),
    _Metric("TTFT p99", _stat("ttft_s", "p99"), _no_ci, fmt.seconds_with_ci, False),
    _Metric("error rate", lambda p: p.number("error_rate"), _no_ci, lambda v, _: fmt.percent(v), False),
)


def _cell(metric: _Metric, point: Point | None, base: Point | None) -> CompareCell:
    if point is None:
        return CompareCell(None, fmt.DASH)
    v, ci = metric.get(point), metric.ci(point)
    text = metric.show(v, ci)
    if base is point or base is None or v is None:
        return CompareCell(v, text)
    b = metric.get(base)
    if b is None or b == 0:
        return CompareCell(v, text)  # a relative change from zero (e.g. no errors) is undefined
    base_ci = metric.ci(base)
    noise = None if ci is None or base_ci is None else ci[0] <= base_ci[1] and base_ci[0] <= ci[1]
    return CompareCell(v, text, (v - b) / b, noise)


def compare_table(runs: Sequence[Run]) -> list[CompareRow]:
    """Rows of (load, metric) for every load any run measured, in the first run's order then the others';
    cells hold each run's value and its change relative to the first run (pure)."""
    by_load = [{p.load_key: p for p in run.points} for run in runs]
    keys: dict[tuple[str, float], str] = {}
    for run in runs:
        for p in run.points:
            keys.setdefault(p.load_key, p.label)
    rows = []
    for key, label in keys.items():
        points = [pts.get(key) for pts in by_load]
        for m in METRICS:
            cells = [_cell(m, p, points[0]) for p in points]
            rows.append(CompareRow(label, m.name, m.higher_is_better, cells))
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
    runs: Sequence[Run], labels: Sequence[str] | None = None, *, force: bool = False
) -> CompareResult:
    """Compare loaded runs without writing anything. Raises :class:`NotComparable` unless ``force``."""
    if len(runs) < 2:
        raise ValueError("compare needs at least two runs")
    names = _unique_labels(runs, labels)
    flags = {names[i]: why for i, run in enumerate(runs[1:], 1) if (why := incomparability(runs[0], run))}
    if flags and not force:
        raise NotComparable([f"{label} differs from {names[0]}: {why}" for label, why in flags.items()])
    return CompareResult(labels=names, runs=list(runs), rows=compare_table(runs), flags=flags)
