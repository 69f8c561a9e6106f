"""Repeats of a whole plan (``--repeat N``): one level's N per-repeat points pooled into the point the
summary shows, each metric's run-level estimate with a confidence interval across repeats, and what
differed between the repeats. Pure functions over summary points (:func:`summarize_level` outputs);
the format is in :mod:`tpsbench.results.files` (summary schema 2).

Why repeats: on a real server the run-to-run differences (server state, neighbours, clocks, thermals)
are larger than the spread within one run, so an interval computed from one run's requests is too
narrow to gate on (pyperf and asv gate on repeated runs for this reason). Each repeat gives one value
per metric (its median TTFT, its output TPS, ...); the run-level estimate is the mean of those N values
with a Student-t interval (:func:`tpsbench.results.stats.mean_t_interval`; its lower end clipped at 0 for
metrics that cannot be negative), beside the per-request
estimate of the pooled point (every repeat's requests in one distribution, bootstrap CI).

    >>> a = {"output_tps": 100.0, "tps_user": {"p50": 10.0, "p50_ci": [9.9, 10.1]}, "window_s": 2.0}
    >>> b = {"output_tps": 110.0, "tps_user": {"p50": 11.0, "p50_ci": [10.9, 11.1]}, "window_s": 2.0}
    >>> block = estimates([a, b])
    >>> block["metrics"]["output_tps"]["values"], block["metrics"]["output_tps"]["mean"]
    ([100.0, 110.0], 105.0)
    >>> pooled = pool({"output_tps": 1.0, "tps_user": {"p50": 10.5}}, [a, b])
    >>> pooled["output_tps"], pooled["repeats"]["n"]
    (105.0, 2)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tpsbench.core.loadlabel import load_label
from tpsbench.results.stats import CI_LEVEL, mean_t_interval

__all__ = [
    "BLOCKS",
    "SCALARS",
    "STATS",
    "THROUGHPUTS",
    "RepeatEstimate",
    "estimates",
    "merged_self_check",
    "pool",
    "run_block",
    "run_values",
]

# The metric blocks and stats that get a run-level estimate (``<block>_<stat>``, the gate's names).
BLOCKS: tuple[str, ...] = (
    "ttft_s",
    "tps_user",
    "tpot_s",
    "itl_s",
    "e2e_s",
    "tps_user_aiperf",
    "tps_user_inferencex",
    "tps_user_guidellm",
    "tpot_inferencex_s",
)
STATS: tuple[str, ...] = ("mean", "p1", "p5", "p10", "p50", "p90", "p95", "p99")
# One number per repeat already (no distribution).
SCALARS: tuple[str, ...] = (
    "output_tps",
    "output_tps_per_gpu",
    "request_rate",
    "goodput",
    "error_rate",
    "tps_user_mlperf",
    "tps_user_vllm",
)
# Rates over a repeat's window: the pooled point shows their mean over repeats (one window spanning every
# repeat would count the other levels and the cool-downs).
THROUGHPUTS: tuple[str, ...] = (
    "output_tps",
    "output_tps_per_gpu",
    "request_rate",
    "goodput",
    "tps_user_vllm",
    "window_s",
)
# What the differences list reports on: the headline numbers.
_HEADLINE: tuple[tuple[str, str], ...] = (
    ("tps_user_p50", "TPS/user p50"),
    ("ttft_s_p50", "TTFT p50"),
    ("output_tps", "output TPS"),
)


def _num(v: object) -> float | None:
    if isinstance(v, bool) or not isinstance(v, int | float):
        return None
    return float(v) if math.isfinite(v) else None


def _interval(v: object) -> tuple[float, float] | None:
    if not isinstance(v, Sequence) or isinstance(v, str) or len(v) != 2:
        return None
    lo, hi = _num(v[0]), _num(v[1])
    return (lo, hi) if lo is not None and hi is not None else None


@dataclass(frozen=True, slots=True)
class RepeatEstimate:
    """One metric's run-level estimate over repeats (:mod:`tpsbench.results.repeats`): a value per repeat,
    their mean, standard deviation, CV and the t interval of the mean (at the block's ``ci_level``)."""

    values: tuple[float, ...]
    mean: float
    sd: float | None
    ci: tuple[float, float] | None
    ci_level: float

    @property
    def cv(self) -> float | None:
        return self.sd / abs(self.mean) if self.sd is not None and self.mean else None

    @classmethod
    def from_block(cls, block: object, ci_level: float) -> RepeatEstimate | None:
        if not isinstance(block, Mapping) or not isinstance(block.get("values"), Sequence):
            return None
        values = tuple(v for x in block["values"] if (v := _num(x)) is not None)
        mean = _num(block.get("mean"))
        if not values or mean is None:
            return None
        return cls(values, mean, _num(block.get("sd")), _interval(block.get("ci")), ci_level)


def run_values(point: Mapping[str, Any]) -> dict[str, float]:
    """One repeat's run-level values: ``{<block>_<stat>: value}`` and the scalars, finite ones only."""
    out: dict[str, float] = {}
    for block in BLOCKS:
        b = point.get(block)
        if isinstance(b, Mapping):
            for stat in STATS:
                if (v := _num(b.get(stat))) is not None:
                    out[f"{block}_{stat}"] = v
    for key in SCALARS:
        if (v := _num(point.get(key))) is not None:
            out[key] = v
    return out


def _estimate(values: list[float], level: float) -> dict[str, Any]:
    n = len(values)
    mean = sum(values) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else None
    ci = mean_t_interval(values, level)
    if ci is not None and min(values) >= 0:  # a latency or a rate is never negative: neither is its bound
        ci = (max(ci[0], 0.0), ci[1])
    return {
        "values": values,
        "mean": mean,
        "sd": sd,
        "cv": sd / abs(mean) if sd is not None and mean else None,
        "ci": list(ci) if ci is not None else None,
    }


def estimates(per_repeat: Sequence[Mapping[str, Any]], level: float = CI_LEVEL) -> dict[str, Any]:
    """The point's ``repeats`` block: ``{n, ci_level, test, metrics: {name: {values, mean, sd, cv, ci}}}``
    over the per-repeat points (in repeat order). A metric missing from a repeat (every request failed)
    is estimated from the repeats that have it; ``values`` then has fewer entries than ``n``."""
    rows = [run_values(p) for p in per_repeat]
    names = list(dict.fromkeys(k for r in rows for k in r))
    metrics = {k: _estimate([r[k] for r in rows if k in r], level) for k in names}
    return {
        "n": len(per_repeat),
        "ci_level": level,
        "interval": "Student t of the mean of the per-repeat values",
        "metrics": metrics,
    }


def merged_self_check(per_repeat: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The pooled point's self-check: the worst repeat's (largest event-loop lag), the mean achieved
    concurrency and requests in flight, client-bound when any repeat was."""
    checks = [p.get("self_check") or {} for p in per_repeat]
    if not checks:
        return {}
    worst = dict(max(checks, key=lambda c: _num(c.get("loop_lag_p99_s")) or 0.0))
    for key in ("achieved_concurrency", "in_flight_mean"):
        values = [v for c in checks if (v := _num(c.get(key))) is not None]
        if values:
            worst[key] = sum(values) / len(values)
    worst["client_bound"] = any(c.get("client_bound") is True for c in checks)
    return worst


def _within_ci_rel(per_repeat: Sequence[Mapping[str, Any]], block: str) -> float | None:
    """Mean half-width of one repeat's per-request p50 interval, relative to its p50."""
    rel = []
    for p in per_repeat:
        b = p.get(block) or {}
        ci, mid = b.get("p50_ci"), _num(b.get("p50"))
        if isinstance(ci, Sequence) and len(ci) == 2 and mid and all(_num(x) is not None for x in ci):
            rel.append((float(ci[1]) - float(ci[0])) / 2 / abs(mid))
    return sum(rel) / len(rel) if rel else None


def pool(pooled: dict[str, Any], per_repeat: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The point the summary shows for a level run in several repeats: ``pooled`` (summarize_level over
    every repeat's records: the per-request distributions) with its throughputs replaced by their mean
    over repeats (:data:`THROUGHPUTS`) and the ``repeats`` block of :func:`estimates`, plus ``spread``:
    per headline metric, the between-repeat CV beside one repeat's within-run CI half-width."""
    out = dict(pooled)
    for key in THROUGHPUTS:
        vals = [v for p in per_repeat if (v := _num(p.get(key))) is not None]
        out[key] = sum(vals) / len(vals) if vals else None
    block = estimates(per_repeat)
    spread: dict[str, dict[str, float | None]] = {}
    for name, _ in _HEADLINE:
        est = block["metrics"].get(name)
        within = _within_ci_rel(per_repeat, name.rsplit("_", 1)[0]) if name != "output_tps" else None
        spread[name] = {"between_cv": est["cv"] if est else None, "within_ci_rel": within}
    block["spread"] = spread
    out["repeats"] = block
    return out


def run_block(
    runs: Sequence[Mapping[str, Any]], points: Sequence[Mapping[str, Any]], *, count: int, cooldown_s: float
) -> dict[str, Any]:
    """The summary's top-level ``repeats`` block: how the repeats ran (order, cool-down, each repeat's
    start/end, prompt nonce, requests, failures) and ``differences``: per point, each headline metric's
    range across repeats, called out when the run-to-run spread is wider than one run's own interval."""
    differences: list[str] = []
    for p in points:
        rep = p.get("repeats") or {}
        label = load_label(_int(p.get("concurrency")), _num(p.get("rate")), p.get("arrival"), level=0)
        for name, title in _HEADLINE:
            est = (rep.get("metrics") or {}).get(name)
            if not est or len(est["values"]) < 2:
                continue
            lo, hi = min(est["values"]), max(est["values"])
            cv = est["cv"] or 0.0
            within = ((rep.get("spread") or {}).get(name) or {}).get("within_ci_rel")
            text = f"{label} {title}: {_fmt(name, lo)} to {_fmt(name, hi)} across repeats (CV {cv:.1%})"
            if within is not None and cv > within:
                text += f", wider than one run's per-request 95% CI (±{within:.1%})"
            differences.append(text)
    return {
        "count": count,
        "order": "the whole plan per repeat (every level in order), then the cool-down, then the next",
        "cooldown_s": cooldown_s,
        "runs": [dict(r) for r in runs],
        "differences": differences,
    }


def _int(v: object) -> int | None:
    f = _num(v)
    return int(f) if f is not None else None


def _fmt(name: str, v: float) -> str:
    if name.endswith("_s") or "_s_" in name:
        return f"{v * 1000:.1f} ms"
    return f"{v:,.1f}"
