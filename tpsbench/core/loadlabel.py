"""The one label of a load level, used by the scenario, the runner's progress, summaries, reports, compare
and the gate: ``c=N`` (closed loop), ``rate=R/s`` (open loop; the arrival process is named unless it is
Poisson, the default), or ``level I`` when neither load is known.

    >>> load_label(16, None), load_label(None, 2.5), load_label(None, 2.5, "gamma")
    ('c=16', 'rate=2.5/s', 'rate=2.5/s gamma')
    >>> load_label(None, None, level=3)
    'level 3'
"""

from __future__ import annotations

DEFAULT_ARRIVAL = "poisson"


def load_label(
    concurrency: int | None, rate: float | None, arrival: str | None = None, *, level: int | None = None
) -> str:
    """``c=16``, ``rate=2.5/s``, ``rate=2.5/s gamma`` or ``level 3`` (see the module docstring)."""
    if concurrency is not None:
        return f"c={concurrency}"
    if rate is not None:
        return f"rate={rate:g}/s" + ("" if arrival in (None, DEFAULT_ARRIVAL) else f" {arrival}")
    return f"level {level}" if level is not None else "level ?"
