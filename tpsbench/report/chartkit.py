"""What every report chart is drawn with: the palette (Okabe-Ito, colour-blind safe, with a marker per
series), the rc style, figures on the Agg canvas (no pyplot, so no global state and headless by
construction), PNG/SVG serialization without timestamps, log/linear token axes, subtitles and greedy
point-label placement. The charts themselves are in :mod:`tpsbench.report.charts`.
"""

from __future__ import annotations

import io
import itertools
import math
import textwrap
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from matplotlib import rc_context
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullLocator
from matplotlib.transforms import Bbox
from matplotlib.typing import RcKeyType

from tpsbench.core import fmt

# Okabe & Ito (2008), "Color Universal Design". Yellow is left out of series colours: too pale on white.
BLUE, VERMILLION, GREEN, ORANGE, PURPLE, SKY, BLACK = (
    "#0072B2",
    "#D55E00",
    "#009E73",
    "#E69F00",
    "#CC79A7",
    "#56B4E9",
    "#000000",
)
SERIES_COLOURS = (BLUE, VERMILLION, GREEN, ORANGE, PURPLE, SKY, BLACK)
SERIES_MARKERS = ("o", "s", "D", "^", "v", "P", "X")
GREY = "#6b6b6b"
INK = "#222222"  # point labels of a single run: near-black reads better than the series colour
WARN = "⚠"

STYLE: dict[RcKeyType, Any] = {
    "font.size": 10,
    "axes.titlesize": 12,
    "axes.titleweight": "bold",
    "axes.labelsize": 10,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
    "legend.fontsize": 8.5,
    "legend.framealpha": 0.92,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.color": "#d9d9d9",
    "grid.linewidth": 0.6,
    "axes.axisbelow": True,
    "svg.hashsalt": "tpsbench",  # stable SVG ids: the same run renders the same file
    "svg.fonttype": "none",  # SVG text stays text: editable, searchable, selectable
}
WIDTH_IN = 8.0
PNG_DPI = 150  # 1200 px wide: sharp when a README or the HTML shows it at 800 px


def new_figure(height_in: float) -> tuple[Figure, Axes]:
    fig = Figure(figsize=(WIDTH_IN, height_in), layout="constrained")
    FigureCanvasAgg(fig)  # attaches itself: label placement needs a renderer before saving
    return fig, fig.add_subplot()


def drawn_renderer(fig: Figure) -> Any:
    canvas = fig.canvas
    assert isinstance(canvas, FigureCanvasAgg)
    # matplotlib's stubs leave these two untyped.
    canvas.draw()  # type: ignore[no-untyped-call]  # runs the layout, so display coordinates are final
    return canvas.get_renderer()  # type: ignore[no-untyped-call]


def figure_bytes(fig: Figure, fmt_: Literal["png", "svg"]) -> bytes:
    """Serialize a figure to PNG or SVG, without timestamps so reruns give identical files."""
    buf = io.BytesIO()
    metadata: dict[str, str | None] = {"Date": None} if fmt_ == "svg" else {"Software": "tpsbench"}
    with rc_context(STYLE):
        fig.savefig(buf, format=fmt_, dpi=PNG_DPI, metadata=metadata)
    return buf.getvalue()


def use_log(values: Iterable[float], ratio: float = 10.0) -> bool:
    """Log scale when the positive values span at least ``ratio`` (a sweep's server TPS usually does)."""
    vs = [v for v in values if v > 0]
    return len(vs) >= 2 and max(vs) / min(vs) >= ratio


def tokens_axis(axis: Any, log: bool) -> None:
    """Ticks for token rates: 1k/2k/5k/10k on a log axis, plain 1,000s on a linear one."""
    if log:
        axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        axis.set_minor_locator(NullLocator())
        axis.set_major_formatter(FuncFormatter(lambda v, _: fmt.tokens_short(v)))
    else:
        axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))


def wrapped(text: str, width: int = 100) -> str:
    """``text`` in lines of about ``width`` characters (~100 at 8.5 pt fill the 8-inch figure), broken
    between its `` · `` parts, a part longer than a line at its spaces."""
    if "\n" in text:  # lines the caller broke stay broken
        return "\n".join(wrapped(line, width) for line in text.split("\n"))
    lines = [""]
    for part in text.split(" · "):
        if lines[-1] and len(lines[-1]) + 3 + len(part) > width:
            lines.append("")
        indent = " " * (len(lines[-1]) + 3 if lines[-1] else 0)
        pieces = textwrap.wrap(part, width, initial_indent=indent) or [""]
        lines[-1] = f"{lines[-1]} · {pieces[0].lstrip()}" if lines[-1] else pieces[0]
        lines += pieces[1:]
    return "\n".join(lines)


def subtitle(ax: Axes, text: str, width: int = 100) -> None:
    """A grey line over the axes, :func:`wrapped` to fit the figure. An axes title, not free text:
    matplotlib lifts it above a top axis."""
    ax.set_title(wrapped(text, width), loc="left", fontsize=8.5, color=GREY, fontweight="normal")


# --- label placement -----------------------------------------------------------------------------------

# Offsets in points tried in order: up-right first, which on a Pareto chart is beyond the frontier.
_CANDIDATES = (
    (6, 5, "left", "bottom"),
    (6, -5, "left", "top"),
    (-6, 5, "right", "bottom"),
    (-6, -5, "right", "top"),
    (0, 9, "center", "bottom"),
    (0, -9, "center", "top"),
    (12, 0, "left", "center"),
    (-12, 0, "right", "center"),
)


Line = tuple[list[float], list[float]]  # a polyline's x and y data


@dataclass(frozen=True, slots=True)
class Label:
    x: float
    y: float
    text: str
    colour: str
    optional: bool = False  # dropped rather than printed over another label


def _line_boxes(ax: Axes, xs: Sequence[float], ys: Sequence[float], pad: float = 3.0) -> list[Bbox]:
    """Small boxes every few pixels along a polyline, so labels can avoid crossing drawn lines."""
    if not xs:
        return []
    pts = ax.transData.transform(np.column_stack([xs, ys]))
    boxes = [Bbox.from_extents(x - pad, y - pad, x + pad, y + pad) for x, y in pts]
    for (x0, y0), (x1, y1) in itertools.pairwise(pts):
        steps = int(math.hypot(x1 - x0, y1 - y0) // (2 * pad))
        for t in np.linspace(0, 1, steps + 2)[1:-1]:
            x, y = x0 + t * (x1 - x0), y0 + t * (y1 - y0)
            boxes.append(Bbox.from_extents(x - pad, y - pad, x + pad, y + pad))
    return boxes


# What a label may cover, cheapest first: a stretch of line, a marker or legend, another label, the frame.
_COST_LINE, _COST_MARKER, _COST_TEXT, _COST_OUTSIDE = 1, 20, 100, 1000


def place_labels(fig: Figure, ax: Axes, labels: Sequence[Label], lines: Sequence[Line] = ()) -> None:
    """Annotate points, greedily: each label takes the candidate offset that covers least (lines, then
    markers and the legend, then labels already placed, then the frame edge; first candidate on ties).
    An ``optional`` label that would cover another label is left out. Good enough for tens of points."""
    renderer = drawn_renderer(fig)
    frame = ax.get_window_extent(renderer)
    obstacles: list[tuple[Bbox, int]] = [
        (b, _COST_MARKER) for b in _line_boxes(ax, [lab.x for lab in labels], [lab.y for lab in labels], 5.0)
    ]
    obstacles += [(b, _COST_LINE) for xs, ys in lines for b in _line_boxes(ax, xs, ys)]
    legend = ax.get_legend()
    if legend is not None:
        obstacles.append((legend.get_window_extent(renderer), _COST_TEXT))
    for lab in labels:
        best = None
        for dx, dy, ha, va in _CANDIDATES:
            ann = ax.annotate(
                lab.text,
                (lab.x, lab.y),
                xytext=(dx, dy),
                textcoords="offset points",
                ha=ha,
                va=va,
                fontsize=8.5,
                color=lab.colour,
                annotation_clip=False,
            )
            ann.set_in_layout(False)
            box = ann.get_window_extent(renderer)
            inside = frame.x0 <= box.x0 and box.x1 <= frame.x1 and frame.y0 <= box.y0 and box.y1 <= frame.y1
            cost = sum(c for b, c in obstacles if box.overlaps(b)) + (0 if inside else _COST_OUTSIDE)
            if best is None or cost < best[0]:
                if best is not None:
                    best[1].remove()
                best = (cost, ann, box)
            else:
                ann.remove()
            if cost == 0:
                break
        assert best is not None
        cost, ann, box = best
        if lab.optional and cost >= _COST_TEXT:
            ann.remove()
            continue
        obstacles.append((box, _COST_TEXT))


TITLE_PT = 11.5
TITLE_CHARS = 68  # bold characters at TITLE_PT that fit the 8-inch figure


def figure_title(fig: Figure, text: str) -> None:
    """The chart's bold title, smaller when it is long (a long scenario name), so it never runs off."""
    size = TITLE_PT if len(text) <= TITLE_CHARS else max(8.0, TITLE_PT * TITLE_CHARS / len(text))
    fig.suptitle(text, fontweight="bold", fontsize=size)


def empty_figure(fig: Figure, ax: Axes, title: str, why: str) -> Figure:
    """A chart with nothing to draw: its title and why, in the middle."""
    ax.set_axis_off()
    ax.text(0.5, 0.5, why, ha="center", va="center", transform=ax.transAxes, color=GREY)
    figure_title(fig, title)
    return fig
