"""Report charts, each a function of a :class:`~tpsbench.results.views.Run` returning a matplotlib Figure
(drawn with :mod:`tpsbench.report.chartkit`: palette, style, serialization, label placement). A new chart
is a function here and a :class:`~tpsbench.report.render.Chart` entry in ``render.build_charts``.

Figures are 8 inches wide with 10-pt text, legible when shown 800 px wide.

    >>> fig = pareto_figure([Series("demo", run)])    # doctest: +SKIP
    >>> png = figure_bytes(fig, "png")                   # doctest: +SKIP
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from matplotlib import colormaps, rc_context
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, FuncFormatter, LogLocator, NullLocator

from tpsbench.config.report import Mark
from tpsbench.core import fmt
from tpsbench.report import headline as words
from tpsbench.report import marks as drawn_marks
from tpsbench.report.chartkit import (
    BLACK,
    BLUE,
    GREEN,
    GREY,
    INK,
    ORANGE,
    PURPLE,
    SERIES_COLOURS,
    SERIES_MARKERS,
    SKY,
    STYLE,
    VERMILLION,
    WARN,
    Label,
    Line,
    new_figure,
    place_labels,
    subtitle,
    tokens_axis,
    use_log,
)
from tpsbench.report.pareto import pareto_frontier
from tpsbench.report.references import ModelPoint
from tpsbench.report.tables import run_line
from tpsbench.results import metrics
from tpsbench.results.views import QUANTILES, Distribution, Point, Run

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
            return _empty(fig, ax, "Throughput vs interactivity", why)
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
        fig.suptitle(title, fontweight="bold", fontsize=11.5)
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


# --- load axis shared by the per-level charts ---------------------------------------------------------------


def _load_axis(ax: Axes, points: Sequence[Point]) -> list[float]:
    """x positions of points by their load: concurrency or rate when all share one kind (log when they span
    8× or more), else evenly spaced levels labelled ``c=..`` / ``rate=..``."""
    if points and all(p.concurrency is not None for p in points):
        xs = [float(p.concurrency or 0) for p in points]
        ax.set_xlabel("concurrency (requests in flight, closed loop)")
        ticks = [f"{int(x)}" for x in xs]
    elif points and all(p.rate is not None for p in points):
        xs = [p.rate or 0.0 for p in points]
        ax.set_xlabel("offered load (requests/s, open loop)")
        ticks = [f"{x:g}" for x in xs]
    else:
        xs = [float(i) for i in range(len(points))]
        ax.set_xlabel("load level")
        ticks = [p.label for p in points]
        ax.set_xlim(-0.5, len(points) - 0.5)
        ax.xaxis.set_major_locator(FixedLocator(xs))
        ax.set_xticklabels(ticks)
        return xs
    if use_log(xs, 8.0):
        ax.set_xscale("log", base=2)
    ax.xaxis.set_major_locator(FixedLocator(xs))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xticklabels(ticks, rotation=45 if len(xs) > 12 else 0)
    return xs


def ttft_figure(run: Run) -> Figure:
    """Time to first token against load: median (with CI) and p99, p90 faint between, SLO lines."""
    with rc_context(STYLE):
        fig, ax = new_figure(4.6)
        pts = [p for p in run.points if p.stat("ttft_s", "p50") is not None]
        if not pts:
            return _empty(fig, ax, "Time to first token", "no successful request recorded a first token")
        xs = _load_axis(ax, pts)
        seconds = [v for p in pts for s in ("p50", "p99") if (v := p.stat("ttft_s", s)) is not None]
        log = use_log(seconds, 20.0)
        # Milliseconds unless every value is a second or more: a log axis then reads 10, 100, 1,000 ms.
        scale, unit = (1.0, "s") if min(seconds) >= 1.0 or (not log and max(seconds) >= 1.0) else (1e3, "ms")
        for stat, colour, marker, ls, alpha in (
            ("p99", VERMILLION, "s", "-", 1.0),
            ("p90", ORANGE, "", ":", 0.8),
            ("p50", BLUE, "o", "-", 1.0),
        ):
            vals = [p.stat("ttft_s", stat) for p in pts]
            keep = [(x, v * scale) for x, v in zip(xs, vals, strict=True) if v is not None]
            if keep:
                ax.plot(*zip(*keep, strict=True), color=colour, marker=marker, ls=ls, alpha=alpha, label=stat)
        bars = []
        for x, p in zip(xs, pts, strict=True):
            d = p.dist("ttft_s")
            med = p.stat("ttft_s", "p50")
            if d is not None and d.p50_ci is not None and med is not None:
                bars.append((x, med * scale, (med - d.p50_ci[0]) * scale, (d.p50_ci[1] - med) * scale))
        if bars:
            bx, by, below, above = (list(v) for v in zip(*bars, strict=True))
            ax.errorbar(bx, by, yerr=[below, above], fmt="none", ecolor=BLUE, capsize=3)
        top = max(seconds)
        far = []  # an SLO far above every level would squash the data to the floor: named, not drawn
        for stat, limit in sorted(run.slo.get("ttft_s", {}).items()):
            text = f"SLO: TTFT {stat} ≤ {fmt.seconds(limit)}"
            if limit > 3 * max(seconds):
                far.append(text)
                continue
            ax.axhline(limit * scale, color=GREEN, ls="--", lw=1.2, label=text)
            top = max(top, limit)
        # Headroom above the highest line and SLO, so the one-row legend sits over empty space.
        if log:
            ax.set_yscale("log")
            ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
            ax.yaxis.set_minor_locator(NullLocator())
            ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,g}"))
            ax.set_ylim(top=top * scale * 2.2)
        else:
            ax.set_ylim(0, top * scale * 1.2)
        ax.set_ylabel(f"time to first token ({unit})")
        fig.suptitle(words.title(run, "Time to first token against load"), fontweight="bold", fontsize=11.5)
        far_note = "".join(f" · {t}, above the chart" for t in far)
        subtitle(ax, f"{words.identity(run)} · bars: 95% CI of the median{far_note}")
        ax.legend(loc="upper left", ncols=4)
    return fig


def _empty(fig: Figure, ax: Axes, title: str, why: str) -> Figure:
    ax.set_axis_off()
    ax.text(0.5, 0.5, why, ha="center", va="center", transform=ax.transAxes, color=GREY)
    fig.suptitle(title, fontweight="bold", fontsize=11.5)
    return fig


def _first(d: Distribution, *stats: str) -> float:
    """The first of ``stats`` the block has; its median otherwise (a box then collapses, not fails)."""
    return next((v for s in stats if (v := d.get(s)) is not None), d.stats.get("p50", 0.0))


def tps_user_figure(run: Run) -> Figure:
    """Per-user speed at each level: box p10-p90, whiskers p1-p99, median and mean from the summary, and one
    dot per request from requests.jsonl when present, since the slowest users are the ones who complain."""
    with rc_context(STYLE):
        fig, ax = new_figure(4.6)
        pts = [p for p in run.points if p.stat("tps_user", "p50") is not None]
        if not pts:
            return _empty(fig, ax, "TPS/user by load level", "no request streamed more than one chunk")
        stats = []
        for p in pts:
            d = p.dist("tps_user")
            assert d is not None
            box = {"med": _first(d, "p50"), "q1": _first(d, "p10"), "q3": _first(d, "p90")}
            ends = {"whislo": _first(d, "p1", "min"), "whishi": _first(d, "p99", "max")}
            stats.append({**box, **ends, "mean": _first(d, "mean"), "fliers": []})
        ax.bxp(
            stats,
            list(range(len(pts))),
            widths=0.55,
            showmeans=True,
            patch_artist=True,
            boxprops={"facecolor": SKY, "alpha": 0.45, "edgecolor": BLUE},
            medianprops={"color": BLACK, "lw": 2},
            meanprops={"marker": "D", "mfc": "white", "mec": BLACK, "ms": 5},
            whiskerprops={"color": BLUE},
            capprops={"color": BLUE},
        )
        rng = np.random.default_rng(0)  # fixed jitter: reruns give the same picture
        dots = False
        for i, p in enumerate(pts):
            vals = [v for r in run.measured(p.level) if (v := metrics.tps_user(r)) is not None]
            if vals:
                dots = True
                ax.scatter(
                    i + rng.uniform(-0.2, 0.2, len(vals)),
                    vals,
                    s=5,
                    color=BLUE,
                    alpha=0.35,
                    lw=0,
                    zorder=3,
                    rasterized=True,
                )
        ax.set_xticks(range(len(pts)), [p.label for p in pts])
        ax.set_xlabel("load level")
        ax.set_ylabel("TPS/user (tokens/s)")
        ax.set_ylim(bottom=0)
        for stat, limit in sorted(run.slo.get("tps_user", {}).items()):
            ax.axhline(limit, color=GREEN, ls="--", lw=1.2, label=f"SLO: TPS/user {stat} ≥ {limit:g}")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="upper right")
        fig.suptitle(words.title(run, "Per-user speed by load level"), fontweight="bold", fontsize=11.5)
        how = "box p10–p90 · whiskers p1–p99 · line: median · ◇ mean"
        how = f"{how} · dots: one per request" if dots else how
        subtitle(ax, f"{words.identity(run)} · {how}")
    return fig


def _level_colours(n: int) -> list[Any]:
    """A sequential colour per level, light load to heavy (viridis: perceptually uniform, readable with
    colour-vision deficiency, more hue steps than cividis so neighbouring levels stay apart)."""
    cmap = colormaps["viridis"]
    return [cmap(0.9 * i / max(1, n - 1)) for i in range(n)]


def itl_figure(run: Run) -> Figure:
    """Cumulative distribution of the gaps between streamed chunks, one line per level. From requests.jsonl
    (every gap) when present, else from the summary's quantiles (p1..p99)."""
    with rc_context(STYLE):
        fig, ax = new_figure(4.6)
        curves: list[tuple[Point, np.ndarray, np.ndarray]] = []
        for p in run.points:
            gaps = [g for r in run.measured(p.level) for g in metrics.itl_s(r) or []]
            if gaps:
                q = np.linspace(0.0, 1.0, 401)  # 401 quantiles draw the same curve as 100k gaps, smaller SVG
                curves.append((p, np.quantile(np.asarray(gaps, dtype=float), q), q))
            elif (d := p.dist("itl_s")) is not None:
                knots = [(d.get(s), q) for s, q in QUANTILES if d.get(s) is not None]
                if len(knots) >= 2:
                    values, shares = zip(*knots, strict=True)
                    curves.append((p, np.asarray(values, dtype=float), np.asarray(shares, dtype=float)))
        if not curves:
            return _empty(fig, ax, "Inter-chunk latency", "no inter-chunk gaps recorded")
        # Gaps far below the typical one are chunks that arrived together (one network read); on a log axis
        # they would stretch it over decades, so the axis starts at 1/20 of the smallest median and the
        # curves enter from its left edge at the share of gaps below it.
        left = min(float(np.interp(0.5, qs, vals)) for _, vals, qs in curves) / 20
        below = [(p.label, float(np.interp(left, vals, qs))) for p, vals, qs in curves if vals[0] < left]
        below = [(label, share) for label, share in below if share >= 0.005]
        off_scale = (
            f" · left edge {left * 1000:.3g} ms: shorter gaps (chunks read together) start the curves there: "
            + ", ".join(f"{label} {share:.0%}" for label, share in below)
            if below
            else ""
        )
        for (p, vals, qs), colour in zip(curves, _level_colours(len(curves)), strict=True):
            ax.plot(np.maximum(vals, left / 10) * 1000, qs * 100, color=colour, lw=1.8, label=p.label)
        if left > 0 and use_log(float(v) for _, vals, _ in curves for v in vals if v >= left):
            ax.set_xscale("log")
            ax.set_xlim(left=left * 1000)
            ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
            ax.xaxis.set_minor_locator(NullLocator())
            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.set_ylim(0, 100)
        ax.set_xlabel("gap between consecutive streamed chunks (ms)")
        ax.set_ylabel("share of gaps ≤ x (%)")
        ax.legend(title="load", loc="lower right", ncols=2 if len(curves) > 8 else 1)
        fig.suptitle(words.title(run, "Inter-chunk latency"), fontweight="bold", fontsize=11.5)
        how = "cumulative share of gaps, one line per load level · one gap may deliver several tokens"
        subtitle(ax, f"{words.identity(run)} · {how}{off_scale}")
    return fig


_CHUNK_BINS = ((1, 1, "1"), (2, 2, "2"), (3, 3, "3"), (4, 4, "4"), (5, 8, "5–8"), (9, math.inf, "9+"))
_BIN_COLOURS = (SKY, BLUE, GREEN, ORANGE, VERMILLION, PURPLE)


def tokens_per_chunk_figure(run: Run) -> Figure | None:
    """Share of chunks carrying 1, 2, 3, ... tokens at each level: bursts of several tokens are speculative
    decoding or server-side buffering. Needs requests.jsonl; None without it."""
    rows: list[tuple[Point, list[int], float]] = []
    for p in run.points:
        raw = np.asarray([s for r in run.measured(p.level) for s in r.chunk_tokens], dtype=float)
        if raw.size:
            # Estimated counts are fractional: a chunk is binned by its rounded count (at least 1).
            sizes = np.maximum(1, np.rint(raw))
            counts = [int(np.count_nonzero((sizes >= lo) & (sizes <= hi))) for lo, hi, _ in _CHUNK_BINS]
            rows.append((p, counts, float(raw.mean())))
    if not rows:
        return None
    used = [i for i in range(len(_CHUNK_BINS)) if any(c[i] for _, c, _ in rows)]
    with rc_context(STYLE):
        fig, ax = new_figure(1.9 + 0.36 * len(rows))
        ys = list(range(len(rows)))
        left = np.zeros(len(rows))
        for i in used:
            share = np.array([100.0 * c[i] / sum(c) for _, c, _ in rows])
            ax.barh(ys, share, left=left, color=_BIN_COLOURS[i], height=0.7, label=_CHUNK_BINS[i][2])
            left += share
        ax.set_yticks(ys, [p.label for p, _, _ in rows])
        ax.invert_yaxis()
        ax.set_xlim(0, 100)
        ax.grid(axis="y", visible=False)
        trans = ax.get_yaxis_transform()
        for y, (_, _, mean) in zip(ys, rows, strict=True):
            ax.text(1.01, y, f"{mean:.2f}", transform=trans, va="center", ha="left", fontsize=8.5)
        ax.text(1.01, -0.75, "mean", transform=trans, va="bottom", ha="left", fontsize=8.5, color=GREY)
        ax.set_xlabel("share of chunks (%)")
        ax.legend(
            title="tokens in one chunk",
            loc="lower center",
            bbox_to_anchor=(0.5, 1.0),
            ncols=len(used),
            frameon=False,
        )
        fig.suptitle(words.title(run, "Tokens per streamed chunk"), fontweight="bold", fontsize=11.5)
        # the legend sits over the axes, so the run is named under them
        fig.supxlabel(words.identity(run), x=0.01, ha="left", fontsize=8, color=GREY)
    return fig
