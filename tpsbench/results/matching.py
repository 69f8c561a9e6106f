"""What makes two runs, and two of their load points, comparable: the one rule shared by ``tpsbench gate``
and ``tpsbench compare``.

- **Load points** are matched by their load, never by position: :func:`point_key` is the concurrency, or
  the rate (rounded to 9 significant decimals, so the same rate written by two runs matches) and the
  arrival process. A load that appears twice in one run is matched by occurrence (``c=4 #2``). Labels come
  from :func:`tpsbench.core.loadlabel.load_label`.
- **Runs** are comparable when they measured the same thing (:func:`comparability_reasons`): the same
  model, API and workload (mean input and output tokens, prompts file, dataset, sessions,
  ``ignore_eos``). A field is compared only when both summaries carry it, so older or hand-made summaries
  still compare; numbers are equal
  within a relative 1e-6. The workload's seed is not compared: other prompts of the same lengths are the
  same workload. (Before: the gate also compared ``ignore_eos`` by exact equality of token blocks and the
  report's compare skipped ``ignore_eos``; one rule now does both.)
- **Values** of a gated metric from a summary point: :func:`summary_value`; the median's confidence
  interval: :func:`summary_ci`; two intervals overlap by :func:`ci_overlap` (asv's rule: non-overlapping
  95% intervals are a significant difference, about p < 0.006).

    >>> from tpsbench.results.views import Run
    >>> a = Run.from_summary({"schema": 1, "run": {"model": "m", "workload": {"output_tokens": 200}},
    ...                       "points": [{"level": 0, "concurrency": 4}]})
    >>> b = Run.from_summary({"schema": 1, "run": {"model": "m", "workload": {"output_tokens": 100}},
    ...                       "points": []})
    >>> comparability_reasons(a, b)
    ['workload ISL/OSL unknown/100 vs unknown/200 tokens']
    >>> list(keyed_points(a.points))
    [('concurrency', 4)]
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from tpsbench.core.metricspec import MetricSpec
from tpsbench.results.summary import POINT_METRICS
from tpsbench.results.views import Point, Run, token_mean

__all__ = [
    "ci_overlap",
    "comparability_reasons",
    "keyed_points",
    "point_key",
    "summary_ci",
    "summary_n",
    "summary_value",
]

Key = tuple[Any, ...]
_BLOCKS = frozenset(POINT_METRICS)


def point_key(p: Point) -> Key:
    """What makes two runs' points the same load: ``("concurrency", c)``, ``("rate", r, arrival)``,
    ``("trace", file and speed-up)`` or ``("level", i)`` when the point states no load."""
    trace = p.raw.get("trace")
    if trace:
        return ("trace", str(trace))
    if p.concurrency is not None:
        return ("concurrency", p.concurrency)
    if p.rate is not None:
        return ("rate", round(p.rate, 9), p.arrival or "poisson")
    return ("level", p.level)


def keyed_points(points: Iterable[Point]) -> dict[Key, tuple[str, Point]]:
    """``{key: (label, point)}`` in the points' order; a load seen again gets ``(*key, k)``, ``label #k``."""
    out: dict[Key, tuple[str, Point]] = {}
    seen: dict[Key, int] = {}
    for p in points:
        key, label = point_key(p), p.label
        seen[key] = seen.get(key, 0) + 1
        if seen[key] > 1:
            key, label = (*key, seen[key]), f"{label} #{seen[key]}"
        out[key] = (label, p)
    return out


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, int | float) and isinstance(b, int | float) and not isinstance(a, bool | None):
        return math.isclose(a, b, rel_tol=1e-6)
    return bool(a == b)


def _tokens(v: float | None) -> str:
    return "unknown" if v is None else f"{v:,.0f}"


def comparability_reasons(base: Run, other: Run) -> list[str]:
    """Why ``other`` does not measure what ``base`` measured (empty: comparable); each reason reads
    ``<what> <other's> vs <base's>``."""
    why: list[str] = []
    wb, wo = base.workload, other.workload
    isl_osl = [k for k in ("input_tokens", "output_tokens") if k in wb and k in wo]
    if any(not _same(token_mean(wb[k]), token_mean(wo[k])) for k in isl_osl):
        (bi, bo), (oi, oo) = base.isl_osl, other.isl_osl
        why.append(f"workload ISL/OSL {_tokens(oi)}/{_tokens(oo)} vs {_tokens(bi)}/{_tokens(bo)} tokens")
    rb, ro = base.info, other.info
    for key, title in (("model", "model"), ("api", "API")):
        if key in rb and key in ro and not _same(rb[key], ro[key]):
            why.append(f"{title} {ro[key]!r} vs {rb[key]!r}")
    for key in ("prompts_file", "dataset", "sessions", "ignore_eos"):
        if key in wb and key in wo and not _same(wb[key], wo[key]):
            why.append(f"{key.replace('_', ' ')} {wo[key]!r} vs {wb[key]!r}")
    return why


def summary_value(p: Point, spec: MetricSpec) -> float | None:
    """The summary's value of a gated metric at a point: a block's stat, its inverse (``tps_user_mlperf``
    = 1 / ``tpot_inferencex_s`` p90), output TPS, the point's ``tps_user_vllm`` or the error rate."""
    if spec.kind == "output_tps":
        return p.output_tps
    if spec.kind == "per_user_throughput":
        return p.tps_user_vllm
    if spec.kind == "error_rate":
        return p.error_rate
    v = p.stat(spec.block, spec.stat) if spec.block in _BLOCKS else None
    if spec.kind == "inverse_quantile":
        return 1 / v if v else None
    return v


def summary_n(p: Point, spec: MetricSpec) -> int | None:
    """How many samples the summary's value of a (inverse) quantile metric rests on."""
    d = p.dist(spec.block) if spec.block in _BLOCKS else None
    return d.n if d is not None else None


def summary_ci(p: Point, spec: MetricSpec) -> tuple[float, float] | None:
    """The summary's confidence interval of a quantile metric's stat (summaries carry the median's), or
    of an inverse quantile (the stat's interval inverted)."""
    quantile = spec.kind in ("quantile", "inverse_quantile")
    d = p.dist(spec.block) if quantile and spec.block in _BLOCKS else None
    ci = d.ci(spec.stat) if d is not None else None
    if ci is None or spec.kind == "quantile":
        return ci
    return (1 / ci[1], 1 / ci[0]) if ci[0] > 0 else None


def ci_overlap(a: tuple[float, float] | None, b: tuple[float, float] | None) -> bool | None:
    """Whether two intervals overlap; None when either is missing."""
    if a is None or b is None:
        return None
    return a[0] <= b[1] and b[0] <= a[1]
