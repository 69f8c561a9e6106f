"""The one label of a load level, used by the scenario, the runner's progress, summaries, reports, compare
and the gate: ``c=N`` (closed loop), ``rate=R/s`` (open loop; the arrival process is named unless it is
Poisson, the default), ``trace=FILE`` (a replayed trace, ``xS`` when sped up), or ``level I`` when no
load is known.

    >>> load_label(16, None), load_label(None, 2.5), load_label(None, 2.5, "gamma")
    ('c=16', 'rate=2.5/s', 'rate=2.5/s gamma')
    >>> load_label(None, None, trace=trace_label("mooncake.jsonl", 2.0))
    'trace=mooncake.jsonl x2'
    >>> load_label(None, None, level=3)
    'level 3'
"""

from __future__ import annotations

DEFAULT_ARRIVAL = "poisson"


def trace_label(file_name: str, speedup: float = 1.0) -> str:
    """A trace level's load: its file name, and ``xS`` when replayed ``S`` times faster."""
    return file_name + (f" x{speedup:g}" if speedup != 1 else "")


def load_label(
    concurrency: int | None,
    rate: float | None,
    arrival: str | None = None,
    *,
    level: int | None = None,
    trace: str | None = None,
) -> str:
    """``c=16``, ``rate=2.5/s``, ``rate=2.5/s gamma``, ``trace=x.jsonl`` or ``level 3`` (module docstring);
    ``trace`` is a :func:`trace_label`."""
    if trace is not None:
        return f"trace={trace}"
    if concurrency is not None:
        return f"c={concurrency}"
    if rate is not None:
        return f"rate={rate:g}/s" + ("" if arrival in (None, DEFAULT_ARRIVAL) else f" {arrival}")
    return f"level {level}" if level is not None else "level ?"
