"""The Pareto frontier of (interactivity, throughput) points: a pure function, no plotting.

A point dominates another when it is at least as good on both axes and strictly better on one; both axes
are maximised (TPS/user and output TPS). The frontier is every point nothing dominates.

    >>> pareto_frontier([(1000, 1000), (600, 5000), (500, 4000), (180, 11000)])
    [3, 1, 0]
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def dominates(a: tuple[float, float], b: tuple[float, float]) -> bool:
    """True when ``a`` is at least as good as ``b`` on both axes and better on one (maximising both)."""
    return a[0] >= b[0] and a[1] >= b[1] and (a[0] > b[0] or a[1] > b[1])


def pareto_frontier(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the non-dominated points, ordered by x ascending (the order a frontier line is drawn in).

    Non-finite points (NaN, inf) are neither on the frontier nor dominate anything. Equal points are all
    kept: neither dominates the other. O(n log n): sweep x from high to low, keeping the best y seen at a
    strictly higher x; a point survives when its y beats that and is the best of its own x.
    """
    finite = [i for i, (x, y) in enumerate(points) if math.isfinite(x) and math.isfinite(y)]
    finite.sort(key=lambda i: (-points[i][0], -points[i][1], i))
    frontier: list[int] = []
    best_y_at_higher_x = -math.inf
    j = 0
    while j < len(finite):
        x = points[finite[j]][0]
        group_end = j
        while group_end < len(finite) and points[finite[group_end]][0] == x:
            group_end += 1
        group_best = points[finite[j]][1]  # sorted by y descending within the same x
        if group_best > best_y_at_higher_x:
            frontier.extend(i for i in finite[j:group_end] if points[i][1] == group_best)
        best_y_at_higher_x = max(best_y_at_higher_x, group_best)
        j = group_end
    frontier.sort(key=lambda i: (points[i][0], -points[i][1], i))
    return frontier
