"""How the gate writes a value, a change, a threshold and a p-value: the one set of formatters its verdict
reasons and its renderers (Markdown, JUnit, terminal) share.

    >>> from tpsbench.core.metricspec import metric_spec
    >>> value(metric_spec("ttft_s_p99"), 0.0123), value(metric_spec("error_rate"), 0.015)
    ('12.3 ms', '1.50%')
"""

from __future__ import annotations

from tpsbench.core.metricspec import MetricSpec
from tpsbench.gate.result import Method, Row


def value(spec: MetricSpec, v: float | None) -> str:
    if v is None:
        return "—"
    if spec.kind == "error_rate":
        return f"{v * 100:.2f}%"
    if spec.unit == "s":
        return f"{v * 1000:.1f} ms" if abs(v) < 1 else f"{v:.3f} s"
    return f"{v:.1f} {spec.unit}"


def delta(spec: MetricSpec, v: float) -> str:
    if spec.unit == "s":
        return f"{v * 1000:+.1f} ms" if abs(v) < 1 else f"{v:+.3f} s"
    return f"{v:+.1f} {spec.unit}"


def change(row: Row) -> str:
    if row.change is None:
        return "—"
    unit = " pp" if row.spec.kind == "error_rate" else "%"
    text = f"{row.change:+.2f}{unit}" if unit == " pp" else f"{row.change:+.1f}{unit}"
    worse = row.worse or 0.0
    return text + (" worse" if worse > 0 else " better" if worse < 0 else "")


def threshold(row: Row) -> str:
    if row.spec.kind == "error_rate":
        return f"{row.threshold:g} pp"
    floor = f" and {value(row.spec, row.abs_floor)}" if row.abs_floor else ""
    return f"{row.threshold:g}%{floor}"


def p_value(row: Row) -> str:
    if row.p_adjusted is None:
        return "CI overlap" if row.test is Method.CI_OVERLAP else "—"
    p = row.p_adjusted
    return "<0.0001" if p < 1e-4 else f"{p:.2g}"


def counts(row: Row) -> str:
    return "/".join("?" if n is None else str(n) for n in (row.n_baseline, row.n_candidate))


def reason(row: Row) -> str:
    p_text = p_value(row)
    p_text = p_text if p_text.startswith("<") else f"={p_text}"
    p = f", p{p_text} ({row.test}, Holm)" if row.p_adjusted is not None else f" ({row.test})"
    return (
        f"{row.point} {row.spec.title}: {value(row.spec, row.baseline)} -> "
        f"{value(row.spec, row.candidate)} ({change(row)}, threshold {threshold(row)}{p})"
    )
