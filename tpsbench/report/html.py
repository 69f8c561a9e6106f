"""HTML serializers: one self-contained page (images inline as base64 PNG, no external resources) per
report or comparison. Pure functions; every string from the run is escaped, metadata is redacted.

    >>> page = to_html({"schema": 1, "run": {"name": "demo"}, "points": []}, [])
    >>> page.startswith("<!doctype html>")
    True
"""

from __future__ import annotations

import base64
import html
import json
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tpsbench.config.report import Mark
from tpsbench.core import fmt
from tpsbench.core.redact import redact
from tpsbench.report.headline import MARK_HEADERS, bests, marks_by_run, marks_table
from tpsbench.report.tables import (
    DEFINITION_HEADERS,
    DETAILED,
    LEGEND,
    REPEAT_HEADERS,
    SERVER_HEADERS,
    TURN_HEADERS,
    definitions_table,
    level_table,
    repeats_table,
    run_line,
    run_warnings,
    server_notes,
    server_table,
    slo_text,
    turn_table,
)
from tpsbench.results.views import Run

if TYPE_CHECKING:
    from tpsbench.report.compare import CompareResult


@dataclass(frozen=True, slots=True)
class Image:
    """A rendered chart for the page: its title, a caption saying how to read it, and PNG bytes."""

    title: str
    png: bytes
    caption: str = ""


_CSS = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1d1d1d;
       margin: 0; background: #fff; }
main { max-width: 1280px; margin: 0 auto; padding: 24px 16px 48px; box-sizing: border-box; }
h1 { font-size: 1.6em; margin: 0 0 4px; }
h2 { font-size: 1.2em; margin: 32px 0 8px; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
.sub { color: #555; margin: 0 0 16px; }
.headline { font-size: 1.25em; margin: 12px 0; }
.warnings { background: #fff6db; border-left: 4px solid #E69F00; padding: 8px 14px; margin: 16px 0; }
.warnings ul { margin: 4px 0; padding-left: 20px; }
.flag { background: #fde9e0; border-left: 4px solid #D55E00; padding: 8px 14px; margin: 16px 0; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; font-size: 11.5px; font-variant-numeric: tabular-nums; }
th, td { padding: 4px 5px; border-bottom: 1px solid #e6e6e6; text-align: right; white-space: nowrap; }
td small { color: #666; font-size: 11px; }
th { background: #f4f4f4; vertical-align: bottom; white-space: normal; }
td:first-child, th:first-child { text-align: left; }
tr:nth-child(even) td { background: #fafafa; }
table.meta td { text-align: left; white-space: normal; word-break: break-all; }
figure { margin: 20px 0; }
figure img { width: 100%; max-width: 900px; height: auto; border: 1px solid #eee; }
figcaption, .note { color: #555; font-size: 13px; }
footer { margin-top: 40px; color: #888; font-size: 12px; }
"""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _cell(text: str) -> str:
    """A table cell, its interval (``[lo–hi]``) or aside (``(..)``) on a second line, so the per-level
    table of 18 columns fits 1,280 px."""
    out = _e(text)
    if not text.startswith(("[", "(")):
        out = out.replace(" [", "<br><small>[", 1).replace(" (", "<br><small>(", 1)
        out += "</small>" if "<small>" in out else ""
    return out


def _table(
    headers: Sequence[str], rows: Sequence[Sequence[str]], cls: str = "", *, wrap: bool = False
) -> str:
    """A table; ``wrap``: intervals and asides on a second line (:func:`_cell`, the wide level table)."""
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    cell = _cell if wrap else _e
    body = "".join("<tr>" + "".join(f"<td>{cell(c)}</td>" for c in row) + "</tr>" for row in rows)
    attr = f' class="{cls}"' if cls else ""
    return (
        f'<div class="scroll"><table{attr}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'
    )


def _figures(images: Sequence[Image]) -> str:
    out = []
    for img in images:
        data = base64.b64encode(img.png).decode("ascii")
        caption = f"<figcaption>{_e(img.caption)}</figcaption>" if img.caption else ""
        out.append(
            f'<figure><img src="data:image/png;base64,{data}" alt="{_e(img.title)}">{caption}</figure>'
        )
    return "\n".join(out)


def _flatten(obj: Any, prefix: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(obj, Mapping):
        for k, v in obj.items():
            yield from _flatten(v, f"{prefix}.{k}" if prefix else str(k))
    elif isinstance(obj, list):
        yield prefix, json.dumps(obj)
    elif prefix.endswith("_wall") and isinstance(obj, int | float) and not isinstance(obj, bool):
        yield prefix, time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(obj))  # a wall-clock time, read
    elif prefix.endswith("_s") and isinstance(obj, float):
        yield prefix, fmt.seconds(obj)
    else:
        yield prefix, "" if obj is None else str(obj)


def _page(title: str, body: Sequence[str], version: str | None) -> str:
    made_by = f"tpsbench {version}" if version else "tpsbench"
    return "\n".join(
        [
            "<!doctype html>",
            '<html lang="en"><head><meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{_e(title)}</title><style>{_CSS}</style></head>",
            "<body><main>",
            *body,
            f"<footer>Made by {_e(made_by)}.</footer>",
            "</main></body></html>",
            "",
        ]
    )


def headline(run: Run) -> str:
    """The result first: the best per-user speed (TPS/user p50) and the peak output TPS of the run, each
    with its load level, per GPU when the GPU count is known.

    >>> pts = [{"concurrency": 1, "tps_user": {"p50": 1041.2}, "output_tps": 1023.0},
    ...        {"concurrency": 64, "tps_user": {"p50": 180.0}, "output_tps": 10967.0,
    ...         "output_tps_per_gpu": 1371}]
    >>> run = Run.from_summary({"schema": 1, "run": {"gpus": 8}, "points": pts})
    >>> print(headline(run))  # doctest: +NORMALIZE_WHITESPACE
    <p class="headline"><b>Best TPS/user</b> 1,041 (p50, c=1) · <b>Peak output TPS</b> 10,967 (c=64; 1,371 per
    GPU, 8 GPUs)</p>
    """
    speed, peak = bests(run)
    if speed is None and peak is None:
        return '<p class="headline"><b>No successful request</b>: nothing to rank (see the warnings)</p>'
    parts = []
    if speed is not None:
        v, p = speed
        parts.append(f"<b>Best TPS/user</b> {v:,.0f} (p50, {_e(p.label)})")
    if peak is not None:
        v, p = peak
        per_gpu = p.output_tps_per_gpu
        gpus = f"; {per_gpu:,.0f} per GPU, {run.gpus} GPUs" if per_gpu is not None and run.gpus else ""
        parts.append(f"<b>Peak output TPS</b> {v:,.0f} ({_e(p.label)}{gpus})")
    return f'<p class="headline">{" · ".join(parts)}</p>'


def _against(rows: Sequence[Sequence[str]], notes: Sequence[str]) -> str:
    """The marks the run is read against, as a small table under the headline, with their notes."""
    if not rows:
        return ""
    lines = "".join(f'<p class="note">{_e(n)}</p>' for n in notes)
    return f"<h2>Against the marks</h2>{_table(MARK_HEADERS, rows)}{lines}"


def _warnings_box(items: Sequence[tuple[str, str]]) -> str:
    if not items:
        return ""
    lis = "".join(f"<li><b>{_e(where)}</b>: {_e(msg)}</li>" for where, msg in items)
    n = len(items)
    return f'<div class="warnings"><b>⚠ {n} warning{"s" if n > 1 else ""}</b><ul>{lis}</ul></div>'


def to_html(
    summary: Mapping[str, Any],
    images: Sequence[Image],
    *,
    metadata: Mapping[str, Any] | None = None,
    notes: Sequence[str] = (),
    marks: Sequence[Mark] = (),
) -> str:
    """The report page: the headline (:func:`headline`) and the run against its marks under it (the
    headline's reading, :func:`tpsbench.report.headline.marks_table`: the published record for a run of
    the reference endpoint, then ``marks``), the first chart (the Pareto chart), then warnings, the
    per-level table (medians with CIs, tails, N), the charts, the SLO and the run's metadata with
    anything secret-looking redacted. ``notes`` are shown under the charts (e.g. a chart that could not
    be drawn and why)."""
    run = Run.from_summary(summary)
    endpoint = run.info.get("endpoint")
    body = [
        f"<h1>tpsbench report: {_e(run.name)}</h1>",
        f'<p class="sub">{_e(run_line(run, endpoint=redact(endpoint) if endpoint else None))}</p>',
        headline(run),
        _against(*marks_table(run, marks)),
        _figures(images[:1]),  # the Pareto chart (render.build_charts puts it first), under the headline
        _warnings_box(run_warnings(run)),
    ]
    if slo := slo_text(run):
        body.append(f"<p><b>SLO</b>: {_e(slo)}</p>")
    body.append("<h2>Results by load level</h2>")
    if run.points:
        body += [_table(*level_table(run, DETAILED), wrap=True), f'<p class="note">{_e(LEGEND)}</p>']
    else:
        body.append("<p>No load points in this summary.</p>")
    if repeats := repeats_table(run):
        body += [f"<h2>Run to run ({run.repeat_count} repeats)</h2>", _table(REPEAT_HEADERS, repeats)]
        body += [f'<p class="note">{_e(d)}</p>' for d in run.repeat_differences]
    if server := server_table(run):
        body += ["<h2>What the server reported (Prometheus)</h2>", _table(SERVER_HEADERS, server)]
        body += [f'<p class="note">{_e(label)}: {_e(note)}</p>' for label, note in server_notes(run)]
    defs = [(p.label, rows) for p in run.points if (rows := definitions_table(p))]
    if defs:
        body.append("<h2>TPS/user as each harness defines it</h2>")
        for label, rows in defs:
            body += [f"<h3>{_e(label)}</h3>", _table(DEFINITION_HEADERS, rows)]
    turns = [(p.label, rows) for p in run.points if (rows := turn_table(p))]
    if turns:
        body.append("<h2>Multi-turn sessions: by turn</h2>")
        for label, rows in turns:
            body += [f"<h3>{_e(label)}</h3>", _table(TURN_HEADERS, rows)]
    if images[1:] or notes:
        body += ["<h2>Charts</h2>", _figures(images[1:])]
        body += [f'<p class="note">{_e(n)}</p>' for n in notes]
    # metadata.json when the run has one (it is the fuller record), else what the summary says of the run.
    meta_rows = list(_flatten(redact(dict(metadata) if metadata else {"run": dict(run.info)})))
    if meta_rows:
        body += ["<h2>Run metadata</h2>", _table(["field", "value"], meta_rows, "meta")]
    return _page(f"tpsbench report: {run.name}", body, run.tool_version)


def compare_to_html(result: CompareResult, images: Sequence[Image], marks: Sequence[Mark] = ()) -> str:
    """The comparison page: which runs, any non-comparability, the shared Pareto chart, the runs against
    the ``marks`` (:func:`tpsbench.report.headline.marks_by_run`), the table."""
    body = [f"<h1>tpsbench compare: {_e(' vs '.join(result.labels))}</h1>"]
    items = "".join(
        f"<li><b>{_e(label)}</b>: {_e(run_line(run))}</li>"
        for label, run in zip(result.labels, result.runs, strict=True)
    )
    body.append(f"<ul>{items}</ul>")
    for label, reason in result.flags.items():
        body.append(
            f'<div class="flag">⚠ <b>{_e(label)}</b> is not comparable with {_e(result.labels[0])}: '
            f"{_e(reason)}. It is drawn dashed and its differences below are not like for like.</div>"
        )
    body.append(_figures(images))
    headers, against = marks_by_run(result.runs, result.labels, marks)
    if against:
        body += ["<h2>Against the marks</h2>", _table(headers, against)]
        body.append('<p class="note">Each run\'s number and its share of the mark.</p>')
    rows = [[row.load, row.metric, *(c.display for c in row.cells)] for row in result.rows]
    body += [
        "<h2>Side by side</h2>",
        _table(["load", "metric", *result.labels], rows),
        f'<p class="note">Changes are relative to {_e(result.labels[0])}. ≈: the confidence intervals of '
        "the medians overlap, so the difference may be noise. For TTFT lower is better; for TPS higher "
        "is better.</p>",
    ]
    version = result.runs[0].tool_version if result.runs else None
    return _page(f"tpsbench compare: {' vs '.join(result.labels)}", body, version)
