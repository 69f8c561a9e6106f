"""The load timeline with the server's own series under it: what the client offered and received, second by
second, above what the endpoint's Prometheus metrics said (generated tokens/s, requests running and
waiting, KV-cache use). Both are on the run's one monotonic clock, so a TTFT rise can be read against the
queue that caused it.

    >>> fig = timeline_figure(records, samples)    # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib import rc_context
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from tpsbench.core.record import NS_PER_S, RequestRecord
from tpsbench.report.chartkit import (
    BLUE,
    GREEN,
    GREY,
    ORANGE,
    STYLE,
    VERMILLION,
    WIDTH_IN,
    figure_title,
    subtitle,
    tokens_axis,
)
from tpsbench.results.telemetry import GENERATED, KV_CACHE, RUNNING, WAITING, Sample, series

BIN_S = 1.0  # client tokens/s are counted in bins of this width (the scrape interval's default)


def _in_flight(records: Sequence[RequestRecord], t0: int) -> tuple[list[float], list[int]]:
    """Requests in flight as a step function: (times s, counts) from every send and end."""
    events = sorted([(r.send_ns, 1) for r in records] + [(r.end_ns, -1) for r in records])
    xs, ys, n = [0.0], [0], 0
    for t, d in events:
        n += d
        xs.append((t - t0) / NS_PER_S)
        ys.append(n)
    return xs, ys


def _joined(records: Sequence[RequestRecord], name: str, dtype: type[np.generic]) -> np.ndarray:
    """One chunk field of every record, end to end (records in order)."""
    parts = [np.asarray(getattr(r, name), dtype=dtype) for r in records]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=dtype)


def _client_tps(records: Sequence[RequestRecord], t0: int, t_end: float) -> tuple[np.ndarray, np.ndarray]:
    """Tokens received per second, in BIN_S bins by chunk arrival (bin centres, rates)."""
    edges = np.arange(0.0, t_end + BIN_S, BIN_S)
    # numpy arrays, not lists: a throughput run streams 15 million chunks (0.5 GB as Python floats); the
    # int64 difference is exact and its division by NS_PER_S rounds as Python's int / int does
    ns = _joined(records, "chunk_ns", np.int64)
    ns -= t0
    times = ns / NS_PER_S
    del ns
    counts, _ = np.histogram(times, bins=edges, weights=_joined(records, "chunk_tokens", np.float64))
    return (edges[:-1] + edges[1:]) / 2, counts / BIN_S


def _kv_panel(ax: Axes, name: str, xs: Sequence[float], used: Sequence[float]) -> None:
    """KV-cache use on its own panel: it follows the running requests closely (each running request holds
    its cache), so on a shared panel one line hid the other. Ticks stop at 100%."""
    percent = [100 * v for v in used]
    ax.plot(xs, percent, color=GREY, lw=1.3, label=name)
    ax.set_ylabel("KV cache used\n(server) [%]")
    top = max(percent, default=0.0)
    ax.set_ylim(0, (top or 1.0) * 1.3)  # headroom for the legend, as on the other panels
    if top * 1.3 > 100:
        ax.set_yticks([0, 25, 50, 75, 100])


def timeline_figure(
    records: Sequence[RequestRecord],
    samples: Sequence[Sample],
    *,
    source: str | None = None,
    title: str | None = None,
    identity: str | None = None,
) -> Figure | None:
    """Panels on one time axis (seconds from the first request): requests in flight; client tokens/s with
    the server's generated tokens/s; the server's running and waiting requests; its KV-cache use (own
    panel, when reported). Level boundaries are dotted, the start of each repeat of the plan solid and
    named. ``title`` (what was measured) and ``identity`` (which run) head the figure. None without
    records or without any known server series."""
    if not records:
        return None
    t0 = min(r.send_ns for r in records)
    gen = series(samples, GENERATED, rate=True)
    queue = [s for s in (series(samples, RUNNING, rate=False), series(samples, WAITING, rate=False)) if s]
    kv = series(samples, KV_CACHE, rate=False)
    if gen is None and not queue and kv is None:
        return None

    def secs(pts: Sequence[tuple[int, float]]) -> list[float]:
        return [(t - t0) / NS_PER_S for t, _ in pts]

    with rc_context(STYLE):
        ratios = [1.0, 1.0, 1.0] + ([0.6] if kv is not None else [])
        fig = Figure(figsize=(WIDTH_IN, 7.0 + (1.6 if kv is not None else 0)), layout="constrained")
        FigureCanvasAgg(fig)
        panels = list(fig.subplots(len(ratios), 1, sharex=True, height_ratios=ratios))
        ax_load, ax_tps, ax_q = panels[:3]
        xs, ys = _in_flight(records, t0)
        t_end = max(xs)
        ax_load.step(xs, ys, where="post", color=BLUE, lw=1.2)  # no legend: the repeats are named there
        ax_load.set_ylabel("requests in flight\n(client)")
        what = "Load timeline and what the server reported" + (f" ({source})" if source else "")
        figure_title(fig, title or what)
        if identity:
            subtitle(ax_load, identity)
        bins, client = _client_tps(records, t0, t_end)
        ax_tps.plot(bins, client, color=BLUE, lw=1.2, drawstyle="steps-mid", label="tokens received (client)")
        if gen is not None:
            name, pts = gen
            ax_tps.plot(
                secs(pts),
                [v for _, v in pts],
                color=VERMILLION,
                lw=1.4,
                drawstyle="steps-pre",  # each rate covers the interval up to its scrape
                label=f"tokens generated (server, {name})",
            )
        ax_tps.set_ylabel("tokens/s")
        tokens_axis(ax_tps.yaxis, log=False)
        for (name, pts), colour in zip(queue, (GREEN, ORANGE), strict=False):
            ax_q.plot(secs(pts), [v for _, v in pts], color=colour, lw=1.3, label=name)
        ax_q.set_ylabel("requests (server)")
        panels[-1].set_xlabel("time since the first request [s]")
        firsts: dict[tuple[int, int], int] = {}
        for r in records:  # the first send of each level of each repeat
            key = (r.repeat, r.level)
            firsts[key] = min(firsts.get(key, r.send_ns), r.send_ns)
        repeats = {rep: min(t for (k, _), t in firsts.items() if k == rep) for rep, _ in firsts}
        for ax in (ax_load, ax_tps, ax_q):
            ax.set_ylim(0, ax.get_ylim()[1] * 1.3)  # headroom: the legends sit over empty space
        if kv is not None:
            name, pts = kv
            _kv_panel(panels[3], name, secs(pts), [v for _, v in pts])
        for ax in panels:
            for t in sorted(firsts.values())[1:]:
                solid = t in repeats.values()
                ax.axvline(
                    (t - t0) / NS_PER_S, color=GREY, ls="-" if solid else ":", lw=1.2 if solid else 0.9
                )
            if ax.get_legend_handles_labels()[0]:
                ax.legend(loc="upper left")
        fig.align_ylabels(panels)  # one column of labels, whatever the tick widths
        if len(repeats) > 1:  # named over the top panel, so a repeat's levels can be told from the next's
            for rep, t in sorted(repeats.items()):
                ax_load.annotate(
                    f"repeat {rep + 1}",
                    ((t - t0) / NS_PER_S, 1.0),
                    xycoords=("data", "axes fraction"),
                    xytext=(3, -3),
                    textcoords="offset points",
                    ha="left",
                    va="top",
                    fontsize=8.5,
                    color=GREY,
                )
    return fig
