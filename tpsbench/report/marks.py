"""What a Pareto chart is read against besides the runs: the published Maverick per-user speeds
(:mod:`tpsbench.reference.published`, for a run of the reference endpoint) and the user's own marks
(:class:`tpsbench.config.report.Mark`: the scenario's ``report.marks`` and ``--mark``). A per-user speed
is a vertical line named on a top axis, so its label never covers data; a server throughput is a
horizontal line named at the right edge. Published marks are grey and dotted, the user's purple and
dash-dotted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from matplotlib.axes import Axes

from tpsbench.config.report import Mark
from tpsbench.reference.published import PUBLISHED, PUBLISHED_SOURCE
from tpsbench.report.chartkit import GREY, PURPLE

__all__ = [
    "USER_LEGEND",
    "VerticalMark",
    "draw_throughput_marks",
    "draw_top_axis",
    "legend_entry",
    "throughputs",
    "verticals",
]

USER_LEGEND = "marks given for this report\n(report.marks, --mark)"
_DOTTED, _DASH_DOT = (0, (1, 2)), (0, (5, 2, 1, 2))
# A top-axis label's width per character, as a share of the axes (8.5-pt text on the 8-inch figure's
# ~5-inch axes): labels whose text would touch are merged into one tick.
_CHAR_SHARE = 0.0135


@dataclass(frozen=True, slots=True)
class VerticalMark:
    """A per-user speed to draw: its name and value, and whether the user gave it (else published)."""

    who: str
    tps_user: float
    user: bool

    @property
    def text(self) -> str:
        return f"{self.who} {self.tps_user:,.0f}"


def verticals(published: bool, marks: Sequence[Mark]) -> list[VerticalMark]:
    """The per-user speeds a chart draws, lowest first: the published ones when asked, then the user's."""
    out = [VerticalMark(p.who, p.tps_user, False) for p in PUBLISHED if published]
    out += [VerticalMark(m.name, m.tps_user, True) for m in marks if m.tps_user is not None]
    return sorted(out, key=lambda v: v.tps_user)


def _clusters(shown: Sequence[VerticalMark], xmax: float) -> list[list[VerticalMark]]:
    """Neighbouring marks whose labels would touch (from their length), merged, left to right."""
    clusters: list[list[VerticalMark]] = []
    for v in shown:
        last = clusters[-1] if clusters else None
        if last:
            centre = sum(u.tps_user for u in last) / len(last)
            width = (len(" | ".join(u.text for u in last)) + len(v.text)) / 2 * _CHAR_SHARE
            if (v.tps_user - centre) / xmax < width + 0.01:
                last.append(v)  # one tick, left to right: the order of the lines under it
                continue
        clusters.append([v])
    return clusters


def draw_top_axis(ax: Axes, xmax: float, shown: Sequence[VerticalMark]) -> None:
    """Each speed up to ``xmax`` as a vertical line, named on a top axis: the user's marks in purple
    next to the frame, the published ones in grey above them under their source. In each row, labels
    that would touch are merged into one tick, written left to right in the order of their lines
    (``Groq 276 | Amazon 291``)."""
    shown = [v for v in shown if v.tps_user <= xmax]
    rows = [[v for v in shown if v.user], [v for v in shown if not v.user]]
    for v in shown:
        colour, ls = (PURPLE, _DASH_DOT) if v.user else (GREY, _DOTTED)
        ax.axvline(v.tps_user, color=colour, ls=ls, lw=1.1, zorder=1)
    for k, row in enumerate(rows):
        if not row:
            continue
        clusters = _clusters(row, xmax)
        top = ax.secondary_xaxis("top")
        top.set_xticks(
            [sum(v.tps_user for v in c) / len(c) for c in clusters],
            [" | ".join(v.text for v in c) for c in clusters],
        )
        pad = 15.0 if k == 1 and rows[0] else 3.5  # the published row goes above the user's
        top.tick_params(axis="x", labelsize=8.5, colors=PURPLE if k == 0 else GREY, length=3, pad=pad)
        if k == 1:
            top.set_xlabel(PUBLISHED_SOURCE, fontsize=8.5, color=GREY)


def legend_entry(ax: Axes, marks: Sequence[Mark]) -> None:
    """One legend line for the user's marks, when there are any."""
    if marks:
        ax.plot([], [], color=PURPLE, ls=_DASH_DOT, lw=1.1, label=USER_LEGEND)


def draw_throughput_marks(ax: Axes, marks: Sequence[Mark]) -> None:
    """Each ``output_tps`` mark as a horizontal dash-dot line, named above it at the left edge (on a
    Pareto chart the low-TPS/user end of a throughput line is the dominated corner: no data there)."""
    for m in marks:
        if m.output_tps is None:
            continue
        ax.axhline(m.output_tps, color=PURPLE, ls=_DASH_DOT, lw=1.1, zorder=1)
        ax.annotate(
            f"{m.name} {m.output_tps:,.0f}",
            (0.0, m.output_tps),
            xycoords=("axes fraction", "data"),
            xytext=(4, 2),
            textcoords="offset points",
            ha="left",
            va="bottom",
            fontsize=8.5,
            color=PURPLE,
        )


def throughputs(marks: Sequence[Mark]) -> list[float]:
    """The server throughputs of ``marks`` (what the y axis must hold)."""
    return [m.output_tps for m in marks if m.output_tps is not None]
