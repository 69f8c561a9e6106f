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


def _client_tps(records: Sequence[RequestRecord], t0: int, t_end: float) -> tuple[np.ndarray, np.ndarray]:
    """Tokens received per second, in BIN_S bins by chunk arrival (bin centres, rates)."""
    edges = np.arange(0.0, t_end + BIN_S, BIN_S)
    times = [(t - t0) / NS_PER_S for r in records for t in r.chunk_ns]
    weights = [k for r in records for k in r.chunk_tokens]
    counts, _ = np.histogram(times, bins=edges, weights=weights)
    return (edges[:-1] + edges[1:]) / 2, counts / BIN_S


def timeline_figure(
    records: Sequence[RequestRecord],
    samples: Sequence[Sample],
    *,
    source: str | None = None,
    title: str | None = None,
    identity: str | None = None,
) -> Figure | None:
    """Three panels on one time axis (seconds from the first request): requests in flight and client
    tokens/s; server generated tokens/s beside the client's; server running/waiting and KV-cache use.
    Level boundaries are dotted, the start of each repeat of the plan solid and named. ``title`` (what
    was measured) and ``identity`` (which run) head the figure. None without records or without any
    known server series."""
    if not records:
        return None
    t0 = min(r.send_ns for r in records)
    gen = series(samples, GENERATED, rate=True)
    queue = [s for s in (series(samples, RUNNING, rate=False), series(samples, WAITING, rate=False)) if s]
    kv = series(samples, KV_CACHE, rate=False)
    if gen is None and not queue and kv is None:
        return None
    with rc_context(STYLE):
        fig = Figure(figsize=(WIDTH_IN, 7.0), layout="constrained")
        FigureCanvasAgg(fig)
        ax_load, ax_tps, ax_q = fig.subplots(3, 1, sharex=True)
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
                [(t - t0) / NS_PER_S for t, _ in pts],
                [v for _, v in pts],
                color=VERMILLION,
                lw=1.4,
                drawstyle="steps-pre",  # each rate covers the interval up to its scrape
                label=f"tokens generated (server, {name})",
            )
        ax_tps.set_ylabel("tokens/s")
        tokens_axis(ax_tps.yaxis, log=False)
        for (name, pts), colour in zip(queue, (GREEN, ORANGE), strict=False):
            ax_q.plot(
                [(t - t0) / NS_PER_S for t, _ in pts], [v for _, v in pts], color=colour, lw=1.3, label=name
            )
        ax_q.set_ylabel("requests (server)")
        ax_q.set_xlabel("time since the first request [s]")
        if kv is not None:
            ax_kv = ax_q.twinx()
            name, pts = kv
            ax_kv.plot(
                [(t - t0) / NS_PER_S for t, _ in pts],
                [100 * v for _, v in pts],
                color=GREY,
                lw=1.0,
                ls="--",
                label=f"{name} (right, %)",
            )
            ax_kv.set_ylabel("KV cache used [%]")
            ax_kv.set_ylim(0, ax_kv.get_ylim()[1] * 1.3)
            ax_kv.grid(False)
            ax_kv.legend(loc="upper right")
        firsts: dict[tuple[int, int], int] = {}
        for r in records:  # the first send of each level of each repeat
            key = (r.repeat, r.level)
            firsts[key] = min(firsts.get(key, r.send_ns), r.send_ns)
        repeats = {rep: min(t for (k, _), t in firsts.items() if k == rep) for rep, _ in firsts}
        for ax in (ax_load, ax_tps, ax_q):
            for t in sorted(firsts.values())[1:]:
                solid = t in repeats.values()
                ax.axvline(
                    (t - t0) / NS_PER_S, color=GREY, ls="-" if solid else ":", lw=1.2 if solid else 0.9
                )
            ax.set_ylim(0, ax.get_ylim()[1] * 1.3)  # headroom: the legends sit over empty space
            if ax.get_legend_handles_labels()[0]:
                ax.legend(loc="upper left")
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
