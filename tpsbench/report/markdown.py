"""Markdown serializers: a run summary and a comparison, sized for a pull-request comment. Pure functions
of their input; writing files is the caller's business.

    >>> print(to_markdown({"schema": 1, "run": {"name": "demo"}, "points": []}).splitlines()[0])
    ### tpsbench · demo
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from tpsbench.config.report import Mark
from tpsbench.core import fmt
from tpsbench.core.redact import redact
from tpsbench.report.headline import MARK_HEADERS, marks_by_run, marks_table
from tpsbench.report.tables import (
    COMPACT,
    DEFINITION_HEADERS,
    LEGEND,
    REPEAT_HEADERS,
    TURN_HEADERS,
    definitions_table,
    level_table,
    repeats_table,
    run_line,
    run_warnings,
    slo_text,
    turn_table,
)
from tpsbench.results.views import Run

if TYPE_CHECKING:
    from tpsbench.report.compare import CompareResult


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], *, right_from: int = 1) -> str:
    """A GitHub-flavoured Markdown table; columns from ``right_from`` on are right-aligned (numbers)."""
    align = ["---" if i < right_from else "--:" for i in range(len(headers))]
    lines = ["| " + " | ".join(_cell(h) for h in headers) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _warnings(items: Sequence[tuple[str, str]]) -> list[str]:
    """A short list as is; a long one folded (GitHub renders <details>), so a PR comment stays short."""
    if not items:
        return []
    title = f"⚠ {len(items)} warning{'s' if len(items) > 1 else ''}"
    bullets = [f"- {_cell(where)}: {_cell(msg)}" for where, msg in items]
    if len(items) <= 3:
        return ["", f"**{title}**", "", *bullets]
    return ["", f"<details><summary><b>{title}</b></summary>", "", *bullets, "", "</details>"]


def to_markdown(summary: Mapping[str, Any], marks: Sequence[Mark] = ()) -> str:
    """The run's results by load level (TTFT p50/p99, TPS/user p50/p10, output TPS, errors), its SLO,
    the run against its marks (the headline's reading: the published record for a run of the reference
    endpoint, then ``marks``, the scenario's ``report.marks`` and ``--mark``) and its warnings."""
    run = Run.from_summary(summary)
    endpoint = run.info.get("endpoint")
    lines = [f"### tpsbench · {run.name}", "", run_line(run, endpoint=redact(endpoint) if endpoint else None)]
    if slo := slo_text(run):
        lines += ["", f"SLO: {slo}"]
    if run.capacity is not None:
        lines += ["", _capacity(run.capacity)]
    lines += _against(*marks_table(run, marks))
    lines.append("")
    if run.points:
        lines.append(table(*level_table(run, COMPACT)))
        lines += ["", f"<sub>{LEGEND}</sub>"]
    else:
        lines.append("_No load points in this summary._")
    lines += _warnings(run_warnings(run))
    lines += _repeats(run)
    lines += _definitions(run)
    lines += _turns(run)
    return "\n".join(lines) + "\n"


def _against(rows: Sequence[Sequence[str]], notes: Sequence[str]) -> list[str]:
    """The marks the run is read against, with their notes (a claim's source, an SLA's terms)."""
    if not rows:
        return []
    out = ["", "**Against the marks**", "", table(MARK_HEADERS, rows, right_from=2)]
    return out + ([""] + [f"- {_cell(n)}" for n in notes] if notes else [])


def _repeats(run: Run) -> list[str]:
    """A run of several repeats: the per-request and run-level estimates side by side, and what differed."""
    rows = repeats_table(run)
    if not rows:
        return []
    out = ["", f"**Run to run ({run.repeat_count} repeats)**", "", table(REPEAT_HEADERS, rows, right_from=2)]
    return out + [""] + [f"- {_cell(d)}" for d in run.repeat_differences]


def _turns(run: Run) -> list[str]:
    """Multi-turn levels by turn: TTFT and TPS/user as the conversation grows."""
    out = []
    for p in run.points:
        if rows := turn_table(p):
            out += ["", f"**{_cell(p.label)} by turn**", "", table(TURN_HEADERS, rows)]
    return out


def _definitions(run: Run) -> list[str]:
    """Each level's TPS/user under every published definition, folded so a PR comment stays short."""
    defs = [(p.label, rows) for p in run.points if (rows := definitions_table(p))]
    if not defs:
        return []
    out = ["", "<details><summary><b>TPS/user as each harness defines it</b></summary>"]
    for label, rows in defs:
        out += ["", f"**{_cell(label)}**", "", table(DEFINITION_HEADERS, rows, right_from=3)]
    return [*out, "", "</details>"]


def _capacity(capacity: Mapping[str, Any]) -> str:
    """A sweep's knee: the lowest load within ``min_gain`` of the best throughput meeting the SLO."""
    why = _cell(str(capacity.get("reason_stopped") or "running"))
    if capacity.get("reason_detail"):
        why += f": {_cell(str(capacity['reason_detail']))}"
    c, r = capacity.get("concurrency"), capacity.get("rate")
    if c is None and r is None:
        return f"**Capacity**: no level qualified (sweep stopped: {why})"
    load = f"c={c}" if c is not None else f"rate={r}/s"
    tps = capacity.get("output_tps")
    shown = f"{tps:,.0f} output tok/s" if isinstance(tps, int | float) else "output TPS unknown"
    return f"**Capacity**: {load}, {shown} (sweep stopped: {why})"


def compare_to_markdown(result: CompareResult, marks: Sequence[Mark] = ()) -> str:
    """Runs side by side: each metric at each shared load, with its change relative to the first run;
    then each run against the ``marks`` (and the published record, for runs of the reference endpoint)."""
    lines = [f"### tpsbench compare · {' vs '.join(result.labels)}", ""]
    for label, run in zip(result.labels, result.runs, strict=True):
        lines.append(f"- **{_cell(label)}**: {run_line(run)}")
    for label, reason in result.flags.items():
        lines.append(f"- ⚠ **{_cell(label)} is not comparable** with {_cell(result.labels[0])}: {reason}")
    lines.append("")
    headers = ["load", "metric", *result.labels]
    rows = []
    previous = None
    for row in result.rows:
        load = row.load if row.load != previous else ""
        previous = row.load
        rows.append([load, row.metric, *(cell.display for cell in row.cells)])
    lines.append(table(headers, rows, right_from=2))
    lines += [
        "",
        f"<sub>Changes are relative to {_cell(result.labels[0])}. "
        "≈: the confidence intervals of the medians overlap, so the difference may be noise. "
        f"For TTFT lower is better; for TPS higher is better. {fmt.DASH}: not measured at this load.</sub>",
    ]
    headers, rows = marks_by_run(result.runs, result.labels, marks)
    if rows:
        lines += ["", "**Against the marks** (each run's number and its share of the mark)", ""]
        lines.append(table(headers, rows, right_from=2))
    return "\n".join(lines) + "\n"
