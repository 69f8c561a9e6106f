"""The Pareto frontier is a pure function: properties over random point sets, then the edge cases."""

from __future__ import annotations

import math
from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from tpsbench.report.pareto import dominates, pareto_frontier

# Small integers make ties (equal x, equal y, duplicate points) common; wide floats cover the rest.
coord = st.one_of(st.integers(0, 12).map(float), st.floats(-1e6, 1e6, allow_nan=False))
points = st.lists(st.tuples(coord, coord), max_size=40)


@settings(max_examples=300, deadline=None)
@given(points)
def test_no_frontier_point_is_dominated(pts: list[tuple[float, float]]) -> None:
    for i in pareto_frontier(pts):
        assert not any(dominates(q, pts[i]) for q in pts)


@settings(max_examples=300, deadline=None)
@given(points)
def test_every_dominated_point_is_off_the_frontier(pts: list[tuple[float, float]]) -> None:
    front = set(pareto_frontier(pts))
    for i, p in enumerate(pts):
        assert (i in front) == (not any(dominates(q, p) for q in pts))


@settings(max_examples=200, deadline=None)
@given(points.flatmap(lambda pts: st.tuples(st.just(pts), st.permutations(pts))))
def test_order_does_not_matter(pair: tuple[list[tuple[float, float]], list[tuple[float, float]]]) -> None:
    pts, shuffled = pair
    assert Counter(pts[i] for i in pareto_frontier(pts)) == Counter(
        shuffled[i] for i in pareto_frontier(shuffled)
    )


@settings(max_examples=200, deadline=None)
@given(points)
def test_frontier_is_ordered_by_x_for_drawing(pts: list[tuple[float, float]]) -> None:
    xs = [pts[i][0] for i in pareto_frontier(pts)]
    assert xs == sorted(xs)


def test_a_sweep() -> None:
    # TPS/user falls and server TPS rises with concurrency; c=32 here is worse than c=16 on both axes.
    sweep = [(1000, 1000), (930, 1800), (800, 3100), (640, 5100), (420, 7200), (400, 7000), (180, 11500)]
    assert pareto_frontier(sweep) == [6, 4, 3, 2, 1, 0]


def test_edge_cases() -> None:
    assert pareto_frontier([]) == []
    assert pareto_frontier([(1.0, 1.0)]) == [0]
    assert pareto_frontier([(1.0, 1.0), (1.0, 1.0)]) == [0, 1]  # equal points do not dominate each other
    assert pareto_frontier([(2.0, 1.0), (2.0, 3.0)]) == [1]  # same x: the higher y wins
    assert pareto_frontier([(1.0, 5.0), (3.0, 5.0)]) == [1]  # same y: the higher x wins
    # Non-finite points are never on it and never push a finite point off it.
    assert pareto_frontier([(math.nan, 1.0), (1.0, 1.0), (math.inf, math.inf)]) == [1]
