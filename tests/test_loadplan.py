"""Open-loop arrival schedules: rates, spacing, burstiness, bounds, reproducibility."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tpsbench.load.arrivals import arrival_offsets


def test_constant_spacing_is_exact() -> None:
    x = arrival_offsets(4.0, "constant", count=9, duration_s=None, seed=0)
    assert x.tolist() == [i * 0.25 for i in range(9)]
    y = arrival_offsets(3.0, "constant", count=None, duration_s=2.0, seed=0)
    assert y.tolist() == [i / 3.0 for i in range(6)]  # ceil(3 * 2) arrivals, all < 2 s
    # ceil(10 * 0.3) is 4 in floating point; the strict bound still keeps only offsets < 0.3
    assert len(arrival_offsets(10.0, "constant", count=None, duration_s=0.3, seed=0)) == 3


@pytest.mark.parametrize(("arrival", "shape"), [("poisson", 1.0), ("gamma", 0.25), ("gamma", 4.0)])
def test_mean_rate(arrival: str, shape: float) -> None:
    x = arrival_offsets(50.0, arrival, burstiness=shape, count=20_000, duration_s=None, seed=7)  # type: ignore[arg-type]
    assert x[0] == 0.0 and np.all(np.diff(x) >= 0)
    rate = (len(x) - 1) / x[-1]
    assert rate == pytest.approx(50.0, rel=0.03)


@pytest.mark.parametrize("shape", [0.25, 1.0, 4.0])
def test_gamma_cv_is_one_over_sqrt_shape(shape: float) -> None:
    gaps = np.diff(arrival_offsets(10.0, "gamma", burstiness=shape, count=40_000, duration_s=None, seed=3))
    assert gaps.std() / gaps.mean() == pytest.approx(1 / math.sqrt(shape), rel=0.05)


def test_poisson_cv_is_one() -> None:
    gaps = np.diff(arrival_offsets(10.0, "poisson", count=40_000, duration_s=None, seed=5))
    assert gaps.std() / gaps.mean() == pytest.approx(1.0, rel=0.03)


@pytest.mark.parametrize("arrival", ["poisson", "gamma", "constant"])
def test_duration_bound(arrival: str) -> None:
    x = arrival_offsets(20.0, arrival, burstiness=1.0, count=None, duration_s=50.0, seed=1)  # type: ignore[arg-type]
    assert len(x) > 0 and x[-1] < 50.0
    assert len(x) == pytest.approx(1000, rel=0.1)
    capped = arrival_offsets(20.0, arrival, count=10, duration_s=50.0, seed=1)  # type: ignore[arg-type]
    assert len(capped) == 10  # count reached first
    short = arrival_offsets(20.0, arrival, count=10_000, duration_s=2.0, seed=1)  # type: ignore[arg-type]
    assert len(short) < 100 and short[-1] < 2.0  # duration reached first


@pytest.mark.parametrize("arrival", ["poisson", "gamma"])
def test_seeded_and_independent_of_bounds(arrival: str) -> None:
    kw = {"burstiness": 0.5 if arrival == "gamma" else 1.0}
    by_count = arrival_offsets(5.0, arrival, count=300, duration_s=None, seed=11, **kw)  # type: ignore[arg-type]
    by_time = arrival_offsets(5.0, arrival, count=None, duration_s=200.0, seed=11, **kw)  # type: ignore[arg-type]
    n = min(len(by_count), len(by_time))
    assert n > 100 and np.array_equal(by_count[:n], by_time[:n])
    again = arrival_offsets(5.0, arrival, count=300, duration_s=None, seed=11, **kw)  # type: ignore[arg-type]
    assert np.array_equal(by_count, again)
    other = arrival_offsets(5.0, arrival, count=300, duration_s=None, seed=12, **kw)  # type: ignore[arg-type]
    assert not np.array_equal(by_count, other)
    pair = arrival_offsets(5.0, arrival, count=300, duration_s=None, seed=(11, 1), **kw)  # type: ignore[arg-type]
    assert not np.array_equal(by_count, pair)


def test_edge_cases_and_errors() -> None:
    assert arrival_offsets(1.0, "poisson", count=0, duration_s=None, seed=0).size == 0
    assert arrival_offsets(1.0, "poisson", count=1, duration_s=None, seed=0).tolist() == [0.0]
    assert arrival_offsets(1.0, "gamma", count=None, duration_s=0.0, seed=0).size == 0
    with pytest.raises(ValueError, match="rate"):
        arrival_offsets(0.0, "poisson", count=1, duration_s=None, seed=0)
    with pytest.raises(ValueError, match="count, duration_s"):
        arrival_offsets(1.0, "poisson", count=None, duration_s=None, seed=0)
    with pytest.raises(ValueError, match="gamma arrivals only"):
        arrival_offsets(1.0, "poisson", burstiness=2.0, count=1, duration_s=None, seed=0)
