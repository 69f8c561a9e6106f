"""Service-level objectives: which metrics and statistics an SLO may name, and whether a request or a
level's statistic meets a threshold (the summary's ``goodput`` and ``slo_met``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import get_args

from tpsbench.config.scenario import SloMetric, SloStat
from tpsbench.results import metrics
from tpsbench.results.stats import STAT_KEYS, statistic

__all__ = ["SLO_METRICS", "SLO_STATS", "Slo", "check_slo", "meets", "request_meets_slo"]

SLO_METRICS: frozenset[str] = frozenset(get_args(SloMetric))
# Any location statistic of a block may carry a threshold: a throughput's tail is its low end (p10, p1), so
# this is wider than scenario.SloStat on purpose.
SLO_STATS: frozenset[str] = frozenset(STAT_KEYS) - {"n", "std", "mean_ci", "p50_ci"}

# {metric: {stat: threshold}}; the second form is what Scenario.slo is typed as (Mapping keys are invariant).
Slo = Mapping[str, Mapping[str, float]] | Mapping[SloMetric, Mapping[SloStat, float]]


def check_slo(slo: Slo) -> None:
    """ValueError unless every metric and statistic of ``slo`` is one an SLO may name."""
    for metric, stats in slo.items():
        if metric not in SLO_METRICS:
            raise ValueError(f"unknown SLO metric {metric!r}; expected one of {sorted(SLO_METRICS)}")
        for stat in stats:
            if stat not in SLO_STATS:
                raise ValueError(
                    f"unknown SLO statistic {metric}.{stat}; expected one of {sorted(SLO_STATS)}"
                )


def meets(metric: str, value: float | None, threshold: float) -> bool:
    """value meets threshold in the metric's direction (>= for throughputs, <= for latencies)."""
    if value is None:
        return False
    return value >= threshold if metrics.higher_is_better(metric) else value <= threshold


def request_meets_slo(m: Mapping[str, metrics.MetricValue], slo: Slo) -> bool:
    """Whether one request, given its :func:`metrics.request_metrics`, meets every SLO threshold.

    A scalar metric (TTFT, TPS/user, ...) must meet every threshold set for it, whatever the statistic
    (one request's p99 TTFT is its TTFT). For ``itl_s`` the statistic applies to the request's own gaps:
    ``{"itl_s": {"p99": 0.1}}`` asks that the request's p99 gap be <= 0.1 s. An undefined value (a failed
    request, TPS/user of a one-chunk answer) does not meet any threshold, so goodput is a lower bound.
    """
    for metric, stats in slo.items():
        v = m[metric]
        for stat, threshold in stats.items():
            value = statistic(v, stat) if isinstance(v, list) else v
            if not meets(metric, value, threshold):
                return False
    return True
