"""Distribution summaries and seeded bootstrap intervals."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tpsbench.results import stats
from tpsbench.results.stats import PERCENTILES, STAT_KEYS, describe


def test_known_percentiles_and_moments() -> None:
    d = describe([float(v) for v in range(1, 102)], ci=False)  # 1..101: p_q = 1 + q exactly
    assert d["n"] == 101
    assert d["mean"] == 51.0
    assert d["min"] == 1.0 and d["max"] == 101.0
    for q in PERCENTILES:
        assert d[f"p{q}"] == pytest.approx(1.0 + q)
    assert d["std"] == pytest.approx(np.std(np.arange(1, 102), ddof=1))
    assert d["mean_ci"] is None and d["p50_ci"] is None


def test_linear_interpolation_and_sample_std() -> None:
    d = describe([1.0, 2.0, 3.0, 4.0], ci=False)
    assert d["p50"] == 2.5
    assert d["p90"] == pytest.approx(3.7)  # 1 + 0.9 * 3 = position 2.7 -> 3.7
    assert d["std"] == pytest.approx((5 / 3) ** 0.5)  # ddof=1


def test_empty_input_keeps_every_key() -> None:
    d = describe([])
    assert list(d) == list(STAT_KEYS)
    assert d["n"] == 0
    assert all(d[k] is None for k in STAT_KEYS if k != "n")


def test_single_value() -> None:
    d = describe([0.25])
    assert d["n"] == 1 and d["std"] == 0.0 and d["p1"] == 0.25 and d["p99"] == 0.25
    assert d["mean_ci"] is None and d["p50_ci"] is None  # no spread to resample


def test_returns_plain_python_numbers() -> None:
    d = describe(np.array([1.0, 2.0, 3.0]))
    assert type(d["n"]) is int
    assert all(type(d[k]) is float for k in STAT_KEYS if k not in ("n", "mean_ci", "p50_ci"))
    assert all(type(v) is float for v in d["mean_ci"] + d["p50_ci"])


def test_bootstrap_is_seeded() -> None:
    x = list(np.random.default_rng(7).exponential(size=300))
    a, b, c = describe(x, seed=1), describe(x, seed=1), describe(x, seed=2)
    assert a == b
    assert a["mean_ci"] != c["mean_ci"]


def test_bootstrap_intervals_are_sensible() -> None:
    x = np.random.default_rng(3).normal(10.0, 2.0, size=2000)
    d = describe(x)
    lo, hi = d["mean_ci"]
    assert lo < d["mean"] < hi
    # the normal-theory 95% half-width is 1.96 * s / sqrt(n) ~ 0.088
    assert (hi - lo) / 2 == pytest.approx(1.96 * 2.0 / np.sqrt(2000), rel=0.2)
    plo, phi = d["p50_ci"]
    assert plo <= d["p50"] <= phi


def test_constant_sample_has_a_zero_width_interval() -> None:
    d = describe([2.0] * 50)
    assert d["mean_ci"] == pytest.approx([2.0, 2.0])
    assert d["p50_ci"] == [2.0, 2.0]


@pytest.mark.parametrize("n", [2, 3, 10, 11])
def test_median_from_sorted_indices_equals_numpy_median(n: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """The index-partition shortcut must give exactly np.median of each resample (one block, same draws)."""
    x = np.random.default_rng(n).normal(size=n)
    n_boot = 200
    monkeypatch.setattr(stats, "_BLOCK_VALUES", n * n_boot)
    got = stats.bootstrap_ci(x, seed=5, n_boot=n_boot)
    idx = np.random.default_rng(5).integers(0, n, size=(n_boot, n), dtype=np.int32)
    resamples = np.sort(x)[idx]
    tails = [2.5, 97.5]
    assert got["p50_ci"] == pytest.approx(list(np.percentile(np.median(resamples, axis=1), tails)))
    assert got["mean_ci"] == pytest.approx(list(np.percentile(resamples.mean(axis=1), tails)))


def test_blocked_bootstrap_is_deterministic(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stats, "_BLOCK_VALUES", 1000)  # 10 resamples per block
    x = np.random.default_rng(0).exponential(size=100)
    a, b = stats.bootstrap_ci(x, n_boot=95), stats.bootstrap_ci(x, n_boot=95)
    assert a == b
    assert a["mean_ci"] is not None and a["mean_ci"][0] < float(x.mean()) < a["mean_ci"][1]


def test_rejects_non_finite_and_nested_input() -> None:
    with pytest.raises(ValueError, match="finite"):
        describe([1.0, float("nan")])
    with pytest.raises(ValueError, match="flat"):
        describe(np.ones((2, 2)))


def test_statistic() -> None:
    v = [1.0, 2.0, 3.0, 4.0]
    assert stats.statistic(v, "mean") == 2.5
    assert stats.statistic(v, "p50") == 2.5
    assert stats.statistic(v, "p99.9") == pytest.approx(3.997)
    assert stats.statistic(v, "min") == 1.0 and stats.statistic(v, "max") == 4.0
    assert stats.statistic([], "p99") is None
    with pytest.raises(ValueError, match="unknown statistic"):
        stats.statistic(v, "median")


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=2, max_size=60))
def test_order_invariants(values: list[float]) -> None:
    d = describe(values, n_boot=50)
    chain = [d["min"], *(d[f"p{q}"] for q in PERCENTILES), d["max"]]
    assert all(a <= b for a, b in itertools.pairwise(chain))
    tol = 1e-9 * max(1.0, abs(d["max"]), abs(d["min"]))
    assert d["min"] - tol <= d["mean"] <= d["max"] + tol
    for key in ("mean_ci", "p50_ci"):
        lo, hi = d[key]
        assert d["min"] - tol <= lo <= hi <= d["max"] + tol
