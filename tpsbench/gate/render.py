"""The gate's renderers, pure (strings and a rich Table; writing files is the caller's): Markdown for a PR
comment, JUnit XML for CI test reports, a rich table for the terminal."""

from __future__ import annotations

from xml.etree import ElementTree as ET

from rich.markup import escape
from rich.table import Table

from tpsbench.gate import text
from tpsbench.gate.result import EXIT_NOT_COMPARABLE, EXIT_REGRESSION, GateResult, Row, Verdict

__all__ = ["rich_table", "to_junit", "to_markdown", "verdict_lines"]

_BADGE = {
    Verdict.REGRESSED: "❌ regressed",
    Verdict.IMPROVED: "🟢 improved",
    Verdict.UNCHANGED: "unchanged",
    Verdict.LARGE_NOT_SIGNIFICANT: "⚠️ large, not significant",
    Verdict.NOT_COMPARABLE: "➖ not comparable",
}
_HEADER = ("load", "metric", "n (base/cand)", "baseline", "candidate", "change", "threshold", "p", "verdict")


def _cells(row: Row) -> tuple[str, ...]:
    arrow = "↑" if row.spec.better == "higher" else "↓"
    return (
        row.point, f"{row.spec.title} {arrow}", text.counts(row), text.value(row.spec, row.baseline),
        text.value(row.spec, row.candidate), text.change(row), text.threshold(row), text.p_value(row),
    )  # fmt: skip


def _headline(result: GateResult) -> str:
    if result.exit_code == EXIT_NOT_COMPARABLE:
        return "⚠️ not comparable"
    if result.exit_code == EXIT_REGRESSION:
        n = len(result.regressions)
        return f"❌ {n} regression{'s' if n != 1 else ''}"
    return "✅ pass"


def to_markdown(result: GateResult) -> str:
    """A Markdown report for a PR comment: headline, reasons, the table, warnings, a legend."""

    def esc(s: str) -> str:
        return s.replace("|", "\\|")

    tested = sum(1 for r in result.all_rows if r.p_value is not None)
    out = [
        f"### tpsbench gate: {_headline(result)} (exit {result.exit_code})",
        "",
        f"baseline `{result.baseline}` · candidate `{result.candidate}` · α = {result.alpha:g}, "
        f"Holm-adjusted over {tested} tested rows",
        "",
    ]
    if result.reasons:
        out += [*(f"- {esc(r)}" for r in result.reasons), ""]
    if result.all_rows:
        out += ["| " + " | ".join(_HEADER) + " |", "|" + "---|" * len(_HEADER)]
        for row in result.all_rows:
            verdict = _BADGE[row.verdict] + (f" ({row.note})" if row.note else "")
            out.append("| " + " | ".join(esc(c) for c in (*_cells(row), verdict)) + " |")
        out.append("")
    if result.warnings:
        out += ["**Warnings**", "", *(f"- {esc(w)}" for w in result.warnings), ""]
    out += [
        "<details><summary>How to read this</summary>",
        "",
        "↑ higher is better, ↓ lower is better. *regressed*: worse by more than the threshold (noise floor) "
        "and significant at α after Holm adjustment. *large, not significant*: beyond the threshold but "
        "not significant (more requests per load point would tell). p: Mann-Whitney U for p50, seeded "
        "bootstrap of the percentile difference for tails, Fisher exact for the error rate, a z test on "
        "sum(tokens)/sum(latency) for output TPS (one value per run). Exit codes: 0 pass, 1 regression, "
        "2 not comparable or bad input.",
        "",
        "</details>",
        "",
    ]
    return "\n".join(out)


def to_junit(result: GateResult) -> str:
    """JUnit XML: one testcase per row; regressed rows fail, not comparable rows are skipped. When the
    runs could not be compared at all (exit 2), one ``comparability`` testcase carries an error."""
    failures = sum(1 for r in result.all_rows if r.verdict is Verdict.REGRESSED)
    skipped = sum(1 for r in result.all_rows if r.verdict is Verdict.NOT_COMPARABLE)
    errors = 1 if result.exit_code == EXIT_NOT_COMPARABLE else 0
    tests = len(result.all_rows) + errors
    counts = {"tests": str(tests), "failures": str(failures), "errors": str(errors), "skipped": str(skipped)}
    root = ET.Element("testsuites", {"name": "tpsbench gate", **counts})
    suite = ET.SubElement(root, "testsuite", {"name": "tpsbench gate", **counts})
    props = ET.SubElement(suite, "properties")
    for name, value in (
        ("baseline", result.baseline),
        ("candidate", result.candidate),
        ("alpha", f"{result.alpha:g}"),
    ):
        ET.SubElement(props, "property", {"name": name, "value": value})
    if errors:
        case = ET.SubElement(suite, "testcase", {"classname": "tpsbench.gate", "name": "comparability"})
        ET.SubElement(case, "error", {"message": "; ".join(result.reasons), "type": "not_comparable"})
    for row in result.all_rows:
        case = ET.SubElement(
            suite, "testcase", {"classname": f"tpsbench.gate.{row.point}", "name": row.metric}
        )
        detail = " | ".join(f"{h}: {c}" for h, c in zip(_HEADER, _cells(row), strict=False))
        if row.verdict is Verdict.REGRESSED:
            ET.SubElement(case, "failure", {"message": text.reason(row), "type": "regressed"}).text = detail
        elif row.verdict is Verdict.NOT_COMPARABLE:
            ET.SubElement(case, "skipped", {"message": f"not comparable: {row.note}"})
        ET.SubElement(case, "system-out").text = f"{detail} | verdict: {row.verdict}" + (
            f" ({row.note})" if row.note else ""
        )
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


_STYLE = {
    Verdict.REGRESSED: "bold red",
    Verdict.IMPROVED: "green",
    Verdict.UNCHANGED: "",
    Verdict.LARGE_NOT_SIGNIFICANT: "yellow",
    Verdict.NOT_COMPARABLE: "dim",
}


def rich_table(result: GateResult) -> Table:
    """The rows as a rich Table for the terminal (the caller prints reasons and warnings)."""
    table = Table(title=f"tpsbench gate: {result.status} (exit {result.exit_code})", title_justify="left")
    for h in _HEADER:
        table.add_column(h, justify="right" if h in {"baseline", "candidate", "change", "p"} else "left")
    for row in result.all_rows:
        style = _STYLE[row.verdict]
        verdict = f"[{style}]{row.verdict}[/]" if style else str(row.verdict)
        note = f" [dim]{escape(row.note)}[/]" if row.note else ""
        table.add_row(*(escape(c) for c in _cells(row)), verdict + note)
    return table


_ORDER = {
    Verdict.REGRESSED: 0,
    Verdict.LARGE_NOT_SIGNIFICANT: 1,
    Verdict.NOT_COMPARABLE: 2,
    Verdict.IMPROVED: 3,
    Verdict.UNCHANGED: 4,
}
_MARK = {
    Verdict.REGRESSED: "FAIL",
    Verdict.LARGE_NOT_SIGNIFICANT: "warn",
    Verdict.NOT_COMPARABLE: "n/a",
    Verdict.IMPROVED: "good",
    Verdict.UNCHANGED: "ok",
}


def _fit(line: str, width: int) -> str:
    return line if len(line) <= width else line[: width - 1] + "…"


def verdict_lines(result: GateResult, width: int = 80) -> list[str]:
    """The verdict as the terminal shows it: a status line, then one line per row, regressions first
    (then large-not-significant, not comparable, improved, unchanged), each at most ``width`` columns;
    the full table is for :func:`to_markdown` / :func:`to_junit`.

    A line reads ``FAIL c=8 TPS/user p50 ↑  412 -> 371 tok/s  -10.0% worse  p=0.001``."""
    n_reg = len(result.regressions)
    head = f"tpsbench gate: {result.status} (exit {result.exit_code})"
    if result.all_rows:
        head += f", {len(result.all_rows)} rows, {n_reg} regressed, α={result.alpha:g} ({result.mode})"
    lines = [_fit(head, width)]
    rows = sorted(result.all_rows, key=lambda r: (_ORDER[r.verdict], -(r.worse or 0.0)))
    for row in rows:
        arrow = "↑" if row.spec.better == "higher" else "↓"
        b, c = text.value(row.spec, row.baseline), text.value(row.spec, row.candidate)
        unit = f" {row.spec.unit}"
        if b.endswith(unit) and c.endswith(unit) and row.spec.unit != "%":
            b = b.removesuffix(unit)  # the unit once: "1036.5 -> 990.7 tok/s"
        values = f"{b} -> {c}"
        p = text.p_value(row)
        p = "" if p == "—" else (f"p{p}" if p.startswith("<") else f"p={p}" if p[0].isdigit() else p)
        change = text.change(row).replace(" worse", "").replace(" better", "")
        metric = f"{row.spec.title} {arrow}"
        line = f"{_MARK[row.verdict]:<4} {row.point:<8} {metric:<21} {values:>24} {change:>8}  {p}"
        lines.append(_fit(line.rstrip(), width))
    return lines
