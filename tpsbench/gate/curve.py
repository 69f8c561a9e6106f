"""Curve-level verdicts: a regression that moves the whole throughput-interactivity curve, stated as one
number on the curve ("at 633 TPS/user this build serves 8.1% fewer tokens per GPU").

Each run's curve is its load points as ``(x, y)`` = (TPS/user p50, output TPS per GPU; output TPS when
the run states no GPU count), joined by straight lines in x. For each baseline point two rows:

- ``curve_tps_per_gpu``: the candidate's y read at the baseline's x (linear interpolation between the two
  candidate points around it), against the baseline's y;
- ``curve_tps_user``: the candidate's x read at the baseline's y, against the baseline's x.

A baseline point outside the candidate's curve (beyond 2% of its span on either end) is not judged
there: the candidate did not measure that part of the curve. Change: relative, percent; threshold: its own
(``curve_tps_per_gpu`` / ``curve_tps_user``, default 5%).

Significance:

- **repeats** (both runs with >= 2 repeats, every point with a value per repeat): each candidate repeat
  is a curve of its own; the values it gives at the baseline's point (one per repeat) are compared with
  the baseline point's per-repeat values by Welch's t test (``test = "welch-t"``), the interval being
  Welch's interval of the difference of means.
- **one run**: a z test by the delta method on the Little's-law curve. Each point's y is C x R,
  R = sum(tokens) / sum(latency) over its requests (the output TPS row's estimator, free of the window's
  drain noise; :func:`throughput_samples`), with the standard error of ``Var log R``; its x has the
  standard error of its TPS/user median (its 95% bootstrap CI width / 3.92). The value read on the
  candidate's curve between points i and i+1 (weight w, slope m) has variance at most
  ``(1-w)^2 (sy_i + |m| sx_i)^2 + w^2 (sy_{i+1} + |m| sx_{i+1})^2`` (a bound that holds whatever the
  correlation of a point's x and y errors: a slower run is slower in both), the baseline's value
  ``(sy + |m| sx)^2`` (its own x is uncertain too); z = difference / sqrt(sum of both), two-sided
  normal p (``test = "curve-z"``). Without records (summary only) the y errors are unknown: not tested.

    >>> xs, ys = [1000.0, 600.0, 200.0], [120.0, 600.0, 1200.0]
    >>> at(xs, ys, 800.0)
    360.0
    >>> at(xs, ys, 2000.0) is None
    True
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from tpsbench.results import stats
from tpsbench.results.views import Point

__all__ = [
    "EDGE",
    "CurveCheck",
    "CurvePoint",
    "at",
    "curve_checks",
    "curve_points",
    "per_gpu_of",
    "throughput_samples",
]

EDGE = 0.02  # a baseline point may lie this fraction of the candidate's span beyond its ends
_Z95 = 1.959963984540054  # a 95% interval is +-1.96 standard errors
Floats = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class CurvePoint:
    """One point of a run's curve: x (TPS/user p50), its CI, y (output TPS per GPU) and, with repeats,
    each repeat's x and y."""

    label: str
    x: float
    y: float
    x_ci: tuple[float, float] | None
    xs: tuple[float, ...] = ()
    ys: tuple[float, ...] = ()
    sx: float | None = None  # standard error of x (from its 95% CI)
    sy: float | None = None  # standard error of y (Little's-law ratio over the point's requests)


@dataclass(frozen=True, slots=True)
class CurveCheck:
    """One curve row before the gate's verdict: where (``point``), which metric, the values, the test."""

    point: str
    metric: str
    baseline: float | None
    candidate: float | None
    n_baseline: int | None
    n_candidate: int | None
    test: str  # "welch-t", "curve-z" or "none"
    p_value: float | None = None
    effect_sign: float = 0.0
    interval: tuple[float, float] | None = None  # repeats: Welch interval of the difference of means
    sentence: str = ""


def at(xs: Sequence[float], ys: Sequence[float], x: float, edge: float = EDGE) -> float | None:
    """``y`` of the polyline through ``(xs, ys)`` (sorted by x here) at ``x``; linear beyond the ends up to
    ``edge`` of the span; None further out or with fewer than two points."""
    if len(xs) < 2:
        return None
    order = np.argsort(xs)
    sx, sy = np.asarray(xs, dtype=float)[order], np.asarray(ys, dtype=float)[order]
    span = float(sx[-1] - sx[0])
    if span <= 0 or x < sx[0] - edge * span or x > sx[-1] + edge * span:
        return None
    if x < sx[0]:
        i = 0
    elif x > sx[-1]:
        i = len(sx) - 2
    else:
        return float(np.interp(x, sx, sy))
    slope = (sy[i + 1] - sy[i]) / (sx[i + 1] - sx[i])
    return float(sy[i] + slope * (x - sx[i]))


def per_gpu_of(points: Sequence[tuple[str, Point]]) -> bool:
    """Whether every point states its output TPS per GPU."""
    return all(p.output_tps_per_gpu is not None for _, p in points)


def curve_points(
    points: Sequence[tuple[str, Point]], per_gpu: bool, min_samples: int = 8
) -> list[CurvePoint]:
    """A run's curve from its ``(label, point)`` pairs (points of at least ``min_samples`` successful
    requests); y per GPU or the total."""
    out = []
    for label, p in points:
        if (p.ok if p.ok is not None else len(p.ok_records)) < min_samples:
            continue
        d, y = p.dist("tps_user"), (p.output_tps_per_gpu if per_gpu else p.output_tps)
        ex, ey = (
            p.repeat_estimate("tps_user_p50"),
            p.repeat_estimate("output_tps_per_gpu" if per_gpu else "output_tps"),
        )
        ci = d.p50_ci if d is not None else None
        sx = (ci[1] - ci[0]) / (2 * _Z95) if ci is not None else None
        if ex is not None and ey is not None and len(ex.values) == len(ey.values) >= 2:
            out.append(CurvePoint(label, ex.mean, ey.mean, ci, ex.values, ey.values))
        elif d is not None and d.p50 is not None and y is not None:
            y, sy = _little(p, y)
            out.append(CurvePoint(label, d.p50, y, ci, sx=sx, sy=sy))
    return out


def throughput_samples(p: Point) -> tuple[Floats, Floats]:
    """(output tokens, latency s) of each measured request of a point but ``cancelled`` ones; failed
    requests count 0 tokens, as in the summary's output_tps, but their latency (they occupied a user)."""
    tokens, latency = [], []
    for r in p.counted_records() or ():
        tokens.append(float(r.output_tokens or 0) if r.ok else 0.0)
        latency.append((r.end_ns - r.send_ns) / 1e9)
    return np.asarray(tokens, dtype=np.float64), np.asarray(latency, dtype=np.float64)


def _little(p: Point, y: float) -> tuple[float, float | None]:
    """A closed-loop point's y by Little's law, C x R (R = sum(tokens) / sum(latency) over its requests,
    scaled like ``y``: per GPU or not), and its standard error; ``(y, None)`` without records or a set
    concurrency. The output TPS row tests the same estimator: it is free of the window's drain noise
    (the last, partly idle wave), which the summary's output TPS carries and its requests cannot show."""
    if p.records is None or p.concurrency is None or not p.output_tps:
        return y, None
    samples = throughput_samples(p)
    lr = stats.log_ratio(*samples) if len(samples[0]) >= 2 else None
    if lr is None:
        return y, None
    little = p.concurrency * math.exp(lr[0]) * (y / p.output_tps)
    return little, little * math.sqrt(lr[1])


def _z_read(cand: Sequence[CurvePoint], where: float, inverse: bool) -> tuple[float, float, float] | None:
    """(value, its variance, slope) of the candidate's curve read at ``where`` (x, or y when
    ``inverse``), by the module's delta-method formula; None outside the curve or without errors."""
    pts = sorted(cand, key=lambda c: c.y if inverse else c.x)
    u = [c.y if inverse else c.x for c in pts]
    if len(u) < 2 or any(c.sx is None or c.sy is None for c in pts):
        return None
    span = u[-1] - u[0]
    if span <= 0 or where < u[0] - EDGE * span or where > u[-1] + EDGE * span:
        return None
    i = min(max(int(np.searchsorted(u, where)) - 1, 0), len(u) - 2)
    a, b = pts[i], pts[i + 1]
    ua, ub = u[i], u[i + 1]
    va, vb = (a.x, b.x) if inverse else (a.y, b.y)
    su = (a.sy, b.sy) if inverse else (a.sx, b.sx)
    sv = (a.sx, b.sx) if inverse else (a.sy, b.sy)
    w = (where - ua) / (ub - ua)
    m = (vb - va) / (ub - ua)
    value = va + m * (where - ua)
    assert su[0] is not None and su[1] is not None and sv[0] is not None and sv[1] is not None
    # x and y errors of one point are correlated (a slower run is slower in both): (sv + |m| su)^2 bounds
    # var(dv - m du) whatever the correlation
    var = (1 - w) ** 2 * (sv[0] + abs(m) * su[0]) ** 2 + w**2 * (sv[1] + abs(m) * su[1]) ** 2
    return value, var, m


def _repeat_values(cand: Sequence[CurvePoint], where: float, inverse: bool) -> list[float]:
    n = {len(c.xs) for c in cand}
    if len(n) != 1 or min(n) < 2:
        return []
    out = []
    for k in range(n.pop()):
        xs, ys = [c.xs[k] for c in cand], [c.ys[k] for c in cand]
        v = at(ys, xs, where) if inverse else at(xs, ys, where)
        if v is not None:
            out.append(v)
    return out


def _check(b: CurvePoint, cand: Sequence[CurvePoint], *, inverse: bool, per_gpu: bool) -> CurveCheck:
    unit = "tokens per GPU" if per_gpu else "tokens"
    if inverse:
        point, metric, where, base_value = f"@{b.y:,.0f}/GPU", "curve_tps_user", b.y, b.x
        base_values = b.xs
    else:
        point, metric, where, base_value = f"@{b.x:,.0f}/u", "curve_tps_per_gpu", b.x, b.y
        base_values = b.ys
    xs, ys = [c.x for c in cand], [c.y for c in cand]
    value = at(ys, xs, where) if inverse else at(xs, ys, where)
    if value is None:
        return CurveCheck(point, metric, base_value, None, None, None, "none")
    change = (value / base_value - 1) * 100 if base_value else 0.0
    if inverse:
        sentence = (
            f"at {b.y:,.0f} tok/s {'per GPU' if per_gpu else 'output'} this build gives each user "
            f"{abs(change):.1f}% {'more' if change >= 0 else 'less'} speed "
            f"({value:,.0f} vs {b.x:,.0f} TPS/user)"
        )
    else:
        sentence = (
            f"at {b.x:,.0f} TPS/user this build serves {abs(change):.1f}% "
            f"{'more' if change >= 0 else 'fewer'} {unit} ({value:,.0f} vs {b.y:,.0f} tok/s"
            f"{'/GPU' if per_gpu else ''})"
        )
    cand_values = _repeat_values(cand, where, inverse)
    if len(base_values) >= 2 and len(cand_values) >= 2:
        tested = stats.welch_t(base_values, cand_values)
        diff = stats.welch_interval(base_values, cand_values)
        assert tested is not None
        mean_c = sum(cand_values) / len(cand_values)
        return CurveCheck(
            point, metric, base_value, mean_c, len(base_values), len(cand_values), "welch-t",
            tested[0], tested[1], interval=diff, sentence=sentence,
        )  # fmt: skip
    read = _z_read(cand, where, inverse)
    if read is None or b.sx is None or b.sy is None:
        return CurveCheck(point, metric, base_value, value, 1, 1, "none", sentence=sentence)
    _, var_c, m = read
    var_b = ((b.sx + b.sy / abs(m)) ** 2 if m else math.inf) if inverse else (b.sy + abs(m) * b.sx) ** 2
    gap, var = value - base_value, var_c + var_b
    p = float(math.erfc(abs(gap) / math.sqrt(2 * var))) if var > 0 else (1.0 if gap == 0 else 0.0)
    return CurveCheck(
        point, metric, base_value, value, 1, 1, "curve-z", p, math.copysign(1.0, gap) if gap else 0.0,
        sentence=sentence,
    )  # fmt: skip


def curve_checks(
    base: Sequence[tuple[str, Point]],
    cand: Sequence[tuple[str, Point]],
    metrics: Sequence[str],
    *,
    min_samples: int = 8,
) -> tuple[list[CurveCheck], list[str]]:
    """The curve rows (``metrics`` among ``curve_tps_per_gpu``, ``curve_tps_user``) for every baseline
    point, and warnings. Empty when either run has fewer than two usable points; a point of fewer than
    ``min_samples`` successful requests is never tested (one run) and takes no part."""
    per_gpu = per_gpu_of(base) and per_gpu_of(cand)  # like with like: per GPU only when both say
    bc, cc = curve_points(base, per_gpu, min_samples), curve_points(cand, per_gpu, min_samples)
    if len(bc) < 2 or len(cc) < 2:
        return [], ["curve verdict skipped: it needs two or more load points with TPS/user and output TPS"]
    out = []
    for b in bc:
        for m in metrics:
            out.append(_check(b, cc, inverse=m == "curve_tps_user", per_gpu=per_gpu))
    return out, []
