"""What a gate decides: a :class:`Row` per (load point, metric), and the :class:`GateResult` with its exit
code. Plain data: the verdicts are made in :mod:`tpsbench.gate.verdicts`, rendered in
:mod:`tpsbench.gate.render`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from tpsbench.core.metricspec import MetricSpec

EXIT_PASS = 0
EXIT_REGRESSION = 1
EXIT_NOT_COMPARABLE = 2


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
    WELCH = "welch-t"  # repeats: Welch t test on the per-repeat values (run-to-run variance)
    CURVE_Z = "curve-z"  # curve row of one run: delta-method z test of the value read on the curve
    NONE = "none"  # not tested (too few samples, no samples, no interval): never significant


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
    bad_input: bool = False  # exit 2 because an input is missing or malformed (not a comparability reason)
    curve: tuple[Row, ...] = ()  # curve-level rows (tpsbench.gate.curve), one per baseline point and metric
    mode: str = "per-request"  # where the significance of quantile rows comes from: "per-request", "repeats"

    @property
    def all_rows(self) -> tuple[Row, ...]:
        """The per-load-point rows, then the curve-level rows."""
        return self.rows + self.curve

    @property
    def regressions(self) -> tuple[Row, ...]:
        return tuple(r for r in self.all_rows if r.verdict is Verdict.REGRESSED)

    @property
    def status(self) -> str:
        if self.bad_input:
            return "bad input"
        return {EXIT_PASS: "pass", EXIT_REGRESSION: "regression"}.get(self.exit_code, "not comparable")
