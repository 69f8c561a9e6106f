"""The Pareto chart (throughput against interactivity) of one or several runs, a function returning a
matplotlib Figure (drawn with :mod:`tpsbench.report.chartkit`: palette, style, serialization, label
placement; the marks it is read against in :mod:`tpsbench.report.marks`). The per-level charts are in
:mod:`tpsbench.report.levels`. A new chart is a function in one of them and a
:class:`~tpsbench.report.render.Chart` entry in ``render.build_charts``.

Figures are 8 inches wide with 10-pt text, legible when shown 800 px wide.

    >>> fig = pareto_figure([Series("demo", run)])    # doctest: +SKIP
    >>> png = figure_bytes(fig, "png")                   # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from matplotlib import rc_context
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from tpsbench.config.report import Mark
from tpsbench.report import headline as words
from tpsbench.report import marks as drawn_marks
from tpsbench.report.chartkit import (
    GREY,
    INK,
    SERIES_COLOURS,
    SERIES_MARKERS,
    STYLE,
    VERMILLION,
    WARN,
    Label,
    Line,
    empty_figure,
    figure_title,
    new_figure,
    place_labels,
    subtitle,
    tokens_axis,
    use_log,
)
from tpsbench.report.pareto import pareto_frontier
from tpsbench.report.references import ModelPoint
from tpsbench.report.tables import run_line
from tpsbench.results.views import Point, Run

MODEL_LABEL = "reference model, same ISL/OSL\n(simulated Maverick, 8× B200)"


# --- Pareto ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Series:
    """One run on a Pareto chart. ``flag`` says why it is not comparable to the first run (forced compare)."""

    label: str
    run: Run
    flag: str | None = None


@dataclass(frozen=True, slots=True)
class _XY:
    point: Point
    x: float
    y: float
    ci: tuple[float, float] | None


def _pareto_xy(run: Run) -> list[_XY]:
    out = []
    for p in run.points:
        x, y = p.stat("tps_user", "p50"), p.output_tps
        if x is not None and y is not None:
            d, est = p.dist("tps_user"), p.repeat_estimate("tps_user_p50")
            if est is not None and est.ci is not None:  # repeats: the run-level estimate and its interval
                out.append(_XY(p, est.mean, y, est.ci))
            else:
                out.append(_XY(p, x, y, d.p50_ci if d is not None else None))
    return out


def _draw_series(
    ax: Axes, k: int, s: Series, pts: Sequence[_XY], many: bool
) -> tuple[list[Label], Line, bool]:
    """One run: CI bars, its frontier as a line (dashed when flagged), dominated levels hollow. Returns
    the point labels to place, the frontier line and whether any level is dominated."""
    colour, marker = SERIES_COLOURS[k % len(SERIES_COLOURS)], SERIES_MARKERS[k % len(SERIES_MARKERS)]
    spread = [
        (ex.values, ey.values)
        for d in pts
        if (ex := d.point.repeat_estimate("tps_user_p50")) is not None
        and (ey := d.point.repeat_estimate("output_tps")) is not None
        and len(ex.values) == len(ey.values)
    ]
    for xs_, ys_ in spread:  # run-to-run spread: each repeat's point, small and faint
        ax.plot(xs_, ys_, ls="none", marker=marker, ms=3.5, color=colour, alpha=0.45, zorder=3)
    bars = [(d.x, d.y, d.x - d.ci[0], d.ci[1] - d.x) for d in pts if d.ci is not None]
    if bars:
        bx, by, left, right = (list(v) for v in zip(*bars, strict=True))
        ax.errorbar(
            bx, by, xerr=[left, right], fmt="none", ecolor=colour, elinewidth=1.2, capsize=3, zorder=3
        )
    front = pareto_frontier([(d.x, d.y) for d in pts])  # ordered by x: ready to draw
    line = ([pts[i].x for i in front], [pts[i].y for i in front])
    name = f"{s.label}  {WARN} not comparable" if s.flag else s.label
    ax.plot(
        *line,
        color=colour,
        marker=marker,
        ms=7,
        lw=2,
        ls="--" if s.flag else "-",
        label=name,
        zorder=4,
    )
    dominated = [d for i, d in enumerate(pts) if i not in set(front)]
    if dominated:
        ax.plot(
            [d.x for d in dominated],
            [d.y for d in dominated],
            ls="none",
            marker=marker,
            ms=7,
            mfc="white",
            mec=colour,
            mew=1.5,
            zorder=4,
        )
    labels = [
        Label(
            d.x,
            d.y,
            f"{d.point.label} {WARN}" if d.point.flagged else d.point.label,
            colour if many else INK,
            optional=k > 0,  # the first run's labels always show; later runs' give way
        )
        for d in pts
    ]
    return labels, line, bool(dominated)


def _per_gpu_axis(ax: Axes, gpus: int, log: bool) -> None:
    """The same throughput per GPU on the right: a rescaled copy of the left axis, so one set of points."""

    def per_gpu(y: Any) -> Any:
        return y / gpus

    def per_server(y: Any) -> Any:
        return y * gpus

    right = ax.secondary_yaxis("right", functions=(per_gpu, per_server))
    tokens_axis(right.yaxis, log)
    right.set_ylabel(f"output TPS per GPU (tokens/s, {gpus} GPUs)")


@dataclass(frozen=True)
class Overlays:
    """What a Pareto chart draws besides the runs, chosen by the caller (:mod:`.render` draws them for a
    run of the bundled reference endpoint, or when asked): the reference model's curve and the published
    per-user speeds (:mod:`tpsbench.reference.published`), the user's marks. Nothing by default."""

    model: Sequence[ModelPoint] | None = None
    model_label: str = MODEL_LABEL
    published: bool = False
    marks: Sequence[Mark] = ()  # the user's (report.marks, --mark): report/marks.py draws them
    # Where the curve changes regime: (the last concurrency of the first regime, what changes after it),
    # e.g. (8, "speculative decoding off above batch 8") for the reference model.
    regime: tuple[int, str] | None = None


def pareto_figure(
    series: Sequence[Series],
    *,
    overlays: Overlays = Overlays(),
    title: str | None = None,
) -> Figure:
    """Throughput (output TPS per server, and per GPU on the right axis when every run has the same known
    GPU count) against interactivity (median TPS/user with its CI), one point per load level, each run's
    Pareto frontier drawn through its non-dominated levels; the first run's TPS/user SLO region, and the
    ``overlays`` asked for (the reference model's curve, the published per-user records)."""
    model, published = overlays.model, overlays.published
    if not series:
        raise ValueError("pareto_figure needs at least one run")
    with rc_context(STYLE):
        fig, ax = new_figure(5.6)
        data = [_pareto_xy(s.run) for s in series]
        if not any(data):
            why = "no load level has both a TPS/user median and an output TPS"
            return empty_figure(fig, ax, "Throughput vs interactivity", why)
        labels: list[Label] = []
        lines: list[Line] = []  # labels steer clear of every drawn line: frontiers and the model's curve
        any_dominated = False
        for k, (s, pts) in enumerate(zip(series, data, strict=True)):
            if pts:
                run_labels, line, dominated = _draw_series(ax, k, s, pts, len(series) > 1)
                labels += run_labels
                lines.append(line)
                any_dominated |= dominated
        if any_dominated:
            ax.plot([], [], ls="none", marker="o", mfc="white", mec=GREY, label="dominated level (hollow)")
        drawn_marks.legend_entry(ax, overlays.marks)
        notes = []
        if model:
            # Markers only at the first run's concurrencies, so its c=8 can be read against the model's.
            run_cs = {p.concurrency for p in series[0].run.points}
            marks = [i for i, m in enumerate(model) if m.concurrency in run_cs]
            line = ([m.tps_user for m in model], [m.output_tps for m in model])
            lines.append(line)
            ax.plot(
                *line,
                color=GREY,
                ls="--",
                lw=1.4,
                marker="o" if marks else "",
                ms=4,
                markevery=marks or None,
                label=overlays.model_label,
                zorder=2,
            )
            if marks:
                notes.append("model markers: the concurrencies of the run")
        verticals = drawn_marks.verticals(published, overlays.marks)
        xs = [d.x for pts in data for d in pts] + [m.tps_user for m in model or ()]
        ys = [d.y for pts in data for d in pts] + [m.output_tps for m in model or ()]
        ys += drawn_marks.throughputs(overlays.marks)  # the axes hold every mark
        his = [d.ci[1] for pts in data for d in pts if d.ci is not None]
        xmax = max([*xs, *his, *(v.tps_user for v in verticals)]) * 1.08
        ax.set_xlim(0, xmax)
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
        log_y = use_log(ys) and min(ys) > 0
        if log_y:
            ax.set_yscale("log")
            ax.set_ylim(min(ys) / 1.6, max(ys) * 1.6)
        else:
            ax.set_ylim(0, max(ys) * 1.15)
        tokens_axis(ax.yaxis, log_y)
        if slo := series[0].run.slo.get("tps_user", {}):
            # The x axis is the median, so a p50 floor is the one to shade; else the strictest floor.
            stat, thr = ("p50", slo["p50"]) if "p50" in slo else max(slo.items(), key=lambda kv: kv[1])
            # The side that misses is shaded: it is the narrow one on a chart worth publishing.
            label = f"misses the SLO: TPS/user {stat} < {thr:g}"
            ax.axvspan(0, thr, color=VERMILLION, alpha=0.07, lw=0, zorder=0, label=label)
            ax.axvline(thr, color=VERMILLION, lw=1, alpha=0.6, zorder=1)
        drawn_marks.draw_top_axis(ax, xmax, verticals)
        drawn_marks.draw_throughput_marks(ax, overlays.marks)
        if overlays.regime is not None and data[0]:
            _regime(ax, data[0], *overlays.regime)
        repeats = max(s.run.repeat_count for s in series)
        bars = (
            f"bars: 95% CI of the mean over {repeats} repeats · small marks: each repeat"
            if repeats > 1
            else "bars: 95% CI of the median (bootstrap over requests)"
        )
        ax.set_xlabel("TPS/user: median output speed per request (tokens/s)")
        notes.insert(0, bars)
        ax.set_ylabel("output TPS per server (tokens/s)")
        gpus = {s.run.gpus for s in series}
        if len(gpus) == 1 and (g := gpus.pop()) is not None:
            _per_gpu_axis(ax, g, log_y)
        run0 = series[0].run
        title = title or words.title(run0, "Throughput vs interactivity")
        if len(title) > 90:  # many or long run labels: the legend names them anyway
            title = f"Throughput vs interactivity: {len(series)} runs"
        figure_title(fig, title)
        if len(series) == 1:
            head = words.headline(run0, overlays.marks)
            subtitle(ax, f"{head}\n{words.identity(run0)}" if head else words.identity(run0))
        else:
            first = " (first run)" if any(s.flag for s in series) else ""
            names = ", ".join(s.run.name for s in series)
            subtitle(ax, f"{len(series)} runs: {names} · {run_line(run0)}{first}")
        ax.legend(loc="best")
        if any(lab.text.endswith(WARN) for lab in labels):
            notes.append(
                f"{WARN} client-bound, failed requests or short answers at this level (see the report)"
            )
        notes += [f"{WARN} {s.label}: {s.flag}" for s in series if s.flag]
        if notes:  # a figure-level x label, so the constrained layout makes room for it
            fig.supxlabel("\n".join(notes), x=0.01, ha="left", fontsize=8, color=GREY)
        place_labels(fig, ax, labels, lines)
    return fig


def _regime(ax: Axes, pts: Sequence[_XY], last: int, text: str) -> None:
    """Mark where the curve changes regime: between the point at concurrency ``last`` and the next one."""
    by_c = sorted((d for d in pts if d.point.concurrency is not None), key=lambda d: d.point.concurrency or 0)
    before = [d for d in by_c if (d.point.concurrency or 0) <= last]
    after = [d for d in by_c if (d.point.concurrency or 0) > last]
    if not before or not after:
        return
    a, b = before[-1], after[0]
    mid = ((a.x + b.x) / 2, (a.y + b.y) / 2)
    ax.annotate(
        text, xy=mid, xytext=(0.70, 0.88), textcoords="axes fraction", fontsize=8.5, color=INK, ha="center",
        arrowprops={"arrowstyle": "->", "color": GREY, "lw": 1},
        bbox={"boxstyle": "round,pad=0.3", "fc": "white", "ec": GREY, "lw": 0.6},
        zorder=6,
    )  # fmt: skip
