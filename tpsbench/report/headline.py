"""What a published chart says about its run, in words: the title (what was measured), the identity line
(which run) and the headline (the result against the published marks and the user's). :func:`readings` is
the one reading of a run against its marks: the headline, the Markdown and the HTML tables
(:func:`marks_table`, :func:`marks_by_run`) all state it. Every chart of
:mod:`tpsbench.report.charts` is titled and identified by these, so a chart cut out of the report still
says what it shows.

    >>> from tpsbench.results.views import Point, Run
    >>> run = Run.from_summary({"schema": 1, "run": {"name": "r1", "scenario_name": "maverick-b200",
    ...     "reference_endpoint": True, "gpus": 8, "workload": {"input_tokens": 1000, "output_tokens": 1000}},
    ...     "points": [{"concurrency": 1, "tps_user": {"p50": 1042.0}, "output_tps": 1000.0},
    ...                {"concurrency": 64, "tps_user": {"p50": 300.0}, "output_tps": 70000.0}]})
    >>> title(run, "Throughput vs interactivity")
    'Throughput vs interactivity · maverick-b200 (reference endpoint, ISL/OSL 1k/1k)'
    >>> headline(run)
    'best TPS/user 1,042 (c=1) = 100.4% of the 1,038 record · peak output TPS 70,000 (c=64) = 97.2% of 72,000'
    >>> from tpsbench.config.report import Mark
    >>> headline(run, [Mark(name="vendor X", tps_user=800)]).split(" · ")[0]
    'best TPS/user 1,042 (c=1) = 100.4% of the 1,038 record, 130.2% of vendor X (800)'
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from tpsbench.config.report import Mark
from tpsbench.core.fmt import DASH, tokens_short
from tpsbench.reference.published import (
    PUBLISHED,
    PUBLISHED_SOURCE,
    RECORD_SERVER_TPS,
    RECORD_TPS_USER,
)
from tpsbench.report.tables import run_line
from tpsbench.results.views import Point, Run

__all__ = [
    "MARK_HEADERS",
    "Reading",
    "bests",
    "compare_title",
    "headline",
    "identity",
    "marks_by_run",
    "marks_table",
    "readings",
    "title",
]


def title(run: Run, what: str) -> str:
    """``<what> · <scenario or model> (<endpoint kind>, ISL/OSL i/o)``."""
    name = run.scenario_name or run.model or run.name
    kind = "reference endpoint" if run.reference_endpoint else f"{run.api or 'HTTP'} endpoint"
    if source := run.info.get("source_tool"):
        kind = f"measured by {source}"
    isl, osl = run.isl_osl
    shape = (
        f", ISL/OSL {tokens_short(isl)}/{tokens_short(osl)}" if isl is not None and osl is not None else ""
    )
    return f"{what} · {name} ({kind}{shape})"


def compare_title(runs: Sequence[Run], labels: Sequence[str], what: str) -> str:
    """A comparison's title: ``<what> · A vs B (<endpoint kind of the first>, ISL/OSL i/o)``; ``N runs``
    instead of the labels when they would not fit (the legend names them)."""
    first = title(runs[0], what)
    shape = first[first.rindex("(") :] if first.endswith(")") else ""
    text = f"{what} · {' vs '.join(labels)} {shape}".rstrip()
    return text if len(text) <= 90 else f"{what} · {len(labels)} runs {shape}".rstrip()


def identity(run: Run) -> str:
    """Which run a chart shows: its directory name, then :func:`tpsbench.report.tables.run_line`, and the
    repeats when there were several."""
    repeats = f" · {run.repeat_count} repeats" if run.repeat_count > 1 else ""
    return f"run {run.name} · {run_line(run)}{repeats}"


def bests(run: Run) -> tuple[tuple[float, Point] | None, tuple[float, Point] | None]:
    """The two numbers a headline states, each with its level: the best TPS/user (p50) and the peak
    output TPS; None for one no point has."""
    speeds = [(v, p) for p in run.points if (v := p.stat("tps_user", "p50")) is not None]
    peaks = [(v, p) for p in run.points if (v := p.output_tps) is not None]
    return _top(speeds), _top(peaks)


def _top(found: Sequence[tuple[float, Point]]) -> tuple[float, Point] | None:
    return max(found, key=lambda vp: vp[0]) if found else None


@dataclass(frozen=True, slots=True)
class Reading:
    """One of the headline's numbers read against one mark: the run's ``value`` (at ``point``) as a
    share of the mark's ``target``. ``said`` is how the headline names the mark."""

    metric: str  # "tps_user" or "output_tps": the Mark field it is read against
    value: float
    point: Point
    mark: str
    target: float
    note: str
    said: str

    @property
    def share(self) -> float:
        return self.value / self.target


_WHAT = {"tps_user": "best TPS/user", "output_tps": "peak output TPS"}  # in the order of bests()
# The published figures a run of the reference endpoint is read against first (reference/published.py).
_RECORDS = {
    "tps_user": (
        "NVIDIA record",
        RECORD_TPS_USER,
        f"{PUBLISHED_SOURCE}; {PUBLISHED[0].note}",
        f"the {RECORD_TPS_USER:,.0f} record",
    ),
    "output_tps": (
        "NVIDIA per server",
        RECORD_SERVER_TPS,
        f"claimed by the vendor: up to {RECORD_SERVER_TPS:,.0f} TPS per server (batch, ISL/OSL unpublished)",
        f"{RECORD_SERVER_TPS:,.0f}",
    ),
}


def readings(run: Run, marks: Sequence[Mark] = ()) -> list[Reading]:
    """The one reading of a run against its marks, in the headline's order: the best TPS/user (p50) then
    the peak output TPS (:func:`bests`), each against the published record for a run of the reference
    endpoint, then against the user's ``marks`` that give that number, in their order."""
    out = []
    for key, found in zip(_WHAT, bests(run), strict=True):
        if found is None:
            continue
        v, p = found
        targets = [(m.name, t, m.note, f"{m.name} ({t:,.0f})") for m in marks if (t := getattr(m, key))]
        if run.reference_endpoint:
            targets.insert(0, _RECORDS[key])
        out += [Reading(key, v, p, name, t, note, said) for name, t, note, said in targets]
    return out


def headline(run: Run, marks: Sequence[Mark] = ()) -> str | None:
    """The run's result in one line: the best TPS/user (p50) and the peak output TPS with their loads,
    each read against the marks for that number (:func:`readings`: the published record, 1,038 TPS/user
    and NVIDIA's 72,000 TPS per server, for a run of the reference endpoint, then the user's ``marks``,
    the scenario's ``report.marks`` and ``--mark``) as ``130.3% of vendor X (800)``. None when no point
    has either number."""
    found = dict(zip(_WHAT, bests(run), strict=True))
    if not any(found.values()):
        return None
    read = readings(run, marks)
    parts = []
    for key, best in found.items():
        if best is None:
            continue
        v, p = best
        shares = ", ".join(f"{r.share:.1%} of {r.said}" for r in read if r.metric == key)
        parts.append(f"{_WHAT[key]} {v:,.0f} ({p.label})" + (f" = {shares}" if shares else ""))
    return " · ".join(parts)


# Short cells under a "best" column, so a row with a 28-character mark name still reads at 80 columns.
_IN_TABLE = {"tps_user": "TPS/user p50", "output_tps": "output TPS"}
MARK_HEADERS = ["mark", "best", "mark value", "run", "at", "run/mark"]


def marks_table(run: Run, marks: Sequence[Mark] = ()) -> tuple[list[list[str]], list[str]]:
    """The headline's :func:`readings` as table rows under :data:`MARK_HEADERS` (the mark, which of the
    run's best numbers, the mark's value, the run's, its level, the share), and one line per mark with a note.
    No rows when there is nothing to read against."""
    read = readings(run, marks)
    rows = [
        [r.mark, _IN_TABLE[r.metric], f"{r.target:,.0f}", f"{r.value:,.0f}", r.point.label, f"{r.share:.1%}"]
        for r in read
    ]
    notes = list(dict.fromkeys(f"{r.mark}: {r.note}" for r in read if r.note))
    return rows, notes


def marks_by_run(
    runs: Sequence[Run], labels: Sequence[str], marks: Sequence[Mark] = ()
) -> tuple[list[str], list[list[str]]]:
    """Runs side by side against the marks (headers, rows): a row per mark and number, as
    :func:`readings` has them, a column per run with its number and its share of the mark (a dash where
    the run has no such reading, e.g. the record for a run of another endpoint)."""
    per_run = [{(r.mark, r.metric, r.target): r for r in readings(run, marks)} for run in runs]
    keys = list(dict.fromkeys(k for found in per_run for k in found))
    rows = []
    for key in keys:
        mark, metric, target = key
        cells = [f"{r.value:,.0f} ({r.share:.1%})" if (r := found.get(key)) else DASH for found in per_run]
        rows.append([mark, _IN_TABLE[metric], f"{target:,.0f}", *cells])
    return ["mark", "best", "mark value", *labels], rows
