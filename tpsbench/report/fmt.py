"""Number formatting shared by the Markdown and HTML serializers.

Every figure a reader sees carries its unit, and a median carries its confidence interval, so no bare number
leaves the report (pyperf's rule).

    >>> seconds(0.2134)
    '213 ms'
    >>> with_ci(812.4, (798.0, 826.9), tps)
    '812 [798–827]'
    >>> seconds_with_ci(0.2134, (0.205, 0.22))
    '213 ms [205–220]'
"""

from __future__ import annotations

from collections.abc import Callable

DASH = "—"  # shown where a value is undefined (e.g. every request failed)


def _sig(v: float, digits: int = 3) -> str:
    """``v`` to ``digits`` significant digits, without exponent notation below a million."""
    if v == 0:
        return "0"
    if abs(v) >= 10 ** (digits - 1):
        return f"{v:,.0f}"
    return f"{v:.{digits}g}"


def _second_scale(v: float) -> tuple[float, str]:
    return (1000.0, "ms") if abs(v) < 1 else (1.0, "s")


def seconds(v: float | None) -> str:
    """A duration in ms below one second, else in s: ``213 ms``, ``1.23 s``."""
    if v is None:
        return DASH
    scale, unit = _second_scale(v)
    return f"{_sig(v * scale)} {unit}"


def seconds_with_ci(v: float | None, ci: tuple[float, float] | None) -> str:
    """A duration and its interval in the duration's unit: ``213 ms [205–220]``."""
    if v is None:
        return DASH
    if ci is None:
        return seconds(v)
    scale, unit = _second_scale(v)
    return f"{_sig(v * scale)} {unit} [{_sig(ci[0] * scale)}–{_sig(ci[1] * scale)}]"


def tps(v: float | None) -> str:
    """Tokens per second: ``11,234``, ``812``, ``48.3``, ``2.71``."""
    return DASH if v is None else _sig(v)


def with_ci(v: float | None, ci: tuple[float, float] | None, fmt: Callable[[float | None], str]) -> str:
    """``value [lo–hi]``; just the value when the summary has no interval."""
    if v is None:
        return DASH
    return fmt(v) if ci is None else f"{fmt(v)} [{fmt(ci[0])}–{fmt(ci[1])}]"


def percent(v: float | None, *, signed: bool = False) -> str:
    """A fraction as a percentage: ``1.1%``; ``+12.3%`` when signed."""
    if v is None:
        return DASH
    return f"{v * 100:+.1f}%" if signed else f"{v * 100:.1f}%"


def count(v: float | None) -> str:
    return DASH if v is None else f"{round(v):,}"


def tokens_short(v: float) -> str:
    """Axis ticks: ``500``, ``2k``, ``12k``, ``1.5k``, ``1M``."""
    if v >= 1e6:
        return f"{v / 1e6:g}M"
    if v >= 1000:
        return f"{v / 1000:g}k"
    return f"{v:g}"
