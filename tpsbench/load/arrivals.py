"""Seeded open-loop arrival schedules: when each request of a ``rate`` level is due.

    >>> arrival_offsets(4.0, "constant", count=5, duration_s=None, seed=0).tolist()
    [0.0, 0.25, 0.5, 0.75, 1.0]

Offsets are seconds from the level's start. The first request is due at 0 (no idle gap before the level
starts measuring anything), and offset ``i`` is the sum of the first ``i`` inter-arrival gaps:

- ``constant``: every gap is ``1 / rate``; offset ``i`` is exactly ``i / rate``.
- ``poisson``: gaps ~ Exponential(mean ``1 / rate``), i.e. a Poisson process of intensity ``rate``.
- ``gamma``: gaps ~ Gamma(shape ``k = burstiness``, scale ``1 / (k * rate)``): mean ``1 / rate``, coefficient
  of variation ``1 / sqrt(k)``. ``k = 1`` is Poisson, ``k < 1`` burstier, ``k > 1`` more regular.

A schedule is a pure function of its arguments, and its first ``n`` offsets do not depend on the bounds
(``count`` / ``duration_s``): shortening a level never reshuffles the arrivals it keeps.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import numpy as np
from numpy.typing import NDArray

__all__ = ["arrival_offsets", "ramp_offsets", "ramp_time"]

Arrival = Literal["poisson", "constant", "gamma"]


def arrival_offsets(
    rate: float,
    arrival: Arrival,
    *,
    burstiness: float = 1.0,
    count: int | None,
    duration_s: float | None,
    seed: int | Sequence[int],
) -> NDArray[np.float64]:
    """Non-decreasing arrival offsets in seconds, the first at 0.0.

    Bounded by ``count`` (at most that many arrivals) and/or ``duration_s`` (only offsets ``< duration_s``),
    whichever is reached first; at least one bound is required. With ``constant`` arrivals and only a
    duration, there are ``ceil(rate * duration_s)`` arrivals. ``seed`` may be a sequence such as
    ``(workload_seed, level_index)`` to give each level an independent stream. ``count`` counts every
    request the caller will send, warmup included.
    """
    if not (math.isfinite(rate) and rate > 0):
        raise ValueError(f"rate must be a finite number > 0, got {rate}")
    if not (math.isfinite(burstiness) and burstiness > 0):
        raise ValueError(f"burstiness must be a finite number > 0, got {burstiness}")
    if arrival != "gamma" and burstiness != 1.0:
        raise ValueError(f"burstiness applies to gamma arrivals only, got {burstiness} with {arrival!r}")
    if count is None and duration_s is None:
        raise ValueError("set count, duration_s or both, so the schedule ends")
    if count is not None and count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    if duration_s is not None and not duration_s >= 0:
        raise ValueError(f"duration_s must be >= 0, got {duration_s}")

    if arrival == "constant":
        by_duration = math.inf if duration_s is None else math.ceil(rate * duration_s)
        n = int(min(by_duration, math.inf if count is None else count))
        offsets = np.arange(n, dtype=np.float64) / rate
        # i / rate can round to just under duration_s for large i; keep the strict bound exact.
        return offsets if duration_s is None else offsets[offsets < duration_s]

    rng = np.random.default_rng(seed)
    if count is not None and duration_s is None:
        return _cumulative(_gaps(rng, arrival, rate, burstiness, max(count - 1, 0)), count)

    # Duration bound: draw gaps in batches until the schedule passes duration_s. Batches are consecutive
    # draws from one generator, so the offsets equal those of a single large draw.
    assert duration_s is not None
    limit = count if count is not None else math.inf
    expected = rate * duration_s
    batch = int(expected + 6 * math.sqrt(expected / min(burstiness, 1.0)) + 16)
    gaps = np.empty(0, dtype=np.float64)
    while True:
        gaps = np.concatenate([gaps, _gaps(rng, arrival, rate, burstiness, batch)])
        offsets = _cumulative(gaps, len(gaps) + 1)
        if offsets[-1] >= duration_s or len(offsets) >= limit:
            kept = offsets[offsets < duration_s]
            return kept if count is None else kept[:count]


def _gaps(
    rng: np.random.Generator, arrival: Arrival, rate: float, burstiness: float, n: int
) -> NDArray[np.float64]:
    if arrival == "poisson":
        return rng.exponential(1.0 / rate, size=n)
    return rng.gamma(burstiness, 1.0 / (burstiness * rate), size=n)


def _cumulative(gaps: NDArray[np.float64], n: int) -> NDArray[np.float64]:
    """The first ``n`` offsets: 0, then running sums of the gaps."""
    out = np.zeros(n, dtype=np.float64)
    if n > 1:
        np.cumsum(gaps[: n - 1], out=out[1:])
    return out


def ramp_time(t_s: float, ramp_s: float) -> float:
    """Seconds of full-rate schedule that fit in the first ``t_s`` seconds of a linear ramp:
    ``Lambda(t) / rate`` with ``Lambda(t) = rate * t**2 / (2 ramp_s)`` up to ``ramp_s``, then
    ``rate * (t - ramp_s / 2)``. The inverse of :func:`ramp_offsets`.

    >>> ramp_time(1.0, 2.0), ramp_time(3.0, 2.0)
    (0.25, 2.0)
    """
    if ramp_s <= 0:
        return t_s
    return t_s * t_s / (2 * ramp_s) if t_s < ramp_s else t_s - ramp_s / 2


def ramp_offsets(offsets: NDArray[np.float64], ramp_s: float) -> NDArray[np.float64]:
    """A full-rate schedule bent into one whose rate grows linearly from 0 to the full rate over
    ``ramp_s`` seconds, then stays there (time rescaling: offset ``u`` moves to ``t`` with
    ``ramp_time(t) == u``, so a Poisson schedule stays a Poisson process, of intensity ``rate * t / ramp_s``
    during the ramp; a constant one is deterministic: ``t = sqrt(2 ramp_s u)``).

    >>> ramp_offsets(np.array([0.0, 0.5, 1.0, 2.0]), 2.0).tolist()
    [0.0, 1.4142135623730951, 2.0, 3.0]
    """
    if ramp_s <= 0:
        return offsets
    half = ramp_s / 2
    return np.where(offsets < half, np.sqrt(2 * ramp_s * offsets), offsets + half)
