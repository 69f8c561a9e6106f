"""The regression gate: does a candidate run make users wait longer than a baseline run?

    >>> result = evaluate("results/baseline", "results/candidate/run-1")  # doctest: +SKIP
    >>> result.exit_code, [r.metric for r in result.regressions]  # doctest: +SKIP
    (1, ['tps_user_p50'])

Exit codes (the contract CI relies on, also in docs/ci.md):

- ``0`` pass: no row regressed (rows may be improved, unchanged, large-but-not-significant or not comparable).
- ``1`` at least one row regressed.
- ``2`` not comparable or bad input: a missing or unreadable file (the message names it), an unknown
  threshold metric, runs of a different model, API or workload (input/output tokens, prompts file,
  ignore_eos), or no load point in common. No row is judged then.

Inputs. The baseline and the candidate are each a run directory (``summary.json`` and, if present,
``requests.jsonl``) or a ``summary.json`` file alone. Load points are matched by their load (concurrency,
or rate and arrival), never by position; a point found in one run only gives ``not_comparable`` rows.
Samples are the measured requests of a point (``warmup`` excluded) that succeeded (``error`` is null);
error rates count every measured request except ``cancelled`` ones (an interrupted run is not the
server's fault). When both runs have ``requests.jsonl`` the values are computed from those samples;
otherwise both sides use their summary values, so one row always compares like with like.

Rows. By default, per load point: TPS/user p50 and p10 (higher is better), TTFT p50 and p99 (lower is
better), output TPS (higher) and error rate (lower). Any ``<metric>_<pNN>`` of ``ttft_s``, ``tps_user``,
``tpot_s``, ``e2e_s``, ``e2e_tps`` (pNN in p1, p5, p10, p50, p90, p95, p99) given a threshold is added.

Statistics, per row (x = baseline samples, y = candidate samples):

- change: relative, ``(value_c / value_b - 1) * 100`` percent; for the error rate, the difference in
  percentage points. ``Row.worse`` re-signs it so that positive always means worse for users.
- noise floor (``threshold``, percent; percentage points for ``error_rate``): 5 for medians, 10 for other
  percentiles and output TPS, 1 pp for the error rate; overridable per metric (``{"ttft_s_p99": 15}``), by
  the candidate's ``scenario.yaml`` ``gate.thresholds`` and then by the ``thresholds`` argument.
- p50: two-sided Mann-Whitney U test on x and y (a rank test: robust to the heavy tails of latencies).
- other percentiles: seeded percentile bootstrap of ``Q_q(y) - Q_q(x)`` (numpy's linear quantile). The
  p-value inverts the interval: ``p = 2 * (min(#{d* <= 0}, #{d* >= 0}) + 1) / (B + 1)``, the smallest
  alpha whose (1 - alpha) interval excludes 0. A tail percentile is tested only when at least 1.5 samples
  lie beyond it on each side (n * min(q, 1 - q) >= 1.5: n >= 150 for p99); below that the percentile
  bootstrap is anti-conservative (measured: 11% false positives at alpha 0.05 for p99 with n = 50).
- error rate: two-sided Fisher exact test on the 2x2 table (errors, successes) x (baseline, candidate).
- output TPS is one number per run (tokens / measured window), so the change is that number's, and the
  test is on what it estimates: by Little's law a closed loop of C users delivers C * R tokens/s with
  R = sum(tokens_i) / sum(latency_i) over the measured requests (failed ones add latency, not tokens).
  Delta method: Var(log R) ~= var((t_i - R d_i) / mean(d)) / (n R^2); z = (log R_c - log R_b) /
  sqrt(V_b + V_c), two-sided normal p (``test = "ratio"``). R is free of the window's drain noise (the
  last, partly idle wave): judged on the window alone, 1.7% of the output TPS rows of identical
  wide-spread synthetic runs moved by more than 10%.
- summary-only comparisons: medians are significant when the two summaries' ``p50_ci`` intervals do not
  overlap (asv's rule; conservative, about p < 0.006 for two 95% intervals); other percentiles (no
  interval in the summary) and output TPS (no samples) are reported as not tested. Error counts are in
  the summary, so the Fisher test still runs.
- multiplicity: one gate tests many rows, so the p-values of all tested rows are Holm-adjusted
  (family-wise error rate <= alpha for the whole run, under any dependence between rows). Without it,
  3 load points x 6 rows at alpha = 0.05 failed 12% of identical synthetic runs; with it, 0-1%
  (benchmarks/gate_power.py), while 10% lower TPS/user or 20% higher TTFT is still caught in >= 98%.
- client timing noise: a TTFT or E2E latency is one interval stamped by the client, so a change smaller
  than the client's own event-loop lag p99 at that point (``self_check.loop_lag_p99_s``, the larger of
  the two runs) cannot be told from the client falling behind, and is ``unchanged`` whatever its p-value.
  (Measured: two identical reference runs on a loaded 2-core machine differed by +9.4 ms in TTFT p99 at
  c=4, p = 0.01, while the candidate's client lagged 11.2 ms at p99 against 3.0 ms.)
- fewer than ``min_samples`` (default 8) samples on either side: never significant, never a failure.
- a significant test counts only when its effect points the same way as the change (a rank test can,
  rarely, disagree with the median).

Verdict: ``regressed`` = worse by more than the threshold AND significant at alpha (after Holm);
``improved`` symmetrically; ``large_not_significant`` = beyond the threshold either way but not
significant; ``unchanged`` = within the threshold or the client's timing noise (significant or not);
``not_comparable`` = a value is missing on one side.
"""

from __future__ import annotations

import json
import math
import zlib
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal
from xml.etree import ElementTree as ET

import numpy as np
import numpy.typing as npt
from rich.markup import escape
from rich.table import Table
from scipy import stats

__all__ = [
    "DEFAULT_METRICS",
    "EXIT_NOT_COMPARABLE",
    "EXIT_PASS",
    "EXIT_REGRESSION",
    "GateInputError",
    "GateResult",
    "Method",
    "MetricSpec",
    "Row",
    "RunData",
    "Verdict",
    "bootstrap_quantile_diff",
    "compare",
    "evaluate",
    "holm",
    "load_run",
    "metric_spec",
    "parse_thresholds",
    "rich_table",
    "to_junit",
    "to_markdown",
]

EXIT_PASS = 0
EXIT_REGRESSION = 1
EXIT_NOT_COMPARABLE = 2

SUPPORTED_SCHEMA = 1
DEFAULT_METRICS = ("tps_user_p50", "tps_user_p10", "ttft_s_p50", "ttft_s_p99", "output_tps", "error_rate")
TAIL_MIN_BEYOND = 1.5  # samples beyond a tail percentile needed to bootstrap it (see module docstring)

Floats = npt.NDArray[np.float64]
Better = Literal["higher", "lower"]


class Verdict(StrEnum):
    """A row's outcome; only ``regressed`` fails the gate."""

    IMPROVED = "improved"
    REGRESSED = "regressed"
    UNCHANGED = "unchanged"
    LARGE_NOT_SIGNIFICANT = "large_not_significant"
    NOT_COMPARABLE = "not_comparable"


class Method(StrEnum):
    """Which significance test a row used."""

    MANN_WHITNEY = "mann-whitney"
    BOOTSTRAP = "bootstrap"
    FISHER = "fisher"
    CI_OVERLAP = "ci-overlap"  # summary-only: do the two p50_ci intervals overlap?
    RATIO = "ratio"  # output TPS: z test on sum(tokens) / sum(latency) (Little's law), delta method
    NONE = "none"  # not tested (too few samples, no samples, no interval): never significant


class GateInputError(Exception):
    """A gate input is missing or malformed; the message names the file."""


# --------------------------------------------------------------------------------------------------
# Metrics


@dataclass(frozen=True, slots=True)
class MetricSpec:
    """One gated metric: ``name`` as in thresholds (``ttft_s_p99``), how to read it and which way is good."""

    name: str
    title: str
    better: Better
    kind: Literal["quantile", "output_tps", "error_rate"]
    default_threshold: float  # percent (percentage points for the error rate)
    unit: str
    block: str = ""  # summary block and requests.jsonl field of a quantile metric
    stat: str = ""  # p50, p99, ...
    q: float = 0.5


_SAMPLE_METRICS: dict[str, tuple[str, Better, str]] = {
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
_QUANTILES = {"p1": 0.01, "p5": 0.05, "p10": 0.10, "p50": 0.50, "p90": 0.90, "p95": 0.95, "p99": 0.99}


def metric_spec(name: str) -> MetricSpec:
    """The spec of a metric name; raises ``ValueError`` naming the known metrics."""
    if name == "output_tps":
        return MetricSpec(name, "output TPS", "higher", "output_tps", 10.0, "tok/s")
    if name == "error_rate":
        return MetricSpec(name, "error rate", "lower", "error_rate", 1.0, "%")
    block, _, stat = name.rpartition("_")
    if block in _SAMPLE_METRICS and stat in _QUANTILES:
        title, better, unit = _SAMPLE_METRICS[block]
        q = _QUANTILES[stat]
        floor = 5.0 if stat == "p50" else 10.0  # tails are noisier than medians
        return MetricSpec(name, f"{title} {stat}", better, "quantile", floor, unit, block, stat, q)
    raise ValueError(
        f"unknown metric {name!r}: use output_tps, error_rate or <metric>_<stat> with metric in "
        f"{', '.join(_SAMPLE_METRICS)} and stat in {', '.join(_QUANTILES)}"
    )


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
    return _check_thresholds(out, "--threshold")


def _check_thresholds(thresholds: Mapping[str, Any], where: str) -> dict[str, float]:
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


# --------------------------------------------------------------------------------------------------
# Statistics (pure)


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm step-down adjusted p-values (family-wise error control under any dependence)."""
    m = len(pvalues)
    order = sorted(range(m), key=lambda i: pvalues[i])
    adjusted = [1.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))  # monotone in rank
        adjusted[i] = running
    return adjusted


def _bootstrap_quantile(xs_sorted: Floats, q: float, resamples: int, rng: np.random.Generator) -> Floats:
    """``resamples`` draws of numpy's linear ``quantile(resample, q)``, resample = n draws with replacement.

    Sampled exactly in O(B) rather than O(nB): resampled index i = floor(n U) with U uniform, so the k-th
    smallest resampled value is ``xs_sorted[floor(n U_(k))]`` with U_(k) ~ Beta(k, n + 1 - k), and the
    next order statistic is U_(k) + (1 - U_(k)) * Beta(1, n - k) (the least of the n - k uniforms above).
    """
    n = len(xs_sorted)
    h = (n - 1) * q
    lo = math.floor(h)
    frac = h - lo
    u1 = rng.beta(lo + 1, n - lo, size=resamples)
    q1 = xs_sorted[np.minimum((u1 * n).astype(np.intp), n - 1)]
    if frac == 0.0 or lo + 1 >= n:
        return q1
    u2 = u1 + (1.0 - u1) * rng.beta(1, n - lo - 1, size=resamples)
    q2 = xs_sorted[np.minimum((u2 * n).astype(np.intp), n - 1)]
    return q1 + frac * (q2 - q1)


def bootstrap_quantile_diff(
    x: Floats, y: Floats, q: float, *, alpha: float, resamples: int, rng: np.random.Generator
) -> tuple[float, float, float]:
    """Percentile-bootstrap ``(lo, hi, p)`` of ``quantile(y, q) - quantile(x, q)``.

    (lo, hi) is the (1 - alpha) interval; ``p = 2 (min(#{d* <= 0}, #{d* >= 0}) + 1) / (B + 1)`` (capped at 1)
    is the smallest level whose interval excludes 0, so ``p < alpha`` iff the interval excludes 0 (up to B).
    """
    d = _bootstrap_quantile(np.sort(y), q, resamples, rng) - _bootstrap_quantile(
        np.sort(x), q, resamples, rng
    )
    lo, hi = np.quantile(d, [alpha / 2, 1 - alpha / 2])
    tail = min(int(np.count_nonzero(d <= 0)), int(np.count_nonzero(d >= 0)))
    return float(lo), float(hi), min(1.0, 2 * (tail + 1) / (resamples + 1))


def _mann_whitney(x: Floats, y: Floats) -> tuple[float, float]:
    """Two-sided Mann-Whitney U ``(p, sign)``; sign > 0 when y tends to be larger than x."""
    res = stats.mannwhitneyu(x, y, alternative="two-sided")
    p = float(res.pvalue)
    sign = float(np.sign(len(x) * len(y) / 2 - float(res.statistic)))  # statistic = U of x
    return (1.0 if math.isnan(p) else p), sign  # nan when every value is tied: no evidence


def _log_ratio(tokens: Floats, latency: Floats) -> tuple[float, float] | None:
    """``(log R, Var log R)`` of R = sum(tokens) / sum(latency), delta method; None if R is 0 or undefined."""
    n, mean_d = len(tokens), float(latency.mean())
    r = float(tokens.sum() / latency.sum()) if mean_d > 0 else 0.0
    if r <= 0:
        return None
    resid = (tokens - r * latency) / mean_d
    return math.log(r), float(resid.var(ddof=1)) / n / r**2


def _ratio_z(b: tuple[Floats, Floats], c: tuple[Floats, Floats]) -> tuple[float, float] | None:
    """Two-sided z test of log R_c - log R_b: ``(p, difference)``; None if a ratio is undefined."""
    lb, lc = _log_ratio(*b), _log_ratio(*c)
    if lb is None or lc is None:
        return None
    diff, var = lc[0] - lb[0], lb[1] + lc[1]
    if var == 0:
        return (1.0 if diff == 0 else 0.0), diff
    return float(2 * stats.norm.sf(abs(diff) / math.sqrt(var))), diff


def _fisher_p(errors_b: int, n_b: int, errors_c: int, n_c: int) -> float:
    table = np.array([[errors_b, n_b - errors_b], [errors_c, n_c - errors_c]], dtype=np.int64)
    p = float(stats.fisher_exact(table, alternative="two-sided").pvalue)
    return 1.0 if math.isnan(p) else min(1.0, p)


# --------------------------------------------------------------------------------------------------
# Inputs


@dataclass(frozen=True, slots=True)
class _Point:
    key: tuple[Any, ...]
    label: str
    summary: Mapping[str, Any]
    records: tuple[Mapping[str, Any], ...] | None  # measured (non-warmup) records; None: summary only

    def samples(self, field_name: str) -> Floats:
        """Finite values of ``field_name`` over the point's successful measured requests."""
        assert self.records is not None
        vals = [
            r.get(field_name)
            for r in self.records
            if r.get("error") is None and isinstance(r.get(field_name), int | float)
        ]
        a = np.asarray(vals, dtype=np.float64)
        return a[np.isfinite(a)]

    def error_counts(self) -> tuple[int, int] | None:
        """(errors, requests) over measured requests, ``cancelled`` excluded; None if unknown."""
        if self.records is not None:
            counted = [r for r in self.records if r.get("error") != "cancelled"]
            return sum(1 for r in counted if r.get("error") is not None), len(counted)
        measured = _number(self.summary.get("measured"))
        if measured is None:
            return None
        errors = self.summary.get("errors")
        if isinstance(errors, Mapping):
            cancelled = int(_number(errors.get("cancelled")) or 0)
            k = sum(int(_number(v) or 0) for v in errors.values()) - cancelled
            return k, int(measured) - cancelled
        rate = _number(self.summary.get("error_rate"))
        return (round(rate * measured), int(measured)) if rate is not None else None

    def throughput_samples(self) -> tuple[Floats, Floats]:
        """(output tokens, latency s) of each measured request but ``cancelled`` ones; failed requests count
        0 tokens, as in the summary's output_tps, but their latency (they occupied a user)."""
        assert self.records is not None
        tokens, latency = [], []
        for r in self.records:
            send, end = r.get("send_ns"), r.get("end_ns")
            if r.get("error") == "cancelled" or not isinstance(send, int) or not isinstance(end, int):
                continue
            tokens.append((_number(r.get("output_tokens")) or 0.0) if r.get("error") is None else 0.0)
            latency.append((end - send) / 1e9)
        return np.asarray(tokens, dtype=np.float64), np.asarray(latency, dtype=np.float64)

    def measured(self) -> int | None:
        if self.records is not None:
            return len(self.records)
        m = _number(self.summary.get("measured"))
        return int(m) if m is not None else None


@dataclass(frozen=True, slots=True)
class RunData:
    """One side of the gate, loaded: its summary, its load points and (optionally) its raw records."""

    path: Path
    summary: Mapping[str, Any]
    points: tuple[_Point, ...]
    has_records: bool
    thresholds: Mapping[str, float]  # the run's scenario.yaml gate.thresholds, if read
    warnings: tuple[str, ...] = ()


def _number(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        return None
    return float(v)


def _read_json(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise GateInputError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise GateInputError(f"{path}: cannot read ({e})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise GateInputError(f"{path}: not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})") from None


def _read_records(path: Path) -> tuple[dict[int, list[Mapping[str, Any]]], list[str]]:
    """Measured records of ``requests.jsonl`` by level; a truncated last line is skipped with a warning."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise GateInputError(f"{path}: cannot read ({e})") from None
    last = max((i for i, line in enumerate(lines) if line.strip()), default=-1)
    by_level: dict[int, list[Mapping[str, Any]]] = defaultdict(list)
    warnings: list[str] = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            if i == last:  # the run was killed mid-write: the lines before are whole (flushed per line)
                warnings.append(f"{path}: last line {i + 1} is truncated; ignored")
                continue
            raise GateInputError(f"{path}: line {i + 1} is not valid JSON ({e.msg})") from None
        if (
            not isinstance(rec, dict)
            or isinstance(rec.get("level"), bool)
            or not isinstance(rec.get("level"), int)
        ):
            raise GateInputError(f"{path}: line {i + 1} is not a request record (no integer 'level')")
        if not rec.get("warmup", False):
            by_level[rec["level"]].append(rec)
    return by_level, warnings


def _read_gate_thresholds(path: Path) -> dict[str, float]:
    from ruamel.yaml import YAML  # only needed when a run carries its scenario

    try:
        data = YAML(typ="safe").load(path.read_text(encoding="utf-8"))
    except Exception as e:  # ruamel raises many unrelated classes for bad YAML
        raise GateInputError(f"{path}: cannot read the scenario ({e})") from None
    gate = data.get("gate") if isinstance(data, dict) else None
    thresholds = gate.get("thresholds") if isinstance(gate, dict) else None
    if thresholds is None:
        return {}
    if not isinstance(thresholds, dict):
        raise GateInputError(f"{path}: gate.thresholds must be a mapping of metric to percent")
    try:
        return _check_thresholds(thresholds, f"{path}: gate.thresholds")
    except ValueError as e:
        raise GateInputError(str(e)) from None


def _point_key(p: Mapping[str, Any], where: str) -> tuple[tuple[Any, ...], str]:
    c, rate = _number(p.get("concurrency")), _number(p.get("rate"))
    if c is not None:
        return ("concurrency", int(c)), f"c={int(c)}"
    if rate is not None:
        arrival = p.get("arrival") or "poisson"
        label = f"rate={rate:g}/s" + ("" if arrival == "poisson" else f" {arrival}")
        return ("rate", round(rate, 9), arrival), label  # rounded: the same rate written by two runs
    raise GateInputError(f"{where}: has neither 'concurrency' nor 'rate'")


def load_run(path: str | Path, *, read_scenario: bool = True) -> RunData:
    """Load a run directory or a ``summary.json``; raises :class:`GateInputError` naming the bad file.

    ``read_scenario``: read ``gate.thresholds`` from the run's ``scenario.yaml`` (the candidate's only).
    """
    path = Path(path)
    warnings: list[str] = []
    if path.is_dir():
        summary_path, records_path = path / "summary.json", path / "requests.jsonl"
        scenario_path: Path | None = path / "scenario.yaml"
    elif path.exists():
        summary_path, records_path, scenario_path = path, None, None
    else:
        raise GateInputError(f"{path}: no such run directory or summary.json")
    summary = _read_json(summary_path)
    if not isinstance(summary, dict) or "points" not in summary:
        raise GateInputError(f"{summary_path}: not a tpsbench summary (no 'points')")
    if summary.get("schema") != SUPPORTED_SCHEMA:
        raise GateInputError(
            f"{summary_path}: summary schema {summary.get('schema')!r} is not supported "
            f"(expected {SUPPORTED_SCHEMA})"
        )
    raw_points = summary["points"]
    if not isinstance(raw_points, list) or not all(isinstance(p, dict) for p in raw_points):
        raise GateInputError(f"{summary_path}: 'points' must be a list of objects")

    records: dict[int, list[Mapping[str, Any]]] | None = None
    if records_path is not None and records_path.exists():
        records, more = _read_records(records_path)
        warnings += more
    elif records_path is not None:
        warnings.append(f"{records_path}: not found; comparing summary values only")

    points: list[_Point] = []
    seen: dict[tuple[Any, ...], int] = defaultdict(int)
    for i, p in enumerate(raw_points):
        key, label = _point_key(p, f"{summary_path}: point {i}")
        seen[key] += 1
        if seen[key] > 1:  # the same load twice in one run: match by occurrence
            key, label = (*key, seen[key]), f"{label} #{seen[key]}"
        level = p.get("level", i)
        recs = None if records is None else tuple(records.get(level, ()))
        points.append(_Point(key, label, p, recs))

    thresholds: dict[str, float] = {}
    if read_scenario and scenario_path is not None and scenario_path.exists():
        thresholds = _read_gate_thresholds(scenario_path)
    return RunData(path, summary, tuple(points), records is not None, thresholds, tuple(warnings))


def _incomparable(b: RunData, c: RunData) -> list[str]:
    """Reasons two runs cannot be compared at all: a different model, API or workload.

    A key is compared only when both summaries carry it, so older or hand-made summaries still compare.
    The workload's seed is not compared: other prompts of the same lengths are the same workload.
    """
    rb, rc = b.summary.get("run") or {}, c.summary.get("run") or {}
    wb, wc = rb.get("workload") or {}, rc.get("workload") or {}
    checks = [("", rb, rc, k) for k in ("model", "api")] + [
        ("workload ", wb, wc, k) for k in ("input_tokens", "output_tokens", "prompts_file", "ignore_eos")
    ]
    return [
        f"different {prefix}{k}: baseline {db[k]!r}, candidate {dc[k]!r}"
        for prefix, db, dc, k in checks
        if k in db and k in dc and db[k] != dc[k]
    ]


# --------------------------------------------------------------------------------------------------
# Results


@dataclass(frozen=True, slots=True)
class Row:
    """One (load point, metric) comparison.

    ``change`` is percent relative change (percentage points for the error rate), signed as the raw
    difference candidate - baseline; ``worse`` re-signs it so positive = worse. ``p_value`` is the raw test
    p-value, ``p_adjusted`` the Holm-adjusted one the verdict uses.
    """

    point: str
    spec: MetricSpec
    baseline: float | None
    candidate: float | None
    n_baseline: int | None
    n_candidate: int | None
    change: float | None
    threshold: float
    test: Method
    p_value: float | None
    p_adjusted: float | None
    verdict: Verdict
    note: str = ""
    abs_floor: float | None = None  # client timing noise, in the metric's unit (TTFT/E2E rows only)

    @property
    def metric(self) -> str:
        return self.spec.name

    @property
    def worse(self) -> float | None:
        if self.change is None:
            return None
        return self.change if self.spec.better == "lower" else -self.change


@dataclass(frozen=True, slots=True)
class GateResult:
    """The verdict of one gate: rows, the exit code (0 pass, 1 regression, 2 not comparable / bad input)."""

    baseline: str
    candidate: str
    rows: tuple[Row, ...]
    exit_code: int
    reasons: tuple[str, ...]  # why the exit code is not 0
    warnings: tuple[str, ...] = ()
    alpha: float = 0.05
    thresholds: Mapping[str, float] = field(default_factory=dict)  # the effective noise floors

    @property
    def regressions(self) -> tuple[Row, ...]:
        return tuple(r for r in self.rows if r.verdict is Verdict.REGRESSED)

    @property
    def status(self) -> str:
        return {EXIT_PASS: "pass", EXIT_REGRESSION: "regression"}.get(self.exit_code, "not comparable")


@dataclass(slots=True)
class _Cell:
    """A row before Holm adjustment and verdict."""

    point: str
    spec: MetricSpec
    threshold: float
    baseline: float | None = None
    candidate: float | None = None
    n_baseline: int | None = None
    n_candidate: int | None = None
    change: float | None = None
    test: Method = Method.NONE
    p_value: float | None = None
    significant: bool = False  # for a test without a p-value (ci-overlap)
    effect_sign: float = 0.0  # direction of the tested effect (> 0: candidate larger); 0: same as change
    abs_floor: float | None = None  # changes within this many units are the client's timing noise
    note: str = ""


def _row_rng(seed: int, point: str, metric: str) -> np.random.Generator:
    # Keyed by the row, not its position, so adding a point or metric does not reshuffle the others.
    return np.random.default_rng([seed, zlib.crc32(f"{point}|{metric}".encode())])


def _summary_stat(p: _Point, spec: MetricSpec) -> float | None:
    block = p.summary.get(spec.block)
    return _number(block.get(spec.stat)) if isinstance(block, Mapping) else None


def _summary_n(p: _Point, spec: MetricSpec) -> int | None:
    block = p.summary.get(spec.block)
    n = _number(block.get("n")) if isinstance(block, Mapping) else None
    return int(n) if n is not None else None


def _summary_ci(p: _Point, spec: MetricSpec) -> tuple[float, float] | None:
    block = p.summary.get(spec.block)
    ci = block.get(f"{spec.stat}_ci") if isinstance(block, Mapping) else None
    if isinstance(ci, list | tuple) and len(ci) == 2:
        lo, hi = _number(ci[0]), _number(ci[1])
        if lo is not None and hi is not None:
            return lo, hi
    return None


def _relative(b: float | None, c: float | None) -> float | None:
    if b is None or c is None or b == 0:
        return None
    return (c / b - 1.0) * 100.0


_CLIENT_TIMED = frozenset({"ttft_s", "e2e_s"})  # one client-stamped interval per request


def _loop_lag(p: _Point) -> float | None:
    check = p.summary.get("self_check")
    return _number(check.get("loop_lag_p99_s")) if isinstance(check, Mapping) else None


def _quantile_cell(
    cell: _Cell, pb: _Point, pc: _Point, *, alpha: float, seed: int, min_samples: int, resamples: int
) -> None:
    spec = cell.spec
    lags = [lag for lag in (_loop_lag(pb), _loop_lag(pc)) if lag is not None]
    if spec.block in _CLIENT_TIMED and lags:
        cell.abs_floor = max(lags)
    if pb.records is not None and pc.records is not None:
        x, y = pb.samples(spec.block), pc.samples(spec.block)
        cell.n_baseline, cell.n_candidate = len(x), len(y)
        if len(x) == 0 or len(y) == 0:
            cell.note = "no successful requests on one side"
            return
        cell.baseline, cell.candidate = float(np.quantile(x, spec.q)), float(np.quantile(y, spec.q))
        cell.change = _relative(cell.baseline, cell.candidate)
        n = min(len(x), len(y))
        need = max(min_samples, math.ceil(TAIL_MIN_BEYOND / min(spec.q, 1 - spec.q)))
        if n < need:
            cell.note = f"too few samples to test ({len(x)} vs {len(y)}; {spec.stat} needs {need})"
        elif spec.stat == "p50":
            cell.test = Method.MANN_WHITNEY
            cell.p_value, cell.effect_sign = _mann_whitney(x, y)
        else:
            rng = _row_rng(seed, cell.point, spec.name)
            lo, hi, p = bootstrap_quantile_diff(x, y, spec.q, alpha=alpha, resamples=resamples, rng=rng)
            cell.test, cell.p_value = Method.BOOTSTRAP, p
            cell.note = f"{1 - alpha:.0%} CI of difference [{_fmt_delta(spec, lo)}, {_fmt_delta(spec, hi)}]"
        return
    # At least one side has no requests.jsonl: both sides use their summaries.
    cell.baseline, cell.candidate = _summary_stat(pb, spec), _summary_stat(pc, spec)
    cell.n_baseline, cell.n_candidate = _summary_n(pb, spec), _summary_n(pc, spec)
    if cell.baseline is None or cell.candidate is None:
        cell.note = f"{spec.block}.{spec.stat} missing from a summary"
        return
    cell.change = _relative(cell.baseline, cell.candidate)
    ci_b, ci_c = _summary_ci(pb, spec), _summary_ci(pc, spec)
    if min(cell.n_baseline or 0, cell.n_candidate or 0) < min_samples:
        cell.note = "summary only; too few samples to test"
    elif ci_b is None or ci_c is None:
        cell.note = f"summary only: no per-request samples or {spec.stat}_ci, not tested"
    else:
        cell.test = Method.CI_OVERLAP
        cell.significant = ci_b[1] < ci_c[0] or ci_c[1] < ci_b[0]
        cell.note = f"summary only: {spec.stat}_ci {'do not ' if cell.significant else ''}overlap"


def _error_cell(cell: _Cell, pb: _Point, pc: _Point, *, min_samples: int) -> None:
    if (pb.records is None) != (pc.records is None):  # count the same way on both sides
        pb, pc = _Point(pb.key, pb.label, pb.summary, None), _Point(pc.key, pc.label, pc.summary, None)
    cb, cc = pb.error_counts(), pc.error_counts()
    if cb is None or cc is None or cb[1] == 0 or cc[1] == 0:
        cell.note = "error counts missing"
        return
    (kb, nb), (kc, nc) = cb, cc
    cell.n_baseline, cell.n_candidate = nb, nc
    cell.baseline, cell.candidate = kb / nb, kc / nc
    cell.change = (cell.candidate - cell.baseline) * 100.0  # percentage points: 0 -> 1% is not "infinite"
    if min(nb, nc) < min_samples:
        cell.note = f"too few requests to test ({nb} vs {nc})"
        return
    cell.test, cell.p_value = Method.FISHER, _fisher_p(kb, nb, kc, nc)
    cell.note = f"{kb}/{nb} vs {kc}/{nc} failed"


def _output_tps_cell(cell: _Cell, pb: _Point, pc: _Point, *, min_samples: int) -> None:
    cell.baseline = _number(pb.summary.get("output_tps"))
    cell.candidate = _number(pc.summary.get("output_tps"))
    cell.n_baseline, cell.n_candidate = pb.measured(), pc.measured()
    if cell.baseline is None or cell.candidate is None:
        cell.note = "output_tps missing from a summary"
        return
    cell.change = _relative(cell.baseline, cell.candidate)
    if pb.records is None or pc.records is None:
        cell.note = "summary only: one value per run, not tested"
        return
    xb, xc = pb.throughput_samples(), pc.throughput_samples()
    cell.n_baseline, cell.n_candidate = len(xb[0]), len(xc[0])
    tested = _ratio_z(xb, xc) if min(len(xb[0]), len(xc[0])) >= min_samples else None
    if tested is None:
        cell.note = "too few requests (or no tokens) to test"
        return
    cell.test, (cell.p_value, cell.effect_sign) = Method.RATIO, tested
    cell.note = f"tested on sum(tokens)/sum(latency): {math.expm1(tested[1]) * 100:+.1f}%"


def _note(cell: _Cell) -> str:
    if cell.abs_floor is None or cell.baseline is None or cell.candidate is None:
        return cell.note
    if abs(cell.candidate - cell.baseline) > cell.abs_floor or abs(cell.change or 0.0) <= cell.threshold:
        return cell.note
    lag = _fmt_value(cell.spec, cell.abs_floor)
    return "; ".join(
        filter(None, [cell.note, f"within the client's timing noise (event-loop lag p99 {lag})"])
    )


def _verdict(cell: _Cell, p_adjusted: float | None, alpha: float) -> Verdict:
    if cell.change is None or cell.baseline is None or cell.candidate is None:
        return Verdict.NOT_COMPARABLE
    worse = cell.change if cell.spec.better == "lower" else -cell.change
    if abs(worse) <= cell.threshold:
        return Verdict.UNCHANGED
    if cell.abs_floor is not None and abs(cell.candidate - cell.baseline) <= cell.abs_floor:
        return Verdict.UNCHANGED
    significant = p_adjusted < alpha if p_adjusted is not None else cell.significant
    if cell.effect_sign * cell.change < 0:  # the test saw the opposite direction: not evidence for this
        significant = False
    if not significant:
        return Verdict.LARGE_NOT_SIGNIFICANT
    return Verdict.REGRESSED if worse > 0 else Verdict.IMPROVED


def compare(
    baseline: RunData,
    candidate: RunData,
    thresholds: Mapping[str, float] | None = None,
    *,
    alpha: float = 0.05,
    seed: int = 0,
    min_samples: int = 8,
    resamples: int = 10_000,
) -> GateResult:
    """Judge ``candidate`` against ``baseline`` (both loaded); pure. See the module docstring.

    ``thresholds`` (percent, per metric name) override the defaults and the candidate scenario's
    ``gate.thresholds``; a metric named there that is not a default row is added as a row.
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if min_samples < 2 or resamples < 100:
        raise ValueError(f"need min_samples >= 2 and resamples >= 100, got {min_samples}, {resamples}")
    names = (str(baseline.path), str(candidate.path))
    warnings = [*baseline.warnings, *candidate.warnings]
    try:
        explicit = _check_thresholds(thresholds or {}, "thresholds")
    except ValueError as e:
        return GateResult(*names, (), EXIT_NOT_COMPARABLE, (str(e),), tuple(warnings), alpha)
    floors = {**candidate.thresholds, **explicit}
    metrics = [*DEFAULT_METRICS, *(m for m in floors if m not in DEFAULT_METRICS)]
    specs = [metric_spec(m) for m in metrics]
    effective = {s.name: floors.get(s.name, s.default_threshold) for s in specs}

    reasons = _incomparable(baseline, candidate)
    base_by_key = {p.key: p for p in baseline.points}
    cand_by_key = {p.key: p for p in candidate.points}
    if not reasons and not base_by_key.keys() & cand_by_key.keys():
        reasons.append(
            "no load point in common: baseline has "
            f"{', '.join(p.label for p in baseline.points) or 'none'}; candidate has "
            f"{', '.join(p.label for p in candidate.points) or 'none'}"
        )
    if reasons:
        return GateResult(*names, (), EXIT_NOT_COMPARABLE, tuple(reasons), tuple(warnings), alpha, effective)
    if not (baseline.has_records and candidate.has_records):
        sides = " and ".join(
            n for n, r in (("baseline", baseline), ("candidate", candidate)) if not r.has_records
        )
        warnings.append(
            f"no requests.jsonl for the {sides}: summary values only; medians compared by CI overlap, "
            "other percentiles and output TPS not tested"
        )

    for side, run in (("baseline", baseline), ("candidate", candidate)):
        for p in run.points:
            check = p.summary.get("self_check")
            matched = p.key in base_by_key and p.key in cand_by_key
            if matched and isinstance(check, Mapping) and check.get("client_bound"):
                warnings.append(
                    f"{p.label}: the {side}'s client could not keep up (self_check.client_bound): its "
                    "latencies are late; TTFT/E2E changes within its event-loop lag are not judged"
                )
    ordered = [*baseline.points, *(p for p in candidate.points if p.key not in base_by_key)]
    cells: list[_Cell] = []
    for point in ordered:
        pb, pc = base_by_key.get(point.key), cand_by_key.get(point.key)
        if pb is None or pc is None:
            warnings.append(
                f"{point.label}: only in the {'baseline' if pc is None else 'candidate'}; not compared"
            )
        for spec in specs:
            cell = _Cell(point.label, spec, effective[spec.name])
            cells.append(cell)
            if pb is None or pc is None:
                cell.note = f"load point only in the {'baseline' if pc is None else 'candidate'}"
            elif spec.kind == "quantile":
                _quantile_cell(
                    cell, pb, pc, alpha=alpha, seed=seed, min_samples=min_samples, resamples=resamples
                )
            elif spec.kind == "error_rate":
                _error_cell(cell, pb, pc, min_samples=min_samples)
            else:
                _output_tps_cell(cell, pb, pc, min_samples=min_samples)

    tested = [i for i, c in enumerate(cells) if c.p_value is not None]
    adjusted: dict[int, float] = dict(
        zip(tested, holm([cells[i].p_value or 0.0 for i in tested]), strict=True)
    )
    rows = tuple(
        Row(
            c.point, c.spec, c.baseline, c.candidate, c.n_baseline, c.n_candidate, c.change, c.threshold,
            c.test, c.p_value, adjusted.get(i), _verdict(c, adjusted.get(i), alpha), _note(c), c.abs_floor,
        )
        for i, c in enumerate(cells)
    )  # fmt: skip
    regressions = [r for r in rows if r.verdict is Verdict.REGRESSED]
    reasons = [_reason(r) for r in regressions]
    code = EXIT_REGRESSION if regressions else EXIT_PASS
    return GateResult(*names, rows, code, tuple(reasons), tuple(warnings), alpha, effective)


def evaluate(
    baseline: str | Path,
    candidate: str | Path,
    thresholds: Mapping[str, float] | None = None,
    *,
    alpha: float = 0.05,
    seed: int = 0,
    min_samples: int = 8,
    resamples: int = 10_000,
) -> GateResult:
    """Load both runs and :func:`compare` them. Bad input gives ``exit_code`` 2 with the reason, not an
    exception, so a CLI only prints the result and exits with ``result.exit_code``."""
    try:
        b, c = load_run(baseline, read_scenario=False), load_run(candidate)
    except GateInputError as e:
        return GateResult(str(baseline), str(candidate), (), EXIT_NOT_COMPARABLE, (str(e),), (), alpha)
    return compare(b, c, thresholds, alpha=alpha, seed=seed, min_samples=min_samples, resamples=resamples)


# --------------------------------------------------------------------------------------------------
# Rendering (pure: strings and a rich Table; writing files is the caller's)


def _fmt_value(spec: MetricSpec, v: float | None) -> str:
    if v is None:
        return "—"
    if spec.kind == "error_rate":
        return f"{v * 100:.2f}%"
    if spec.unit == "s":
        return f"{v * 1000:.1f} ms" if abs(v) < 1 else f"{v:.3f} s"
    return f"{v:.1f} {spec.unit}"


def _fmt_delta(spec: MetricSpec, v: float) -> str:
    if spec.unit == "s":
        return f"{v * 1000:+.1f} ms" if abs(v) < 1 else f"{v:+.3f} s"
    return f"{v:+.1f} {spec.unit}"


def _fmt_change(row: Row) -> str:
    if row.change is None:
        return "—"
    unit = " pp" if row.spec.kind == "error_rate" else "%"
    text = f"{row.change:+.2f}{unit}" if unit == " pp" else f"{row.change:+.1f}{unit}"
    worse = row.worse or 0.0
    return text + (" worse" if worse > 0 else " better" if worse < 0 else "")


def _fmt_threshold(row: Row) -> str:
    if row.spec.kind == "error_rate":
        return f"{row.threshold:g} pp"
    floor = f" and {_fmt_value(row.spec, row.abs_floor)}" if row.abs_floor else ""
    return f"{row.threshold:g}%{floor}"


def _fmt_p(row: Row) -> str:
    if row.p_adjusted is None:
        return "CI overlap" if row.test is Method.CI_OVERLAP else "—"
    p = row.p_adjusted
    return "<0.0001" if p < 1e-4 else f"{p:.2g}"


def _fmt_n(row: Row) -> str:
    return "/".join("?" if n is None else str(n) for n in (row.n_baseline, row.n_candidate))


def _reason(row: Row) -> str:
    p_text = _fmt_p(row)
    p_text = p_text if p_text.startswith("<") else f"={p_text}"
    p = f", p{p_text} ({row.test}, Holm)" if row.p_adjusted is not None else f" ({row.test})"
    return (
        f"{row.point} {row.spec.title}: {_fmt_value(row.spec, row.baseline)} -> "
        f"{_fmt_value(row.spec, row.candidate)} ({_fmt_change(row)}, threshold {_fmt_threshold(row)}{p})"
    )


_BADGE = {
    Verdict.REGRESSED: "❌ regressed",
    Verdict.IMPROVED: "🟢 improved",
    Verdict.UNCHANGED: "unchanged",
    Verdict.LARGE_NOT_SIGNIFICANT: "⚠️ large, not significant",
    Verdict.NOT_COMPARABLE: "➖ not comparable",
}
_HEADER = ("load", "metric", "n (base/cand)", "baseline", "candidate", "change", "threshold", "p", "verdict")


def _cells(row: Row) -> tuple[str, ...]:
    arrow = "↑" if row.spec.better == "higher" else "↓"
    return (
        row.point, f"{row.spec.title} {arrow}", _fmt_n(row), _fmt_value(row.spec, row.baseline),
        _fmt_value(row.spec, row.candidate), _fmt_change(row), _fmt_threshold(row), _fmt_p(row),
    )  # fmt: skip


def _headline(result: GateResult) -> str:
    if result.exit_code == EXIT_NOT_COMPARABLE:
        return "⚠️ not comparable"
    if result.exit_code == EXIT_REGRESSION:
        n = len(result.regressions)
        return f"❌ {n} regression{'s' if n != 1 else ''}"
    return "✅ pass"


def to_markdown(result: GateResult) -> str:
    """A Markdown report for a PR comment: headline, reasons, the table, warnings, a legend."""

    def esc(s: str) -> str:
        return s.replace("|", "\\|")

    tested = sum(1 for r in result.rows if r.p_value is not None)
    out = [
        f"### tpsbench gate: {_headline(result)} (exit {result.exit_code})",
        "",
        f"baseline `{result.baseline}` · candidate `{result.candidate}` · α = {result.alpha:g}, "
        f"Holm-adjusted over {tested} tested rows",
        "",
    ]
    if result.reasons:
        out += [*(f"- {esc(r)}" for r in result.reasons), ""]
    if result.rows:
        out += ["| " + " | ".join(_HEADER) + " |", "|" + "---|" * len(_HEADER)]
        for row in result.rows:
            verdict = _BADGE[row.verdict] + (f" ({row.note})" if row.note else "")
            out.append("| " + " | ".join(esc(c) for c in (*_cells(row), verdict)) + " |")
        out.append("")
    if result.warnings:
        out += ["**Warnings**", "", *(f"- {esc(w)}" for w in result.warnings), ""]
    out += [
        "<details><summary>How to read this</summary>",
        "",
        "↑ higher is better, ↓ lower is better. *regressed*: worse by more than the threshold (noise floor) "
        "and significant at α after Holm adjustment. *large, not significant*: beyond the threshold but "
        "not significant (more requests per load point would tell). p: Mann-Whitney U for p50, seeded "
        "bootstrap of the percentile difference for tails, Fisher exact for the error rate, a z test on "
        "sum(tokens)/sum(latency) for output TPS (one value per run). Exit codes: 0 pass, 1 regression, "
        "2 not comparable or bad input.",
        "",
        "</details>",
        "",
    ]
    return "\n".join(out)


def to_junit(result: GateResult) -> str:
    """JUnit XML: one testcase per row; regressed rows fail, not comparable rows are skipped. When the
    runs could not be compared at all (exit 2), one ``comparability`` testcase carries an error."""
    failures = sum(1 for r in result.rows if r.verdict is Verdict.REGRESSED)
    skipped = sum(1 for r in result.rows if r.verdict is Verdict.NOT_COMPARABLE)
    errors = 1 if result.exit_code == EXIT_NOT_COMPARABLE else 0
    tests = len(result.rows) + errors
    counts = {"tests": str(tests), "failures": str(failures), "errors": str(errors), "skipped": str(skipped)}
    root = ET.Element("testsuites", {"name": "tpsbench gate", **counts})
    suite = ET.SubElement(root, "testsuite", {"name": "tpsbench gate", **counts})
    props = ET.SubElement(suite, "properties")
    for name, value in (
        ("baseline", result.baseline),
        ("candidate", result.candidate),
        ("alpha", f"{result.alpha:g}"),
    ):
        ET.SubElement(props, "property", {"name": name, "value": value})
    if errors:
        case = ET.SubElement(suite, "testcase", {"classname": "tpsbench.gate", "name": "comparability"})
        ET.SubElement(case, "error", {"message": "; ".join(result.reasons), "type": "not_comparable"})
    for row in result.rows:
        case = ET.SubElement(
            suite, "testcase", {"classname": f"tpsbench.gate.{row.point}", "name": row.metric}
        )
        detail = " | ".join(f"{h}: {c}" for h, c in zip(_HEADER, _cells(row), strict=False))
        if row.verdict is Verdict.REGRESSED:
            ET.SubElement(case, "failure", {"message": _reason(row), "type": "regressed"}).text = detail
        elif row.verdict is Verdict.NOT_COMPARABLE:
            ET.SubElement(case, "skipped", {"message": f"not comparable: {row.note}"})
        ET.SubElement(case, "system-out").text = f"{detail} | verdict: {row.verdict}" + (
            f" ({row.note})" if row.note else ""
        )
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


_STYLE = {
    Verdict.REGRESSED: "bold red",
    Verdict.IMPROVED: "green",
    Verdict.UNCHANGED: "",
    Verdict.LARGE_NOT_SIGNIFICANT: "yellow",
    Verdict.NOT_COMPARABLE: "dim",
}


def rich_table(result: GateResult) -> Table:
    """The rows as a rich Table for the terminal (the caller prints reasons and warnings)."""
    table = Table(title=f"tpsbench gate: {result.status} (exit {result.exit_code})", title_justify="left")
    for h in _HEADER:
        table.add_column(h, justify="right" if h in {"baseline", "candidate", "change", "p"} else "left")
    for row in result.rows:
        style = _STYLE[row.verdict]
        verdict = f"[{style}]{row.verdict}[/]" if style else str(row.verdict)
        note = f" [dim]{escape(row.note)}[/]" if row.note else ""
        table.add_row(*(escape(c) for c in _cells(row)), verdict + note)
    return table
