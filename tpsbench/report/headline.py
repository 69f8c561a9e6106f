"""What a published chart says about its run, in words: the title (what was measured), the identity line
(which run) and the headline (the result against the published marks). Every chart of
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

from tpsbench.config.report import Mark
from tpsbench.core.fmt import tokens_short
from tpsbench.reference.published import RECORD_SERVER_TPS, RECORD_TPS_USER
from tpsbench.report.tables import run_line
from tpsbench.results.views import Point, Run

__all__ = ["bests", "compare_title", "headline", "identity", "title"]


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


def headline(run: Run, marks: Sequence[Mark] = ()) -> str | None:
    """The run's result in one line: the best TPS/user (p50) and the peak output TPS with their loads,
    each read against the marks for that number: the published record (1,038 TPS/user) and NVIDIA's
    72,000 TPS per server for a run of the reference endpoint, then the user's ``marks`` (the scenario's
    ``report.marks``, ``--mark``) in their order, as ``130.3% of vendor X (800)``. None when no point has
    either number."""
    speed, peak = bests(run)
    if speed is None and peak is None:
        return None
    parts = []
    for what, key, found, record in (
        ("best TPS/user", "tps_user", speed, f"the {RECORD_TPS_USER:,.0f} record"),
        ("peak output TPS", "output_tps", peak, f"{RECORD_SERVER_TPS:,.0f}"),
    ):
        if found is None:
            continue
        v, p = found
        against = [(getattr(m, key), f"{m.name} ({getattr(m, key):,.0f})") for m in marks if getattr(m, key)]
        if run.reference_endpoint:
            ref = RECORD_TPS_USER if key == "tps_user" else RECORD_SERVER_TPS
            against.insert(0, (ref, record))
        shares = ", ".join(f"{v / m:.1%} of {name}" for m, name in against)
        parts.append(f"{what} {v:,.0f} ({p.label})" + (f" = {shares}" if shares else ""))
    return " · ".join(parts)
