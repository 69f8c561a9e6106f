"""The cyclic garbage collector in processes that stamp or keep time: the load generator during a level, the
reference endpoint and the pace server while they serve.

CPython's automatic collector runs a young pass every 700 allocations and, now and then, a full pass that
visits every tracked object of the process: with 2,048 streams that is tens of milliseconds in which no
chunk is stamped and no engine step wakes on time. Measured with ``benchmarks/reference_capacity.py
--levels 2048 --client minimal`` (the simulator on its own core, SCHED_FIFO so that nothing else runs on
it): engine step lag p99 3.3 and 16.4 ms with the default collector, 1.05 and 1.06 ms with
:data:`QUIET_THRESHOLDS` after a freeze. Turning the collector off is worse (p99 93-212 ms): asyncio makes
short-lived cycles at every sleep, and without young passes they pile up.

So: freeze what exists (imports, scenario, model: O(1), never visited again), keep the young and middle
passes (they see only what was made since, most of it already freed), and leave the full pass for
when the work is over.

    >>> with quiet_collector():
    ...     gc.get_threshold() == QUIET_THRESHOLDS
    True
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["QUIET_THRESHOLDS", "quiet", "quiet_collector", "restore"]

# young pass every 20,000 net allocations, middle pass every 20 young ones, a full pass practically never
QUIET_THRESHOLDS: tuple[int, int, int] = (20_000, 20, 1_000_000)


def quiet() -> tuple[int, int, int]:
    """Freeze what exists and set :data:`QUIET_THRESHOLDS`; returns the thresholds before, for
    :func:`restore`. A serving process calls it once it has started, and never restores."""
    before: tuple[int, int, int] = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(*QUIET_THRESHOLDS)
    return before


def restore(before: tuple[int, int, int]) -> None:
    """Undo :func:`quiet`: the thresholds before, and what was frozen unfrozen (so nothing made during
    the work outlives it uncollected)."""
    gc.set_threshold(*before)
    gc.unfreeze()


@contextmanager
def quiet_collector() -> Iterator[None]:
    """:func:`quiet` for one bounded piece of timed work, :func:`restore` after."""
    before = quiet()
    try:
        yield
    finally:
        restore(before)
