"""Which of a level's requests are warmup, measured or cooldown, and when its measured ones are over: the
bookkeeping :mod:`tpsbench.load.runner` keeps for one share of a level (see its module docstring)."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Iterator

import numpy as np
from numpy.typing import NDArray

__all__ = ["Phases", "chain", "continued"]


class Phases:
    """Which of a share's requests are warmup, measured or cooldown, and when its measured ones are over.

    Request numbers below ``warmup`` are warmup; from ``cooldown_from`` on (set when the measured requests
    have all been handed out: :meth:`close`, or up front for an open-loop schedule) cooldown; the rest are
    measured. ``cooldown_over`` is None without cooldown. ``measured_started`` is called once, when the
    share's first measured request starts; ``measured_done`` once, when the share is closed and none of its
    measured requests is in flight.
    """

    def __init__(
        self,
        warmup: int,
        cooldown_over: asyncio.Event | None,
        measured_done: Callable[[], None] | None,
        measured_started: Callable[[], None] | None = None,
    ) -> None:
        self.warmup = warmup
        self.cooldown_over = cooldown_over
        self.measured_done = measured_done
        self.measured_started = measured_started
        self.cooldown_from: int | None = None
        self.closed = False
        self.in_flight = 0  # measured requests started and not ended
        self.reported = False

    def is_cooldown(self, g: int) -> bool:
        return self.cooldown_from is not None and g >= self.cooldown_from

    def cooling(self) -> bool:
        """Whether cooldown requests may still start (cooldown on, and not over)."""
        return self.cooldown_over is not None and not self.cooldown_over.is_set()

    def began(self, g: int) -> None:
        if g >= self.warmup and not self.is_cooldown(g):
            self.in_flight += 1
            if self.measured_started is not None:
                started, self.measured_started = self.measured_started, None
                started()

    def ended(self, g: int) -> None:
        if g >= self.warmup and not self.is_cooldown(g):
            self.in_flight -= 1
            self._check()

    def close(self, next_g: int | None = None) -> None:
        """No measured request starts from now on; ``next_g`` would be the share's next request number."""
        if self.cooldown_from is None and next_g is not None:
            self.cooldown_from = next_g
        self.closed = True
        self._check()

    def _check(self) -> None:
        if self.closed and self.in_flight == 0 and not self.reported:
            self.reported = True
            if self.measured_done is not None:
                self.measured_done()


def chain(*fns: Callable[[], None] | None) -> Callable[[], None]:
    """One callable calling each of ``fns`` (None skipped) in order."""

    def call() -> None:
        for fn in fns:
            if fn is not None:
                fn()

    return call


def continued(
    draw: Callable[[int], NDArray[np.float64]], start: int, worker: int, workers: int
) -> Iterator[tuple[int, float]]:
    """This share's ``(g, offset)`` from request ``start`` on, without end: ``draw(n)`` gives the first
    ``n`` offsets of the level's schedule (the same first ones whatever ``n``, arrivals.py), drawn again
    twice as long whenever the share reaches the end."""
    offsets = draw(max(2 * start, 64))
    for g in itertools.count(start + (worker - start) % workers, workers):
        while g >= len(offsets):
            offsets = draw(2 * len(offsets))
        yield g, float(offsets[g])
