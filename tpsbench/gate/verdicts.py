"""The gate's verdicts: :func:`compare` judges a candidate run against a baseline run, row by row (pure);
:func:`evaluate` opens both (through :mod:`tpsbench.results.views`) and compares them. The rules are in
the package docstring (:mod:`tpsbench.gate`); the statistical tests are in :mod:`tpsbench.results.stats`,
what makes two runs and two points comparable in :mod:`tpsbench.results.matching`."""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import numpy.typing as npt

from tpsbench.core.metricspec import (
    CURVE_METRICS,
    DEFAULT_METRICS,
    MetricSpec,
    check_thresholds,
    metric_spec,
)
from tpsbench.gate import curve, text
from tpsbench.gate.result import (
    EXIT_NOT_COMPARABLE,
    EXIT_PASS,
    EXIT_REGRESSION,
    GateResult,
    Method,
    Row,
    Verdict,
)
from tpsbench.results import files, matching, metrics, stats
from tpsbench.results.views import Point, Run, open_run

__all__ = ["GateInputError", "RunData", "compare", "evaluate", "load_run"]

TAIL_MIN_BEYOND = 1.5  # samples beyond a tail percentile needed to bootstrap it (see the package docstring)

Floats = npt.NDArray[np.float64]


class GateInputError(Exception):
    """A gate input is missing or malformed; the message names the file."""


@dataclass(frozen=True, slots=True)
class _Side:
    """One run's point at a load, as the gate reads it: with its records, or (``records`` False) from its
    summary alone."""

    label: str
    point: Point
    records: bool

    def summary_only(self) -> _Side:
        return replace(self, records=False)

    def samples(self, block: str) -> Floats:
        """Finite values of the per-request metric ``block`` over the successful measured requests."""
        fn = getattr(metrics, block)
        vals = [v for r in self.point.ok_records if isinstance(v := fn(r), int | float)]
        a = np.asarray(vals, dtype=np.float64)
        return a[np.isfinite(a)]

    def error_counts(self) -> tuple[int, int] | None:
        """(errors, requests) over measured requests, ``cancelled`` excluded; None if unknown."""
        if self.records:
            counted = self.point.counted_records() or ()
            return sum(1 for r in counted if not r.ok), len(counted)
        p = self.point
        if p.measured is None:
            return None
        if p.has_error_counts:
            cancelled = p.errors.get("cancelled", 0)
            return p.n_errors - cancelled, p.measured - cancelled
        rate = p.error_rate
        return (round(rate * p.measured), p.measured) if rate is not None else None

    def throughput_samples(self) -> tuple[Floats, Floats]:
        """:func:`tpsbench.gate.curve.throughput_samples` of the point."""
        return curve.throughput_samples(self.point)

    def measured(self) -> int | None:
        if self.records:
            return len(self.point.records or ())
        return self.point.measured


@dataclass(frozen=True, slots=True)
class RunData:
    """One side of the gate, opened: the run, its points by load key, and what the gate read beside it."""

    path: Path
    run: Run
    points: Mapping[matching.Key, tuple[str, Point]]
    has_records: bool
    thresholds: Mapping[str, float]  # the run's scenario.yaml gate.thresholds, if read
    warnings: tuple[str, ...] = ()

    def side(self, key: matching.Key) -> _Side | None:
        found = self.points.get(key)
        return _Side(found[0], found[1], self.has_records) if found else None


def load_run(path: str | Path, *, read_scenario: bool = True) -> RunData:
    """Open a run directory or a ``summary.json``; raises :class:`GateInputError` naming the bad file.

    ``read_scenario``: read ``gate.thresholds`` from the run's ``scenario.yaml`` (the candidate's only).
    Records are read here, so a corrupt requests.jsonl is bad input before any row is judged.
    """
    path = Path(path)
    warnings: list[str] = []
    thresholds: dict[str, float] = {}
    try:
        run = open_run(path)
        if run.has_records:
            run.records  # noqa: B018  read now: a corrupt file is bad input
            warnings += run.record_warnings
        elif run.records_path is not None:
            warnings.append(f"{run.records_path}: not found; comparing summary values only")
        if read_scenario and path.is_dir():
            scenario_path = path / files.SCENARIO
            scenario = files.read_scenario(scenario_path) or {}
            gate = scenario.get("gate")
            raw = gate.get("thresholds") if isinstance(gate, dict) else None
            if raw is not None and not isinstance(raw, dict):
                raise GateInputError(
                    f"{scenario_path}: gate.thresholds must be a mapping of metric to percent"
                )
            thresholds = check_thresholds(raw or {}, f"{scenario_path}: gate.thresholds")
    except (files.RunFileError, ValueError) as e:
        raise GateInputError(str(e)) from None
    points = matching.keyed_points(run.points)
    return RunData(path, run, points, run.has_records, thresholds, tuple(warnings))


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


def _relative(b: float | None, c: float | None) -> float | None:
    if b is None or c is None or b == 0:
        return None
    return (c / b - 1.0) * 100.0


_CLIENT_TIMED = frozenset({"ttft_s", "e2e_s"})  # one client-stamped interval per request


def _quantile_cell(
    cell: _Cell, pb: _Side, pc: _Side, *, alpha: float, seed: int, min_samples: int, resamples: int
) -> None:
    spec = cell.spec
    lags = [lag for lag in (pb.point.loop_lag_p99_s, pc.point.loop_lag_p99_s) if lag is not None]
    if spec.block in _CLIENT_TIMED and lags:
        cell.abs_floor = max(lags)
    if pb.records and pc.records:
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
            cell.p_value, cell.effect_sign = stats.mann_whitney(x, y)
        else:
            rng = _row_rng(seed, cell.point, spec.name)
            lo, hi, p = stats.bootstrap_quantile_diff(x, y, spec.q, alpha=alpha, resamples=resamples, rng=rng)
            cell.test, cell.p_value = Method.BOOTSTRAP, p
            cell.note = f"{1 - alpha:.0%} CI of difference [{text.delta(spec, lo)}, {text.delta(spec, hi)}]"
        return
    # At least one side has no requests.jsonl: both sides use their summaries.
    cell.baseline = matching.summary_value(pb.point, spec)
    cell.candidate = matching.summary_value(pc.point, spec)
    cell.n_baseline, cell.n_candidate = matching.summary_n(pb.point, spec), matching.summary_n(pc.point, spec)
    if cell.baseline is None or cell.candidate is None:
        cell.note = f"{spec.block}.{spec.stat} missing from a summary"
        return
    cell.change = _relative(cell.baseline, cell.candidate)
    ci_b, ci_c = matching.summary_ci(pb.point, spec), matching.summary_ci(pc.point, spec)
    overlap = matching.ci_overlap(ci_b, ci_c)
    if min(cell.n_baseline or 0, cell.n_candidate or 0) < min_samples:
        cell.note = "summary only; too few samples to test"
    elif overlap is None:
        cell.note = f"summary only: no per-request samples or {spec.stat}_ci, not tested"
    else:
        cell.test = Method.CI_OVERLAP
        cell.significant = not overlap
        cell.note = f"summary only: {spec.stat}_ci {'do not ' if cell.significant else ''}overlap"


def _inverse_quantile_cell(
    cell: _Cell, pb: _Side, pc: _Side, *, alpha: float, seed: int, min_samples: int, resamples: int
) -> None:
    """A reciprocal of a quantile (``tps_user_mlperf`` = 1 / TPOT p90): judged by the quantile's own row
    (x -> 1/x is monotone, so a difference of the quantile is significant exactly when its reciprocal's
    is), shown and thresholded as the reciprocal."""
    spec = cell.spec
    inner = _Cell(cell.point, metric_spec(f"{spec.block}_{spec.stat}"), cell.threshold)
    _quantile_cell(inner, pb, pc, alpha=alpha, seed=seed, min_samples=min_samples, resamples=resamples)
    cell.baseline = 1 / inner.baseline if inner.baseline else None
    cell.candidate = 1 / inner.candidate if inner.candidate else None
    cell.n_baseline, cell.n_candidate = inner.n_baseline, inner.n_candidate
    cell.change = _relative(cell.baseline, cell.candidate)
    cell.test, cell.p_value, cell.significant = inner.test, inner.p_value, inner.significant
    cell.effect_sign = -inner.effect_sign  # the reciprocal moves the other way
    cell.note = "; ".join(filter(None, [f"tested on {inner.spec.title} ({inner.spec.name})", inner.note]))


def _repeat_cell(cell: _Cell, pb: _Side, pc: _Side) -> bool:
    """Judge a quantile or output TPS row on the per-repeat values (Welch t); False when a side has no
    run-level estimate of it (the caller falls back to the per-request test)."""
    spec = cell.spec
    eb, ec = pb.point.repeat_estimate(spec.name), pc.point.repeat_estimate(spec.name)
    if eb is None or ec is None or min(len(eb.values), len(ec.values)) < 2:
        return False
    lags = [lag for lag in (pb.point.loop_lag_p99_s, pc.point.loop_lag_p99_s) if lag is not None]
    if spec.block in _CLIENT_TIMED and lags:
        cell.abs_floor = max(lags)
    cell.baseline, cell.candidate = eb.mean, ec.mean
    cell.n_baseline, cell.n_candidate = len(eb.values), len(ec.values)
    cell.change = _relative(cell.baseline, cell.candidate)
    tested = stats.welch_t(eb.values, ec.values)
    interval = stats.welch_interval(eb.values, ec.values)
    assert tested is not None and interval is not None
    cell.test, (cell.p_value, cell.effect_sign) = Method.WELCH, tested
    lo, hi = interval
    cell.note = (
        f"{len(eb.values)} vs {len(ec.values)} repeats; 95% CI of difference "
        f"[{text.delta(spec, lo)}, {text.delta(spec, hi)}]"
    )
    return True


def _curve_cells(
    baseline: RunData,
    candidate: RunData,
    effective: Mapping[str, float],
    names: list[str],
    *,
    min_samples: int,
) -> tuple[list[_Cell], list[str]]:
    """The curve-level rows (:mod:`tpsbench.gate.curve`) as cells, and its warnings."""
    checks, warnings = curve.curve_checks(
        list(baseline.points.values()), list(candidate.points.values()), names, min_samples=min_samples
    )
    cells = []
    outside = [c.point for c in checks if c.candidate is None]
    if outside:
        warnings.append(
            f"curve: {', '.join(outside)} lie outside the candidate's curve (it did not measure there): "
            "not judged"
        )
    for c in checks:
        if c.candidate is None:
            continue
        spec = metric_spec(c.metric)
        cell = _Cell(c.point, spec, effective.get(c.metric, spec.default_threshold))
        cell.baseline, cell.candidate = c.baseline, c.candidate
        cell.n_baseline, cell.n_candidate = c.n_baseline, c.n_candidate
        cell.change = _relative(c.baseline, c.candidate)
        if c.test == "welch-t":
            cell.test, cell.p_value, cell.effect_sign = Method.WELCH, c.p_value, c.effect_sign
            cell.note = c.sentence
        elif c.test == "curve-z":
            cell.test, cell.p_value, cell.effect_sign = Method.CURVE_Z, c.p_value, c.effect_sign
            cell.note = c.sentence
        else:
            cell.note = c.sentence
        cells.append(cell)
    return cells, warnings


def _error_cell(cell: _Cell, pb: _Side, pc: _Side, *, min_samples: int) -> None:
    if pb.records != pc.records:  # count the same way on both sides
        pb, pc = pb.summary_only(), pc.summary_only()
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
    cell.test, cell.p_value = Method.FISHER, stats.fisher_p(kb, nb, kc, nc)
    cell.note = f"{kb}/{nb} vs {kc}/{nc} failed"


def _output_tps_cell(cell: _Cell, pb: _Side, pc: _Side, *, min_samples: int) -> None:
    """Output TPS, or output TPS per user (``tps_user_vllm`` = output TPS / concurrency, the same
    concurrency on both sides of a closed-loop key; in open loop the mean in flight, sum(time in flight
    inside the window) / window over the requests whose tokens output TPS counts, so the ratio is tokens per
    request-second, R's kind): both tested on R = sum(tokens) / sum(latency)."""
    spec = cell.spec
    cell.baseline = matching.summary_value(pb.point, spec)
    cell.candidate = matching.summary_value(pc.point, spec)
    cell.n_baseline, cell.n_candidate = pb.measured(), pc.measured()
    if cell.baseline is None or cell.candidate is None:
        cell.note = f"{spec.name} missing from a summary"
        return
    cell.change = _relative(cell.baseline, cell.candidate)
    if not (pb.records and pc.records):
        cell.note = "summary only: one value per run, not tested"
        return
    xb, xc = pb.throughput_samples(), pc.throughput_samples()
    cell.n_baseline, cell.n_candidate = len(xb[0]), len(xc[0])
    tested = stats.ratio_z(xb, xc) if min(len(xb[0]), len(xc[0])) >= min_samples else None
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
    lag = text.value(cell.spec, cell.abs_floor)
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


def _client_warnings(baseline: RunData, candidate: RunData) -> list[str]:
    out = []
    for side, run in (("baseline", baseline), ("candidate", candidate)):
        for key, (label, p) in run.points.items():
            if key in baseline.points and key in candidate.points and p.client_bound:
                out.append(
                    f"{label}: the {side}'s client could not keep up (self_check.client_bound): its "
                    "latencies are late; TTFT/E2E changes within its event-loop lag are not judged"
                )
    return out


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
    """Judge ``candidate`` against ``baseline`` (both loaded); pure. See the package docstring.

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
        explicit = check_thresholds(thresholds or {}, "thresholds")
    except ValueError as e:
        return GateResult(*names, (), EXIT_NOT_COMPARABLE, (str(e),), tuple(warnings), alpha)
    floors = {**candidate.thresholds, **explicit}
    names_ = [*DEFAULT_METRICS, *(m for m in floors if m not in DEFAULT_METRICS and m not in CURVE_METRICS)]
    specs = [metric_spec(m) for m in names_]
    effective = {s.name: floors.get(s.name, s.default_threshold) for s in specs}
    effective |= {m: floors.get(m, metric_spec(m).default_threshold) for m in CURVE_METRICS}
    repeated = baseline.run.repeat_count > 1 and candidate.run.repeat_count > 1

    reasons = [
        f"candidate differs from baseline: {why}"
        for why in matching.comparability_reasons(baseline.run, candidate.run)
    ]
    if not reasons and not baseline.points.keys() & candidate.points.keys():
        reasons.append(
            "no load point in common: baseline has "
            f"{', '.join(label for label, _ in baseline.points.values()) or 'none'}; candidate has "
            f"{', '.join(label for label, _ in candidate.points.values()) or 'none'}"
        )
    sb, sc = baseline.run.scenario_name, candidate.run.scenario_name
    if sb and sc and sb != sc:
        other = f"the baseline is scenario {sb!r}, the candidate scenario {sc!r}"
        if reasons:
            reasons.append(f"{other}: gate a run of scenario {sb!r} against it")
        else:
            warnings.append(other)
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
    warnings += _client_warnings(baseline, candidate)
    if not repeated:
        single = " and ".join(
            n for n, r in (("baseline", baseline), ("candidate", candidate)) if r.run.repeat_count < 2
        )
        warnings.append(
            f"one run for the {single}: significance comes from per-request samples (within-run "
            "variance), which misses run-to-run differences; run both with --repeat 3 to test on them"
        )

    ordered = [*baseline.points, *(k for k in candidate.points if k not in baseline.points)]
    cells: list[_Cell] = []
    for key in ordered:
        pb, pc = baseline.side(key), candidate.side(key)
        label = (pb or pc).label  # type: ignore[union-attr]  # one of them is set: the key came from one
        if pb is None or pc is None:
            warnings.append(f"{label}: only in the {'baseline' if pc is None else 'candidate'}; not compared")
        for spec in specs:
            cell = _Cell(label, spec, effective[spec.name])
            cells.append(cell)
            if pb is None or pc is None:
                cell.note = f"load point only in the {'baseline' if pc is None else 'candidate'}"
            elif repeated and spec.kind != "error_rate" and _repeat_cell(cell, pb, pc):
                pass
            elif spec.kind in ("quantile", "inverse_quantile"):
                judge = _quantile_cell if spec.kind == "quantile" else _inverse_quantile_cell
                judge(cell, pb, pc, alpha=alpha, seed=seed, min_samples=min_samples, resamples=resamples)
            elif spec.kind == "error_rate":
                _error_cell(cell, pb, pc, min_samples=min_samples)
            else:
                _output_tps_cell(cell, pb, pc, min_samples=min_samples)

    curve_cells, curve_warnings = _curve_cells(
        baseline, candidate, effective, list(CURVE_METRICS), min_samples=min_samples
    )
    n_point_rows = len(cells)
    cells += curve_cells
    warnings += curve_warnings
    tested = [i for i, c in enumerate(cells) if c.p_value is not None]
    adjusted: dict[int, float] = dict(
        zip(tested, stats.holm([cells[i].p_value or 0.0 for i in tested]), strict=True)
    )
    rows = tuple(
        Row(
            c.point, c.spec, c.baseline, c.candidate, c.n_baseline, c.n_candidate, c.change, c.threshold,
            c.test, c.p_value, adjusted.get(i), _verdict(c, adjusted.get(i), alpha), _note(c), c.abs_floor,
        )
        for i, c in enumerate(cells)
    )  # fmt: skip
    rows, curve_rows = rows[:n_point_rows], rows[n_point_rows:]
    regressions = [r for r in rows + curve_rows if r.verdict is Verdict.REGRESSED]
    code = EXIT_REGRESSION if regressions else EXIT_PASS
    reasons_ = tuple(
        f"{r.note} ({text.change(r)}, threshold {text.threshold(r)})"
        if r.spec.kind == "curve"
        else text.reason(r)
        for r in regressions
    )
    mode = "repeats" if repeated else "per-request"
    return GateResult(
        *names, rows, code, reasons_, tuple(warnings), alpha, effective, curve=curve_rows, mode=mode
    )


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
        return GateResult(
            str(baseline), str(candidate), (), EXIT_NOT_COMPARABLE, (str(e),), (), alpha, bad_input=True
        )
    return compare(b, c, thresholds, alpha=alpha, seed=seed, min_samples=min_samples, resamples=resamples)
