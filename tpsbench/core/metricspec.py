"""The names of the metrics a regression gate judges, which way each is better, its default noise floor,
and the parsing of thresholds. Scenario validation (``gate.thresholds``), ``tpsbench gate --threshold``,
the gate's verdicts and ``tpsbench compare`` all read them here, so ``validate`` rejects exactly what the
gate rejects.

A gated metric is ``output_tps``, ``error_rate``, a curve-level one (``curve_tps_per_gpu``,
``curve_tps_user``: :mod:`tpsbench.gate.curve`) or ``<metric>_<stat>`` with metric in ``ttft_s``,
``tps_user``, ``tpot_s``, ``e2e_s``, ``e2e_tps`` (and the other TPS/user definitions: ``tps_user_aiperf``,
``tps_user_inferencex``, ``tps_user_guidellm``, ``tpot_inferencex_s``) and stat in p1, p5, p10, p50, p90,
p95, p99; or a point-level TPS/user definition (:mod:`tpsbench.results.definitions`): ``tps_user_mlperf``
(1 / the p90 of ``tpot_inferencex_s``: kind ``inverse_quantile``, tested like that quantile) and
``tps_user_vllm`` (output TPS / concurrency: kind ``per_user_throughput``, tested like output TPS).

    >>> s = metric_spec("ttft_s_p99")
    >>> (s.title, s.better, s.default_threshold, s.block, s.q)
    ('TTFT p99', 'lower', 10.0, 'ttft_s', 0.99)
    >>> parse_thresholds(["ttft_s_p99=15", "error_rate=2%"])
    {'ttft_s_p99': 15.0, 'error_rate': 2.0}
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

Better = Literal["higher", "lower"]

# The rows judged at every load point unless thresholds add more, in output order.
DEFAULT_METRICS: tuple[str, ...] = (
    "tps_user_p50",
    "tps_user_p10",
    "ttft_s_p50",
    "ttft_s_p99",
    "output_tps",
    "error_rate",
)

SAMPLE_METRICS: dict[str, tuple[str, Better, str]] = {
    "ttft_s": ("TTFT", "lower", "s"),
    "tps_user": ("TPS/user", "higher", "tok/s"),
    "tpot_s": ("TPOT", "lower", "s"),
    "e2e_s": ("E2E latency", "lower", "s"),
    "e2e_tps": ("E2E TPS", "higher", "tok/s"),
    # the other harnesses' TPS/user definitions (results/definitions.py)
    "tps_user_aiperf": ("TPS/user (AIPerf)", "higher", "tok/s"),
    "tps_user_inferencex": ("TPS/user (InferenceX)", "higher", "tok/s"),
    "tps_user_guidellm": ("TPS/user (GuideLLM)", "higher", "tok/s"),
    "tpot_inferencex_s": ("TPOT (InferenceX)", "lower", "s"),
}
QUANTILES: dict[str, float] = {
    "p1": 0.01,
    "p5": 0.05,
    "p10": 0.10,
    "p50": 0.50,
    "p90": 0.90,
    "p95": 0.95,
    "p99": 0.99,
}


@dataclass(frozen=True, slots=True)
class MetricSpec:
    """One gated metric: ``name`` as in thresholds (``ttft_s_p99``), how to read it and which way is good."""

    name: str
    title: str
    better: Better
    kind: Literal["quantile", "inverse_quantile", "output_tps", "per_user_throughput", "error_rate", "curve"]
    default_threshold: float  # percent (percentage points for the error rate)
    unit: str
    block: str = ""  # summary block and per-request metric of a (inverse) quantile metric
    stat: str = ""  # p50, p99, ...
    q: float = 0.5

    @property
    def higher_is_better(self) -> bool:
        return self.better == "higher"


# Curve-level verdicts (tpsbench.gate.curve): the candidate's throughput-interactivity curve read at the
# baseline's points. Judged once per baseline point, not per load; their own default floor (percent).
CURVE_METRICS: dict[str, str] = {
    "curve_tps_per_gpu": "TPS/GPU at TPS/user",  # output TPS per GPU at the baseline's TPS/user
    "curve_tps_user": "TPS/user at TPS/GPU",  # TPS/user at the baseline's output TPS per GPU
}
CURVE_THRESHOLD = 5.0

# Point-level TPS/user definitions (tpsbench.results.definitions): one number per load point, each judged
# by the test of the quantity it is a function of.
POINT_METRICS: dict[str, str] = {
    "tps_user_mlperf": "TPS/user (MLPerf)",  # 1 / p90 of tpot_inferencex_s
    "tps_user_vllm": "TPS/user (vLLM)",  # output TPS / concurrency
}


def metric_spec(name: str) -> MetricSpec:
    """The spec of a metric name; raises ``ValueError`` naming the known metrics."""
    if name in CURVE_METRICS:
        return MetricSpec(name, CURVE_METRICS[name], "higher", "curve", CURVE_THRESHOLD, "tok/s")
    if name == "output_tps":
        return MetricSpec(name, "output TPS", "higher", "output_tps", 10.0, "tok/s")
    if name == "error_rate":
        return MetricSpec(name, "error rate", "lower", "error_rate", 1.0, "%")
    if name == "tps_user_mlperf":  # a p90 of the per-request TPOT, inverted: a tail's floor
        title = POINT_METRICS[name]
        return MetricSpec(
            name, title, "higher", "inverse_quantile", 10.0, "tok/s", "tpot_inferencex_s", "p90", 0.9
        )
    if name == "tps_user_vllm":  # a throughput over a set concurrency: output TPS's floor
        return MetricSpec(name, POINT_METRICS[name], "higher", "per_user_throughput", 10.0, "tok/s")
    block, _, stat = name.rpartition("_")
    if block in SAMPLE_METRICS and stat in QUANTILES:
        title, better, unit = SAMPLE_METRICS[block]
        floor = 5.0 if stat == "p50" else 10.0  # tails are noisier than medians
        return MetricSpec(
            name, f"{title} {stat}", better, "quantile", floor, unit, block, stat, QUANTILES[stat]
        )
    raise ValueError(
        f"unknown metric {name!r}: use output_tps, error_rate, {', '.join(CURVE_METRICS)}, "
        f"{', '.join(POINT_METRICS)} or "
        "<metric>_<stat> with metric in "
        f"{', '.join(SAMPLE_METRICS)} and stat in {', '.join(QUANTILES)}"
    )


def check_thresholds(thresholds: Mapping[Any, Any], where: str) -> dict[str, float]:
    """``{metric: percent}`` checked: known metric names, finite numbers >= 0; ``ValueError`` naming
    ``where`` and the bad entry."""
    out: dict[str, float] = {}
    for name, value in thresholds.items():
        try:
            metric_spec(str(name))
        except ValueError as e:
            raise ValueError(f"{where}: {e}") from None
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise ValueError(f"{where}: threshold of {name!r} must be a number, got {value!r}")
        if value < 0:
            raise ValueError(f"{where}: threshold of {name!r} must be >= 0, got {value}")
        out[str(name)] = float(value)
    return out


def parse_thresholds(items: Iterable[str]) -> dict[str, float]:
    """Parse CLI ``METRIC=PCT`` items (``ttft_s_p99=15``) into a thresholds dict; ``ValueError`` if bad."""
    out: dict[str, float] = {}
    for item in items:
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep:
            raise ValueError(f"threshold {item!r}: expected METRIC=PCT, e.g. ttft_s_p99=15")
        metric_spec(name)
        try:
            out[name] = float(value.strip().removesuffix("%"))
        except ValueError:
            raise ValueError(f"threshold {item!r}: {value!r} is not a number") from None
    return check_thresholds(out, "--threshold")
