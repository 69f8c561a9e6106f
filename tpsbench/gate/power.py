"""The gate's measured error rates: how often it fails an unchanged configuration (false alarm) and how
often it catches a planted change (detection), over seeded synthetic runs
(:mod:`tpsbench.results.synthetic`). ``benchmarks/gate_power.py`` prints them; tests/test_gate.py asserts
on them."""

from __future__ import annotations

import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from tpsbench.core.metricspec import CURVE_METRICS, DEFAULT_METRICS
from tpsbench.gate.verdicts import evaluate
from tpsbench.results.synthetic import Shape, write_synthetic_run

__all__ = ["gate_rates"]


def gate_rates(
    trials: int,
    candidate: Shape,
    *,
    baseline: Shape | None = None,
    loads: Sequence[int] = (4, 16, 64),
    n: int = 200,
    first_seed: int = 0,
    repeats: int = 1,
    thresholds: Mapping[str, float] | None = None,
) -> tuple[float, dict[str, float]]:
    """Over seeded trials (a fresh baseline and candidate each): the fraction that exit 1, and per metric
    the fraction of (trial, load point) rows judged regressed (curve rows: per baseline point).
    ``baseline`` defaults to ``Shape()``; ``repeats`` > 1 writes both runs with that many repeats (the
    gate then tests on per-repeat values); ``thresholds`` as the gate's (adding rows, e.g.
    ``{"tps_user_mlperf": 10}``)."""
    baseline = baseline or Shape()
    exits = 0
    regressed: dict[str, int] = dict.fromkeys([*DEFAULT_METRICS, *(thresholds or {}), *CURVE_METRICS], 0)
    with tempfile.TemporaryDirectory() as tmp:
        for t in range(first_seed, first_seed + trials):
            b, c = (
                write_synthetic_run(
                    Path(tmp, f"{side}{t}"), seed=2 * t + k, loads=loads, n=n, shape=shape, repeats=repeats
                )
                for k, (side, shape) in enumerate((("b", baseline), ("c", candidate)))
            )
            result = evaluate(b, c, thresholds, seed=t)
            if result.exit_code not in (0, 1):
                raise RuntimeError(f"trial {t}: the gate could not compare: {result.reasons}")
            exits += result.exit_code == 1
            for row in result.regressions:
                regressed[row.metric] = regressed.get(row.metric, 0) + 1
    return exits / trials, {m: k / (trials * len(loads)) for m, k in regressed.items()}
