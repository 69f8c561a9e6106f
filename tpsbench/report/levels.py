"""The per-level charts of a run, each a function of a :class:`~tpsbench.results.views.Run` returning a
matplotlib Figure (drawn with :mod:`tpsbench.report.chartkit`): time to first token and per-user speed
against load, the inter-chunk latency distribution and the tokens per streamed chunk. The Pareto chart is
in :mod:`tpsbench.report.charts`. A run of several repeats draws the run-to-run spread of every per-level
value (each repeat's value and the t interval of their mean) next to the per-request distribution.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib import colormaps, rc_context
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, FuncFormatter, LogLocator, NullLocator

from tpsbench.core import fmt
from tpsbench.report import headline as words
from tpsbench.report.chartkit import (
    BLACK,
    BLUE,
    GREEN,
    GREY,
    ORANGE,
    PURPLE,
    SKY,
    STYLE,
    VERMILLION,
    empty_figure,
    figure_title,
    new_figure,
    subtitle,
    use_log,
    wrapped,
)
from tpsbench.results import metrics
from tpsbench.results.views import QUANTILES, Distribution, Point, Run

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


def _value(p: Point, block: str, stat: str) -> float | None:
    """A level's value as the charts draw it: the mean over repeats of each repeat's ``stat`` when the
    run has repeats (the run-level estimate, as the gate and the Pareto chart use), else the stat of the
    level's requests."""
    est = p.repeat_estimate(f"{block}_{stat}")
    return est.mean if est is not None else p.stat(block, stat)


def _spread(
    ax: Axes, xs: Sequence[float], pts: Sequence[Point], name: str, colour: str, scale: float = 1.0
) -> float | None:
    """The run-to-run spread of metric ``name`` (``ttft_s_p50``, ...) at each level: every repeat's
    value as a small dot and the t interval of their mean as a bar, at ``xs``. Returns the interval's
    level, or None when no level has repeats."""
    level = None
    bars = []
    for x, p in zip(xs, pts, strict=True):
        est = p.repeat_estimate(name)
        if est is None or len(est.values) < 2:
            continue
        level = est.ci_level
        ax.plot([x] * len(est.values), [v * scale for v in est.values], ls="none", marker="o", ms=3.5,
                mfc=colour, mec="white", mew=0.5, alpha=0.9, zorder=5)  # fmt: skip
        if est.ci is not None:
            lo, hi = est.ci
            bars.append((x, est.mean * scale, (est.mean - lo) * scale, (hi - est.mean) * scale))
    if bars:
        bx, by, below, above = (list(v) for v in zip(*bars, strict=True))
        ax.errorbar(bx, by, yerr=[below, above], fmt="none", ecolor=colour, elinewidth=1.3, capsize=4,
                    alpha=0.8, zorder=4)  # fmt: skip
    return level


def _nudge(ax: Axes, xs: Sequence[float], k: float) -> list[float]:
    """``xs`` moved by ``k`` of a small step (a ratio on a log axis), so two bars at one level stand
    side by side."""
    if ax.get_xscale() == "log":
        return [x * 1.07**k for x in xs]
    step = min((b - a for a, b in itertools.pairwise(xs) if b > a), default=1.0)
    return [x + 0.06 * k * step for x in xs]


def _repeats_note(run: Run, level: float | None, dots: str) -> str:
    """What the spread marks are, with the interval's level; empty without repeats."""
    n = run.repeat_count
    if level is None:
        return ""
    return f"{dots} · bars: {level:.0%} CI of their mean over {n} repeats (Student t)"


def _pooled(run: Run, what: str) -> str:
    """Said on a chart of a distribution: with repeats it pools every repeat's ``what``."""
    return f" · {what} of all {run.repeat_count} repeats pooled" if run.repeat_count > 1 else ""


def ttft_figure(run: Run) -> Figure:
    """Time to first token against load: median (with CI) and p99, p90 faint between, SLO lines. With
    repeats each line is the mean over repeats (each repeat's quantile), with every repeat's p50 and p99
    and the t interval of their mean; without, the median's bootstrap CI over requests."""
    with rc_context(STYLE):
        fig, ax = new_figure(4.6)
        pts = [p for p in run.points if p.stat("ttft_s", "p50") is not None]
        if not pts:
            why = "no successful request recorded a first token"
            return empty_figure(fig, ax, "Time to first token", why)
        xs = _load_axis(ax, pts)
        repeats = run.repeat_count > 1
        seconds = [v for p in pts for s in ("p50", "p99") if (v := _value(p, "ttft_s", s)) is not None]
        seconds += [v for p in pts for s in ("p50", "p99") if (e := p.repeat_estimate(f"ttft_s_{s}"))
                    for v in e.values]  # fmt: skip
        log = use_log(seconds, 20.0)
        # Milliseconds unless every value is a second or more: a log axis then reads 10, 100, 1,000 ms.
        scale, unit = (1.0, "s") if min(seconds) >= 1.0 or (not log and max(seconds) >= 1.0) else (1e3, "ms")
        for stat, colour, marker, ls, alpha in (
            ("p99", VERMILLION, "s", "-", 1.0),
            ("p90", ORANGE, "", ":", 0.8),
            ("p50", BLUE, "o", "-", 1.0),
        ):
            vals = [_value(p, "ttft_s", stat) for p in pts]
            keep = [(x, v * scale) for x, v in zip(xs, vals, strict=True) if v is not None]
            if keep:
                ax.plot(*zip(*keep, strict=True), color=colour, marker=marker, ls=ls, alpha=alpha, label=stat)
        level = None
        if repeats:
            level = _spread(ax, _nudge(ax, xs, 1), pts, "ttft_s_p99", VERMILLION, scale)
            level = _spread(ax, _nudge(ax, xs, -1), pts, "ttft_s_p50", BLUE, scale) or level
        bars = []
        for x, p in zip(xs, pts, strict=True):
            d = p.dist("ttft_s")
            med = p.stat("ttft_s", "p50")
            if level is None and d is not None and d.p50_ci is not None and med is not None:
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
        figure_title(fig, words.title(run, "Time to first token against load"))
        far_note = "".join(f" · {t}, above the chart" for t in far)
        lows = [e.ci[0] * scale for p in pts for st in ("p50", "p99")
                if (e := p.repeat_estimate(f"ttft_s_{st}")) is not None and e.ci is not None]  # fmt: skip
        if level is not None and lows and min(lows) < ax.get_ylim()[0]:
            far_note += " · a bar cut by the bottom edge: its interval reaches below the axis"
        how = (
            f"lines: mean over {run.repeat_count} repeats of each repeat's quantile · "
            + _repeats_note(run, level, "small dots by p50 and p99: each repeat's value")
            if level is not None
            else "bars: 95% CI of the median (bootstrap over requests)"
        )
        subtitle(ax, f"{words.identity(run)} · {how}{far_note}")
        ax.legend(loc="upper left", ncols=4)
    return fig


def _first(d: Distribution, *stats: str) -> float:
    """The first of ``stats`` the block has; its median otherwise (a box then collapses, not fails)."""
    return next((v for s in stats if (v := d.get(s)) is not None), d.stats.get("p50", 0.0))


def tps_user_figure(run: Run) -> Figure:
    """Per-user speed at each level: box p10-p90, whiskers p1-p99, median and mean from the summary, and one
    dot per request from requests.jsonl when present, since the slowest users are the ones who complain.
    With repeats, each repeat's median and the t interval of their mean stand right of the box. The axis
    holds the whiskers (log when they span 20x or more); requests beyond it are counted in the subtitle."""
    with rc_context(STYLE):
        fig, ax = new_figure(4.6)
        pts = [p for p in run.points if p.stat("tps_user", "p50") is not None]
        if not pts:
            return empty_figure(fig, ax, "TPS/user by load level", "no request streamed more than one chunk")
        stats, whiskers = [], []
        for p in pts:
            d = p.dist("tps_user")
            assert d is not None
            box = {"med": _first(d, "p50"), "q1": _first(d, "p10"), "q3": _first(d, "p90")}
            ends = {"whislo": _first(d, "p1", "min"), "whishi": _first(d, "p99", "max")}
            whiskers.append(ends)
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
        level = _spread(ax, [i + 0.4 for i in range(len(pts))], pts, "tps_user_p50", VERMILLION)
        slo = sorted(run.slo.get("tps_user", {}).items())
        shown = [v for e in whiskers for v in e.values()] + [v for _, v in slo]
        shown += [
            v for p in pts if (e := p.repeat_estimate("tps_user_p50")) for v in (*e.values, *(e.ci or ()))
        ]
        lo, hi = min(v for v in shown if v > 0), max(shown)
        log = hi / lo >= 20.0
        top = hi * (1.6 if log else 1.12)
        rng = np.random.default_rng(0)  # fixed jitter: reruns give the same picture
        dots, above = False, list[float]()
        for i, p in enumerate(pts):
            vals = [v for r in run.measured(p.level) if (v := metrics.tps_user(r)) is not None]
            if vals:
                dots = True
                above += [v for v in vals if v > top]
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
        ax.set_xlim(-0.6, len(pts) - 0.4 + (0.25 if level is not None else 0))
        ax.set_xlabel("load level")
        ax.set_ylabel("TPS/user (tokens/s)")
        if log:
            ax.set_yscale("log")
            ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
            ax.yaxis.set_minor_locator(NullLocator())
            ax.set_ylim(lo / 1.6, top)
        else:
            ax.set_ylim(0, top)
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,g}"))
        for stat, limit in slo:
            ax.axhline(limit, color=GREEN, ls="--", lw=1.2, label=f"SLO: TPS/user {stat} ≥ {limit:g}")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="upper right")
        figure_title(fig, words.title(run, "Per-user speed by load level"))
        how = "box p10–p90 · whiskers p1–p99 · line: median · ◇ mean"
        how = f"{how} · dots: one per request" if dots else how
        if above:
            how += f" · {len(above)} requests above the chart (up to {max(above):,.0f})"
        if level is not None:
            how += " · " + _repeats_note(run, level, "orange, right of each box: each repeat's median")
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
            gaps = metrics.pooled(run.measured(p.level), "itl_s")
            if gaps:
                q = np.linspace(0.0, 1.0, 401)  # 401 quantiles draw the same curve as 100k gaps, smaller SVG
                curves.append((p, np.quantile(np.asarray(gaps, dtype=float), q), q))
            elif (d := p.dist("itl_s")) is not None:
                knots = [(d.get(s), q) for s, q in QUANTILES if d.get(s) is not None]
                if len(knots) >= 2:
                    values, shares = zip(*knots, strict=True)
                    curves.append((p, np.asarray(values, dtype=float), np.asarray(shares, dtype=float)))
        if not curves:
            return empty_figure(fig, ax, "Inter-chunk latency", "no inter-chunk gaps recorded")
        # Gaps far below the typical one are chunks that arrived together (one network read); on a log axis
        # they would stretch it over decades, so the axis starts at 1/20 of the smallest median and the
        # curves enter from its left edge at the share of gaps below it.
        left = min(float(np.interp(0.5, qs, vals)) for _, vals, qs in curves) / 20
        below = [(p.label, float(np.interp(left, vals, qs))) for p, vals, qs in curves if vals[0] < left]
        below = [(label, share) for label, share in below if share >= 0.005]
        off_scale = (
            f" · left edge {left * 1000:.2g} ms: shorter gaps (chunks read together) start the curves there: "
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
        figure_title(fig, words.title(run, "Inter-chunk latency"))
        how = "cumulative share of gaps, one line per load level · one gap may deliver several tokens"
        how += _pooled(run, "gaps")
        subtitle(ax, f"{words.identity(run)} · {how}{off_scale}")
    return fig


_CHUNK_BINS = ((1, 1, "1"), (2, 2, "2"), (3, 3, "3"), (4, 4, "4"), (5, 8, "5–8"), (9, math.inf, "9+"))
_BIN_COLOURS = (SKY, BLUE, GREEN, ORANGE, VERMILLION, PURPLE)


def tokens_per_chunk_figure(run: Run) -> Figure | None:
    """Share of chunks carrying 1, 2, 3, ... tokens at each level: bursts of several tokens are speculative
    decoding or server-side buffering. Needs requests.jsonl; None without it."""
    rows: list[tuple[Point, list[int], float]] = []
    for p in run.points:
        raw = np.asarray(metrics.pooled(run.measured(p.level), "tokens_per_chunk"), dtype=float)
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
        figure_title(fig, words.title(run, "Tokens per streamed chunk"))
        # the legend sits over the axes, so the run is named under them
        run_id = wrapped(words.identity(run) + _pooled(run, "chunks"), 105)
        fig.supxlabel(run_id, x=0.01, ha="left", fontsize=8, color=GREY)
    return fig
