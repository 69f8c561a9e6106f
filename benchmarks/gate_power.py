"""Measure the regression gate's false-alarm and detection rates on seeded synthetic runs.

    /work/venv/bin/python benchmarks/gate_power.py [--trials 100]

Each trial writes a fresh baseline and candidate run directory (contract format, closed loop, 8 warmup +
N measured requests per load point; TTFT lognormal sigma 0.35, TPS/user lognormal sigma 0.10, 0.5% errors
unless stated) and runs ``tpsbench.gate.evaluate`` with default thresholds. "exit 1" is the fraction of
trials that fail the gate; the row columns give the fraction of (trial, load point) rows judged regressed.
The synthetic runs are written through the real pipeline (records, per-request metrics, summarize_level,
the run-directory writer) by tpsbench.results.synthetic, and the rates measured by tpsbench.gate.power.
About 3 s per trial on one core (two runs written and summarised, one gate evaluation), three times that
with repeats. ``--modes`` runs only the cases of the three modes (per-request, repeats x3, curve rows),
with and without injected run-to-run drift (``Shape.drift``: one factor per repeat, a single run too).
``--definitions`` runs only the cases of the point-level TPS/user rows (``tps_user_mlperf``,
``tps_user_vllm``, gated at their default 10% floor).
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from dataclasses import dataclass, field

from tpsbench.gate.power import gate_rates
from tpsbench.results.synthetic import Shape


@dataclass(frozen=True)
class Case:
    name: str
    candidate: Shape
    row: str  # the row whose regressed-rate is shown
    loads: tuple[int, ...] = (16,)
    n: int = 200
    baseline: Shape = field(default_factory=Shape)
    repeats: int = 1  # > 1: both runs repeat the plan; the gate tests on per-repeat values (Welch t)
    thresholds: dict[str, float] | None = None  # rows added to the gate's defaults


DRIFT = 0.03  # run-to-run: a factor exp(0.03 z) on TPS/user (and 1/factor on TTFT) per repeat, CV ~ 3%


CASES = [
    Case("identical (false alarm)", Shape(), "tps_user_p50", loads=(4, 16, 64)),
    Case("identical (false alarm)", Shape(), "tps_user_p50", loads=(4, 16, 64), n=1000),
    Case(
        "identical, wide spread (false alarm)",
        Shape(ttft_sigma=0.6, tps_sigma=0.2),
        "ttft_s_p99",
        loads=(4, 16, 64),
        baseline=Shape(ttft_sigma=0.6, tps_sigma=0.2),
    ),
    Case("TPS/user -10%", Shape(tps_factor=0.9), "tps_user_p50"),
    Case("TPS/user -10%", Shape(tps_factor=0.9), "tps_user_p50", n=50),
    Case("TPS/user -5% (at the 5% floor)", Shape(tps_factor=0.95), "tps_user_p50"),
    Case("TTFT x1.2 (p50 and p99 +20%)", Shape(ttft_factor=1.2), "ttft_s_p50"),
    Case("TTFT x1.2 (p50 and p99 +20%)", Shape(ttft_factor=1.2), "ttft_s_p99"),
    Case("TTFT p99 +20%, median same", Shape(ttft_tail=0.2), "ttft_s_p99"),
    Case("TTFT p99 +20%, median same", Shape(ttft_tail=0.2), "ttft_s_p99", n=500),
    Case("TTFT p99 +20%, median same", Shape(ttft_tail=0.2), "ttft_s_p99", n=1000),
    Case("TTFT p99 +20%, median same", Shape(ttft_tail=0.2), "ttft_s_p99", n=2000),
    Case("errors 0.5% -> 5%", Shape(error_p=0.05), "error_rate"),
]


# Modes: per-request (one run each), repeats (3 runs each) and the curve rows, with and without drift.
def _mode(name: str, candidate: Shape, row: str, *, repeats: int = 1, drift: bool = False) -> Case:
    """A case of the modes table: three loads of 100 requests; ``drift`` puts the run-to-run drift on
    both runs (the baseline identical but for it)."""
    if drift:
        candidate = dataclasses.replace(candidate, drift=DRIFT)
    baseline = Shape(drift=DRIFT) if drift else Shape()
    return Case(name, candidate, row, loads=(4, 16, 64), n=100, baseline=baseline, repeats=repeats)


SLOWER = Shape(tps_factor=0.9)
MODE_CASES = [
    _mode("per-request, identical", Shape(), "curve_tps_per_gpu"),
    _mode("repeats x3, identical", Shape(), "tps_user_p50", repeats=3),
    _mode("per-request, identical + drift (false alarm)", Shape(), "tps_user_p50", drift=True),
    _mode("repeats x3, identical + drift (false alarm)", Shape(), "tps_user_p50", repeats=3, drift=True),
    _mode("per-request, TPS/user -10%", SLOWER, "curve_tps_per_gpu"),
    _mode("repeats x3, TPS/user -10%", SLOWER, "curve_tps_per_gpu", repeats=3),
    _mode("repeats x3, TPS/user -10% + drift", SLOWER, "tps_user_p50", repeats=3, drift=True),
    _mode("repeats x3, TPS/user -10% + drift", SLOWER, "curve_tps_per_gpu", repeats=3, drift=True),
]


# The point-level TPS/user definitions (results/definitions.py) as gate rows, at their default 10% floor.
POINT_ROWS = {"tps_user_mlperf": 10.0, "tps_user_vllm": 10.0}
DEFINITION_CASES = [
    Case("identical (false alarm)", Shape(), "tps_user_mlperf", loads=(4, 16, 64), thresholds=POINT_ROWS),
    Case("identical (false alarm)", Shape(), "tps_user_vllm", loads=(4, 16, 64), thresholds=POINT_ROWS),
    Case(
        "identical, wide spread (false alarm)",
        Shape(ttft_sigma=0.6, tps_sigma=0.2),
        "tps_user_mlperf",
        loads=(4, 16, 64),
        baseline=Shape(ttft_sigma=0.6, tps_sigma=0.2),
        thresholds=POINT_ROWS,
    ),
    Case("TPS/user -15%", Shape(tps_factor=0.85), "tps_user_mlperf", thresholds=POINT_ROWS),
    Case("TPS/user -15%", Shape(tps_factor=0.85), "tps_user_vllm", thresholds=POINT_ROWS),
    Case("TPS/user -15%", Shape(tps_factor=0.85), "tps_user_mlperf", n=50, thresholds=POINT_ROWS),
    Case(
        "repeats x3, TPS/user -15%",
        Shape(tps_factor=0.85),
        "tps_user_vllm",
        n=100,
        repeats=3,
        thresholds=POINT_ROWS,
    ),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--modes", action="store_true", help="only the per-request/repeats/curve cases")
    parser.add_argument("--definitions", action="store_true", help="only the point-level TPS/user rows")
    args = parser.parse_args()
    print(f"{args.trials} seeded trials per case; alpha = 0.05 with Holm; default thresholds\n")
    print(
        "| case | load points | requests/point | repeats | exit 1 | row | row regressed "
        "| other rows regressed | time |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    cases = MODE_CASES if args.modes else DEFINITION_CASES if args.definitions else [*CASES, *MODE_CASES]
    for i, case in enumerate(cases):
        t0 = time.perf_counter()
        exit1, rows = gate_rates(
            args.trials,
            case.candidate,
            baseline=case.baseline,
            loads=case.loads,
            n=case.n,
            first_seed=10_000 * i,
            repeats=case.repeats,
            thresholds=case.thresholds,
        )
        others = ", ".join(f"{m} {r:.1%}" for m, r in rows.items() if r and m != case.row) or "none"
        print(
            f"| {case.name} | {len(case.loads)} | {case.n} | {case.repeats} | {exit1:.0%} | {case.row} "
            f"| {rows[case.row]:.1%} "
            f"| {others} | {time.perf_counter() - t0:.1f} s |",
            flush=True,
        )


if __name__ == "__main__":
    main()
