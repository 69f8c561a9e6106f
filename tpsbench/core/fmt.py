"""The one number formatter: every figure the reports, the compare table and the terminal show.

Every figure a reader sees carries its unit, and a median carries its confidence interval, so no bare number
leaves the report (pyperf's rule); a table whose header states the unit uses :func:`number` and :func:`ms`.

    >>> seconds(0.2134)
    '213 ms'
    >>> with_ci(812.4, (798.0, 826.9))
    '812 [798–827]'
    >>> seconds_with_ci(0.0492, (0.048, 0.0509))
    '49.2 ms [48.0–50.9]'
    >>> number(11234.5, 0), ms(0.2134), ms(None)
    ('11,234', '213.4', '—')
"""

from __future__ import annotations

import math

DASH = "—"  # shown where a value is undefined (e.g. every request failed)


def _decimals(v: float, digits: int = 3) -> int:
    """Decimals that show ``v`` to ``digits`` significant digits (none for large numbers)."""
    if v == 0 or not math.isfinite(v):
        return 0
    return max(0, digits - 1 - math.floor(math.log10(abs(v))))


def _fixed(v: float, decimals: int) -> str:
    return f"{v:,.{decimals}f}"


def _second_scale(v: float) -> tuple[float, str]:
    return (1000.0, "ms") if abs(v) < 1 else (1.0, "s")


def seconds(v: float | None) -> str:
    """A duration in ms below one second, else in s: ``213 ms``, ``1.23 s``."""
    return seconds_with_ci(v, None)


def seconds_with_ci(v: float | None, ci: tuple[float, float] | None) -> str:
    """A duration and its interval in the duration's unit and decimals: ``49.2 ms [48.0–50.9]``."""
    if v is None:
        return DASH
    scale, unit = _second_scale(v)
    d = _decimals(v * scale)
    text = f"{_fixed(v * scale, d)} {unit}"
    return text if ci is None else f"{text} [{_fixed(ci[0] * scale, d)}–{_fixed(ci[1] * scale, d)}]"


def tps(v: float | None) -> str:
    """Tokens per second to three significant digits: ``11,234``, ``812``, ``48.3``, ``2.71``."""
    return with_ci(v, None)


def with_ci(v: float | None, ci: tuple[float, float] | None) -> str:
    """``value [lo–hi]`` with the value's decimals throughout; just the value without an interval."""
    if v is None:
        return DASH
    d = _decimals(v)
    return _fixed(v, d) if ci is None else f"{_fixed(v, d)} [{_fixed(ci[0], d)}–{_fixed(ci[1], d)}]"


def percent(v: float | None, *, signed: bool = False) -> str:
    """A fraction as a percentage: ``1.1%``; ``+12.3%`` when signed."""
    if v is None:
        return DASH
    return f"{v * 100:+.1f}%" if signed else f"{v * 100:.1f}%"


def number(v: float | None, decimals: int = 1) -> str:
    """A plain number with thousands separators and fixed decimals (its unit is in a table header):
    ``number(1038.4, 0)`` is ``1,038``."""
    return DASH if v is None else _fixed(v, decimals)


def ms(v: float | None) -> str:
    """Seconds as a bare number of milliseconds with one decimal (``ms`` in the header): ``213.4``."""
    return DASH if v is None else _fixed(v * 1000, 1)


def count(v: float | None) -> str:
    return DASH if v is None else f"{round(v):,}"


def tokens_short(v: float) -> str:
    """Axis ticks: ``500``, ``2k``, ``12k``, ``1.5k``, ``1M``."""
    if v >= 1e6:
        return f"{v / 1e6:g}M"
    if v >= 1000:
        return f"{v / 1000:g}k"
    return f"{v:g}"
