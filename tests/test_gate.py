"""The regression gate on seeded synthetic runs written in the run-directory contract format.

The generator below (``write_run``, ``gate_rates``) is also what ``benchmarks/gate_power.py`` runs to print
the measured false-alarm and detection rates.
"""

from __future__ import annotations

import functools
import heapq
import json
import math
import tempfile
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import numpy as np
import pytest
from rich.console import Console
from scipy import stats

from tpsbench import gate
from tpsbench.config.scenario import Level
from tpsbench.core.record import NS_PER_S, ErrorKind, RequestRecord, TokenSource
from tpsbench.gate import Method, Verdict
from tpsbench.gate.verdicts import _Cell, _verdict
from tpsbench.results import stats as rstats
from tpsbench.results.summary import summarize_level
from tpsbench.results.synthetic import Shape, write_synthetic_run

# --------------------------------------------------------------------------------------------------
# Synthetic runs. The verdict tests use the package's runs (tpsbench.results.synthetic: simulated requests
# through the real summarize_level and writer). The power tests below need hundreds of runs, so they use
# `_fast_run`, whose summary blocks are cheap (no bootstrap);
# `test_fast_runs_summarise_like_the_real_pipeline` keeps those blocks equal to what summarize_level
# makes of the same records, so they cannot drift.

write_run = write_synthetic_run
DEFAULT_SHAPE = Shape()


def _medians(concurrency: float) -> tuple[float, float]:
    """(TTFT s, TPS/user) medians that degrade with load, like a batching server."""
    return 0.15 * (1 + concurrency / 16), 80.0 / (1 + concurrency / 32)


# every field a record has, at its default (the fields below override them)
_RECORD_DEFAULTS = RequestRecord(request_id=0, level=0, send_ns=0, end_ns=0).to_dict()
_METRICS = (
    "ttft_s", "decode_s", "decode_tokens", "first_chunk_tokens", "tps_user", "tpot_s", "e2e_s", "e2e_tps",
    "n_chunks", "sched_lag_s",
)  # fmt: skip


@functools.cache
def _median_ci_ranks(n: int) -> tuple[int, int]:
    """Distribution-free 95% interval of a median: order statistics at the binomial(n, 1/2) quantiles."""
    return max(int(stats.binom.ppf(0.025, n, 0.5)) - 1, 0), min(int(stats.binom.ppf(0.975, n, 0.5)), n - 1)


def _point_records(
    rng: np.random.Generator, level: int, concurrency: int, n: int, warmup: int, shape: Shape, first_id: int
) -> list[dict[str, Any]]:
    total = n + warmup
    ttft_med, tps_med = _medians(concurrency)
    z = rng.standard_normal(total)
    ttft = ttft_med * np.exp(shape.ttft_sigma * z) * shape.ttft_factor
    if shape.ttft_tail:
        ramp = np.clip((stats.norm.cdf(z) - 0.90) / 0.07, 0.0, 1.0)  # exact: the true p99 moves by +tail
        ttft *= 1 + shape.ttft_tail * ramp
    tps = tps_med * np.exp(shape.tps_sigma * rng.standard_normal(total)) * shape.tps_factor
    failed = rng.random(total) < shape.error_p
    tokens = shape.output_tokens
    free = [(0, w) for w in range(concurrency)]  # closed loop: the next request goes to the first free user
    out = []
    for i in range(total):
        t, worker = heapq.heappop(free)
        # The fields of RequestRecord.to_dict() (checked in test_synthetic_records_follow_the_contract) plus
        # the per-request metrics; built directly because dataclasses.asdict dominated the trials' time.
        rec: dict[str, Any] = _RECORD_DEFAULTS | {
            "request_id": first_id + i, "level": level, "send_ns": t, "scheduled_ns": None, "worker": worker,
            "warmup": i < warmup, "input_tokens": shape.input_tokens, "requested_output_tokens": tokens,
        }  # fmt: skip
        if failed[i]:
            end = t + int(0.05 * NS_PER_S)
            rec |= {
                "end_ns": end, "headers_ns": None, "status": 500, "error": ErrorKind.HTTP_5XX.value,
                "error_detail": "500 Internal Server Error", "chunk_ns": [], "chunk_tokens": [],
                "output_tokens": None, "token_source": TokenSource.NONE.value, "finish_reason": None,
                "itl_s": [], **dict.fromkeys(_METRICS),
            }  # fmt: skip
        else:
            first = t + int(ttft[i] * NS_PER_S)
            decode_s = (tokens - 1) / tps[i]
            end = first + int(decode_s * NS_PER_S)
            e2e = (end - t) / NS_PER_S
            rec |= {
                "end_ns": end, "headers_ns": first - 1000, "status": 200, "error": None, "error_detail": None,
                "chunk_ns": [first, end], "chunk_tokens": [1.0, float(tokens - 1)], "output_tokens": tokens,
                "token_source": TokenSource.USAGE.value, "finish_reason": "length",
                "ttft_s": float(ttft[i]), "decode_s": decode_s, "decode_tokens": tokens - 1,
                "first_chunk_tokens": 1, "tps_user": float(tps[i]), "tpot_s": 1 / float(tps[i]),
                "e2e_s": e2e, "e2e_tps": tokens / e2e, "itl_s": [decode_s], "n_chunks": 2, "sched_lag_s": 0.0,
            }  # fmt: skip
        heapq.heappush(free, (end, worker))
        out.append(rec)
    return out


def _block(values: Sequence[float]) -> dict[str, Any]:
    a = np.sort(np.asarray(values, dtype=np.float64))
    n = len(a)
    if n == 0:
        return {"n": 0}
    pcts = (1, 5, 10, 50, 90, 95, 99)
    qs = {f"p{p}": float(v) for p, v in zip(pcts, np.quantile(a, [p / 100 for p in pcts]), strict=True)}
    half = 1.96 * float(a.std(ddof=1)) / math.sqrt(n) if n > 1 else 0.0
    lo, hi = _median_ci_ranks(n)
    return {
        "n": n, "mean": float(a.mean()), "std": float(a.std(ddof=1)) if n > 1 else 0.0, "min": float(a[0]),
        **qs, "max": float(a[-1]), "mean_ci": [float(a.mean()) - half, float(a.mean()) + half],
        "p50_ci": [float(a[lo]), float(a[hi])],
    }  # fmt: skip


def _summary_point(level: int, concurrency: int, records: list[dict[str, Any]]) -> dict[str, Any]:
    measured = [r for r in records if not r["warmup"]]
    ok = [r for r in measured if r["error"] is None]
    window = (max(r["end_ns"] for r in measured) - min(r["send_ns"] for r in measured)) / NS_PER_S
    errors: dict[str, int] = {}
    for r in measured:
        if r["error"]:
            errors[r["error"]] = errors.get(r["error"], 0) + 1
    out_tps = sum(r["output_tokens"] for r in ok) / window
    return {
        "level": level, "concurrency": concurrency, "rate": None, "arrival": None,
        "requests": len(records), "measured": len(measured), "warmup": len(records) - len(measured),
        "ok": len(ok), "errors": errors, "window_s": window,
        **{m: _block([r[m] for r in ok]) for m in ("ttft_s", "tps_user", "tpot_s", "e2e_s")},
        "itl_s": _block([g for r in ok for g in r["itl_s"]]),
        "output_tps": out_tps, "output_tps_per_gpu": out_tps / 8, "request_rate": len(measured) / window,
        "error_rate": (len(measured) - len(ok)) / len(measured), "goodput": len(ok) / window, "slo_met": True,
        "token_sources": {"usage": len(ok)}, "short_outputs": 0, "warnings": [],
        "self_check": {"loop_lag_p99_s": 0.0005, "achieved_concurrency": concurrency, "client_bound": False},
    }  # fmt: skip


def _fast_run(
    path: Path,
    *,
    seed: int,
    loads: Sequence[int] = (4, 16, 64),
    n: int = 200,
    warmup: int = 8,
    shape: Shape = DEFAULT_SHAPE,
    gate_thresholds: dict[str, float] | None = None,
) -> Path:
    """Write a run directory (summary.json, requests.jsonl, scenario.yaml) of seeded synthetic requests."""
    rng = np.random.default_rng(seed)
    path.mkdir(parents=True)
    points: list[dict[str, Any]] = []
    lines: list[str] = []
    for level, c in enumerate(loads):
        recs = _point_records(rng, level, c, n, warmup, shape, first_id=len(lines))
        points.append(_summary_point(level, c, recs))
        lines += [json.dumps(r) for r in recs]
    summary = {
        "schema": 1,
        "tool": {"name": "tpsbench", "version": "0.1.0"},
        "run": {
            "name": path.name,
            "scenario_name": "synthetic",
            "endpoint": "http://127.0.0.1:8000/v1",
            "model": shape.model,
            "api": shape.api,
            "gpus": 8,
            "workload": {"input_tokens": shape.input_tokens, "output_tokens": shape.output_tokens},
        },
        "slo": {},
        "points": points,
    }
    (path / "summary.json").write_text(json.dumps(summary, indent=1))
    (path / "requests.jsonl").write_text("\n".join(lines) + "\n")
    scenario = "name: synthetic\nload:\n" + "".join(
        f"  - {{concurrency: {c}, requests: {n}}}\n" for c in loads
    )
    if gate_thresholds:
        scenario += "gate:\n  thresholds:\n" + "".join(f"    {k}: {v}\n" for k, v in gate_thresholds.items())
    (path / "scenario.yaml").write_text(scenario)
    return path


def gate_rates(
    trials: int,
    candidate: Shape,
    *,
    baseline: Shape = DEFAULT_SHAPE,
    loads: Sequence[int] = (4, 16, 64),
    n: int = 200,
    first_seed: int = 0,
) -> tuple[float, dict[str, float]]:
    """Over seeded trials (fresh baseline and candidate each): the fraction that exit 1, and per metric
    the fraction of (trial, load point) rows judged regressed."""
    exits = 0
    regressed: dict[str, int] = dict.fromkeys(gate.DEFAULT_METRICS, 0)
    with tempfile.TemporaryDirectory() as tmp:
        for t in range(first_seed, first_seed + trials):
            b = _fast_run(Path(tmp, f"b{t}"), seed=2 * t, loads=loads, n=n, shape=baseline)
            c = _fast_run(Path(tmp, f"c{t}"), seed=2 * t + 1, loads=loads, n=n, shape=candidate)
            result = gate.evaluate(b, c, seed=t)
            assert result.exit_code in (0, 1), result.reasons
            exits += result.exit_code == 1
            for row in result.regressions:
                regressed[row.metric] = regressed.get(row.metric, 0) + 1
    return exits / trials, {m: k / (trials * len(loads)) for m, k in regressed.items()}


def _row(result: gate.GateResult, point: str, metric: str) -> gate.Row:
    return next(r for r in result.rows if r.point == point and r.metric == metric)


# --------------------------------------------------------------------------------------------------
# Statistics


def test_synthetic_records_follow_the_contract(tmp_path: Path) -> None:
    run = _fast_run(tmp_path / "run", seed=0, loads=(2,), n=40, shape=Shape(error_p=0.2))
    lines = [json.loads(line) for line in (run / "requests.jsonl").read_text().splitlines()]
    fields = set(RequestRecord(request_id=0, level=0, send_ns=0, end_ns=0).to_dict())
    assert {r["error"] for r in lines} == {None, "http_5xx"}
    for line in lines:
        assert fields | {*_METRICS, "itl_s"} == set(line)
        assert RequestRecord.from_dict(line).to_dict() == {k: line[k] for k in fields}


def test_fast_runs_summarise_like_the_real_pipeline(tmp_path: Path) -> None:
    """Every summary value the gate reads from a `_fast_run` point equals what summarize_level makes of
    the same records (CIs aside: the fast blocks use order statistics, the summary a bootstrap)."""
    run = _fast_run(tmp_path / "run", seed=3, loads=(4, 16), n=60, shape=Shape(error_p=0.05))
    summary = json.loads((run / "summary.json").read_text())
    lines = [json.loads(line) for line in (run / "requests.jsonl").read_text().splitlines()]
    for fast in summary["points"]:
        records = [RequestRecord.from_dict(ln) for ln in lines if ln["level"] == fast["level"]]
        real = summarize_level(
            records,
            level_index=fast["level"],
            level=Level(concurrency=fast["concurrency"], requests=60, warmup=8),
            slo={},
            gpus=8,
        )
        for key in ("measured", "ok", "errors", "window_s", "error_rate"):
            assert fast[key] == pytest.approx(real[key], rel=1e-9), key
        # output TPS: the real summary counts tokens by arrival inside the window (warmup included), the
        # fast one measured requests' tokens; the gate tests output TPS on its per-request ratio anyway
        for key in ("output_tps", "output_tps_per_gpu"):
            assert fast[key] == pytest.approx(real[key], rel=0.15), key
        for metric in ("ttft_s", "tps_user", "tpot_s", "e2e_s"):
            for stat in ("n", "mean", "min", "max", "p10", "p50", "p90", "p99"):
                assert fast[metric][stat] == pytest.approx(real[metric][stat], rel=1e-6), (metric, stat)


def test_holm_adjusts_step_down() -> None:
    assert rstats.holm([0.01, 0.04, 0.03, 0.5]) == pytest.approx([0.04, 0.09, 0.09, 0.5])
    assert rstats.holm([]) == []


def test_bootstrap_sampler_matches_brute_force_resampling() -> None:
    rng = np.random.default_rng(7)
    x = np.sort(rng.lognormal(0, 0.5, 150))
    for q in (0.1, 0.5, 0.99):
        fast = rstats.bootstrap_quantile(x, q, 20_000, np.random.default_rng(1))
        idx = np.random.default_rng(2).integers(0, len(x), (4_000, len(x)))
        brute = np.quantile(x[idx], q, axis=1)
        assert stats.ks_2samp(fast, brute).pvalue > 0.01, q
        assert np.mean(fast) == pytest.approx(np.mean(brute), rel=0.01)


def test_bootstrap_quantile_diff_interval_and_p() -> None:
    rng = np.random.default_rng(3)
    x, y = rng.normal(10, 1, 400), rng.normal(11, 1, 400)
    lo, hi, p = rstats.bootstrap_quantile_diff(x, y, 0.9, alpha=0.05, resamples=5_000, rng=rng)
    assert 0 < lo < 1 < hi and p < 0.001
    lo, hi, p = rstats.bootstrap_quantile_diff(x, x.copy(), 0.9, alpha=0.05, resamples=5_000, rng=rng)
    assert lo <= 0 <= hi and p > 0.5


# --------------------------------------------------------------------------------------------------
# Verdicts on single runs


def test_planted_regressions_are_caught_and_named(tmp_path: Path) -> None:
    b = write_run(tmp_path / "base", seed=1)
    c = write_run(tmp_path / "cand", seed=2, shape=Shape(tps_factor=0.9, ttft_factor=1.2))
    result = gate.evaluate(b, c)
    assert result.exit_code == gate.EXIT_REGRESSION
    for point in ("c=4", "c=16", "c=64"):
        row = _row(result, point, "tps_user_p50")
        assert row.verdict is Verdict.REGRESSED and row.test is Method.MANN_WHITNEY
        assert row.change is not None and row.change == pytest.approx(-10, abs=3)
        assert row.worse == pytest.approx(-row.change)
        assert row.p_adjusted is not None and row.p_value is not None and row.p_adjusted >= row.p_value
        assert _row(result, point, "ttft_s_p50").verdict is Verdict.REGRESSED
    assert any("TPS/user p50" in r and "c=16" in r for r in result.reasons)
    assert _row(result, "c=16", "ttft_s_p99").test is Method.BOOTSTRAP
    assert _row(result, "c=16", "output_tps").test is Method.RATIO


def test_identical_configuration_passes_with_every_row_judged(tmp_path: Path) -> None:
    b = write_run(tmp_path / "base", seed=1)
    c = write_run(tmp_path / "cand", seed=2)
    result = gate.evaluate(b, c)
    assert result.exit_code == gate.EXIT_PASS and result.reasons == ()
    assert len(result.rows) == 3 * len(gate.DEFAULT_METRICS)
    assert {r.verdict for r in result.rows} <= {Verdict.UNCHANGED, Verdict.LARGE_NOT_SIGNIFICANT}
    assert all(r.change is not None for r in result.rows)
    assert gate.evaluate(b, c).rows == result.rows  # seeded: the same verdicts every time


def test_improvement_is_reported_and_passes(tmp_path: Path) -> None:
    b = write_run(tmp_path / "base", seed=1)
    c = write_run(tmp_path / "cand", seed=2, shape=Shape(tps_factor=1.15, ttft_factor=0.8))
    result = gate.evaluate(b, c)
    assert result.exit_code == gate.EXIT_PASS
    assert _row(result, "c=16", "tps_user_p50").verdict is Verdict.IMPROVED
    assert _row(result, "c=16", "ttft_s_p50").verdict is Verdict.IMPROVED


def test_error_rate_regression_uses_fisher(tmp_path: Path) -> None:
    b = write_run(tmp_path / "base", seed=1, loads=(16,))
    c = write_run(tmp_path / "cand", seed=2, loads=(16,), shape=Shape(error_p=0.10))
    row = _row(gate.evaluate(b, c), "c=16", "error_rate")
    assert row.test is Method.FISHER and row.verdict is Verdict.REGRESSED
    assert row.change is not None and row.change > 5  # percentage points


def test_output_tps_regression_is_tested_on_the_little_law_ratio(tmp_path: Path) -> None:
    b = write_run(tmp_path / "base", seed=1, loads=(16,))
    c = write_run(tmp_path / "cand", seed=2, loads=(16,), shape=Shape(tps_factor=0.8))
    row = _row(gate.evaluate(b, c), "c=16", "output_tps")
    assert row.test is Method.RATIO and row.verdict is Verdict.REGRESSED
    assert row.change is not None and row.change < -10 and "sum(tokens)/sum(latency)" in row.note

    (b / "requests.jsonl").unlink()  # summary only: one number per run, reported but never a failure
    row = _row(gate.evaluate(b, c), "c=16", "output_tps")
    assert row.test is Method.NONE and row.verdict is Verdict.LARGE_NOT_SIGNIFICANT


def test_significance_must_point_the_way_of_the_change() -> None:
    spec = gate.metric_spec("tps_user_p50")
    cell = _Cell("c=1", spec, 5.0, baseline=100.0, candidate=80.0, change=-20.0, effect_sign=1.0)
    assert _verdict(cell, 0.001, 0.05) is Verdict.LARGE_NOT_SIGNIFICANT
    cell.effect_sign = -1.0
    assert _verdict(cell, 0.001, 0.05) is Verdict.REGRESSED


def test_latency_changes_within_the_client_lag_are_not_judged(tmp_path: Path) -> None:
    b = write_run(tmp_path / "base", seed=1, loads=(16,))
    c = write_run(tmp_path / "cand", seed=2, loads=(16,), shape=Shape(ttft_factor=1.2))
    assert _row(gate.evaluate(b, c), "c=16", "ttft_s_p50").verdict is Verdict.REGRESSED
    s = json.loads((c / "summary.json").read_text())
    s["points"][0]["self_check"].update(loop_lag_p99_s=0.5, client_bound=True)  # TTFT p50 is ~0.3 s
    (c / "summary.json").write_text(json.dumps(s))
    result = gate.evaluate(b, c)
    row = _row(result, "c=16", "ttft_s_p50")
    assert row.verdict is Verdict.UNCHANGED and row.abs_floor == 0.5
    assert "client's timing noise" in row.note and "500.0 ms" in gate.to_markdown(result)
    assert any("client could not keep up" in w for w in result.warnings)
    assert _row(result, "c=16", "tps_user_p50").abs_floor is None


def test_tiny_samples_are_never_a_failure(tmp_path: Path) -> None:
    b = write_run(tmp_path / "base", seed=1, n=5, warmup=1)
    c = write_run(tmp_path / "cand", seed=2, n=5, warmup=1, shape=Shape(tps_factor=0.5, ttft_factor=3))
    result = gate.evaluate(b, c)
    assert result.exit_code == gate.EXIT_PASS
    row = _row(result, "c=16", "tps_user_p50")
    assert row.verdict is Verdict.LARGE_NOT_SIGNIFICANT and row.test is Method.NONE
    assert "too few samples" in row.note
    assert all(r.verdict is not Verdict.REGRESSED for r in result.rows)


def test_p99_needs_samples_beyond_it(tmp_path: Path) -> None:
    b = write_run(tmp_path / "base", seed=1, loads=(16,), n=60)
    c = write_run(tmp_path / "cand", seed=2, loads=(16,), n=60, shape=Shape(ttft_factor=2))
    result = gate.evaluate(b, c)
    assert _row(result, "c=16", "ttft_s_p99").test is Method.NONE  # 60 < 150
    assert _row(result, "c=16", "ttft_s_p50").verdict is Verdict.REGRESSED


# --------------------------------------------------------------------------------------------------
# Comparability and input errors


@pytest.mark.parametrize(
    ("shape", "reason"),
    [
        (Shape(output_tokens=512), "workload ISL/OSL 1,000/512 vs 1,000/256 tokens"),
        (Shape(input_tokens=8000), "workload ISL/OSL 8,000/256 vs 1,000/256 tokens"),
        (Shape(model="llama"), "model 'llama' vs 'maverick'"),
        (Shape(api="completions"), "API 'completions' vs 'chat'"),
    ],
)
def test_incomparable_runs_exit_2_with_the_reason(tmp_path: Path, shape: Shape, reason: str) -> None:
    b = write_run(tmp_path / "base", seed=1, loads=(16,), n=20)
    c = write_run(tmp_path / "cand", seed=2, loads=(16,), n=20, shape=shape)
    result = gate.evaluate(b, c)
    assert result.exit_code == gate.EXIT_NOT_COMPARABLE and result.rows == ()
    assert result.reasons == (f"candidate differs from baseline: {reason}",)  # compare's wording too


def test_no_common_load_point_exits_2(tmp_path: Path) -> None:
    b = write_run(tmp_path / "base", seed=1, loads=(4,), n=20)
    c = write_run(tmp_path / "cand", seed=2, loads=(8,), n=20)
    result = gate.evaluate(b, c)
    assert result.exit_code == gate.EXIT_NOT_COMPARABLE
    assert "no load point in common" in result.reasons[0] and "c=4" in result.reasons[0]


def test_points_are_matched_by_load_not_position(tmp_path: Path) -> None:
    b = write_run(tmp_path / "base", seed=1, loads=(4, 16), n=30)
    c = write_run(tmp_path / "cand", seed=2, loads=(16, 64), n=30)
    result = gate.evaluate(b, c)
    assert result.exit_code == gate.EXIT_PASS
    assert [r.point for r in result.rows[:: len(gate.DEFAULT_METRICS)]] == ["c=4", "c=16", "c=64"]
    assert _row(result, "c=4", "tps_user_p50").verdict is Verdict.NOT_COMPARABLE
    assert _row(result, "c=64", "ttft_s_p50").verdict is Verdict.NOT_COMPARABLE
    assert _row(result, "c=16", "tps_user_p50").verdict is not Verdict.NOT_COMPARABLE
    assert _row(result, "c=16", "tps_user_p50").n_baseline == _row(result, "c=16", "tps_user_p50").n_candidate
    assert any("c=4: only in the baseline" in w for w in result.warnings)


def test_rate_points_match_despite_float_noise(tmp_path: Path) -> None:
    b = write_run(tmp_path / "base", seed=1, loads=(16,), n=30)
    c = write_run(tmp_path / "cand", seed=2, loads=(16,), n=30)
    for run, rate in ((b, 2.5), (c, 2.5000000000001)):
        s = json.loads((run / "summary.json").read_text())
        s["points"][0].update(concurrency=None, rate=rate, arrival="poisson")
        (run / "summary.json").write_text(json.dumps(s))
    result = gate.evaluate(b, c)
    assert result.exit_code == gate.EXIT_PASS and result.rows[0].point == "rate=2.5/s"


def test_missing_and_malformed_inputs_name_the_file(tmp_path: Path) -> None:
    good = write_run(tmp_path / "good", seed=1, loads=(16,), n=20)
    result = gate.evaluate(tmp_path / "nope", good)
    assert result.exit_code == 2 and "nope" in result.reasons[0] and "no such" in result.reasons[0]

    empty = tmp_path / "empty"
    empty.mkdir()
    result = gate.evaluate(good, empty)
    assert result.exit_code == 2 and str(empty / "summary.json") in result.reasons[0]

    bad = write_run(tmp_path / "bad", seed=2, loads=(16,), n=20)
    (bad / "summary.json").write_text('{"schema": 1, "points": [')
    result = gate.evaluate(good, bad)
    assert result.exit_code == 2 and "summary.json: not valid JSON" in result.reasons[0]

    (bad / "summary.json").write_text('{"schema": 7, "points": []}')
    assert "schema 7" in gate.evaluate(good, bad).reasons[0]

    broken = write_run(tmp_path / "broken", seed=3, loads=(16,), n=20)
    lines = (broken / "requests.jsonl").read_text().splitlines()
    lines[3] = lines[3][:40]
    (broken / "requests.jsonl").write_text("\n".join(lines) + "\n")
    result = gate.evaluate(good, broken)
    assert result.exit_code == 2 and "requests.jsonl:4: not a JSON record" in result.reasons[0]


def test_truncated_last_record_is_tolerated(tmp_path: Path) -> None:
    b = write_run(tmp_path / "base", seed=1, loads=(16,), n=40)
    c = write_run(tmp_path / "cand", seed=2, loads=(16,), n=40)
    text = (c / "requests.jsonl").read_text()
    (c / "requests.jsonl").write_text(text[: len(text) - 100])  # killed mid-line
    result = gate.evaluate(b, c)
    assert result.exit_code == gate.EXIT_PASS
    assert any("truncated" in w for w in result.warnings)
    assert _row(result, "c=16", "error_rate").n_candidate == 39


# --------------------------------------------------------------------------------------------------
# Summary-only baseline


def test_summary_only_baseline_compares_medians_by_ci_overlap(tmp_path: Path) -> None:
    b = write_run(tmp_path / "base", seed=1)
    same = write_run(tmp_path / "same", seed=2)
    slow = write_run(tmp_path / "slow", seed=3, shape=Shape(tps_factor=0.9))

    result = gate.evaluate(b / "summary.json", same)
    assert result.exit_code == gate.EXIT_PASS
    assert any("no requests.jsonl for the baseline:" in w for w in result.warnings)
    assert _row(result, "c=16", "tps_user_p50").test is Method.CI_OVERLAP
    p99 = _row(result, "c=16", "ttft_s_p99")
    assert p99.test is Method.NONE and p99.change is not None and "not tested" in p99.note
    assert _row(result, "c=16", "error_rate").test is Method.FISHER  # counts are in the summary

    result = gate.evaluate(b / "summary.json", slow)
    assert result.exit_code == gate.EXIT_REGRESSION
    row = _row(result, "c=16", "tps_user_p50")
    assert (
        row.verdict is Verdict.REGRESSED
        and row.baseline == json.loads((b / "summary.json").read_text())["points"][1]["tps_user"]["p50"]
    )


def test_run_dir_without_records_falls_back_to_summary(tmp_path: Path) -> None:
    b = write_run(tmp_path / "base", seed=1, loads=(16,))
    c = write_run(tmp_path / "cand", seed=2, loads=(16,))
    (b / "requests.jsonl").unlink()
    result = gate.evaluate(b, c)
    assert result.exit_code == gate.EXIT_PASS
    assert any("requests.jsonl: not found" in w for w in result.warnings)


# --------------------------------------------------------------------------------------------------
# Thresholds


def test_thresholds_override_defaults_and_add_metrics(tmp_path: Path) -> None:
    b = write_run(tmp_path / "base", seed=1, loads=(16,))
    c = write_run(tmp_path / "cand", seed=2, loads=(16,), shape=Shape(tps_factor=0.9))
    result = gate.evaluate(b, c, {"tps_user_p50": 15, "tpot_s_p50": 2})
    assert result.thresholds["tps_user_p50"] == 15 and result.thresholds["ttft_s_p99"] == 10
    assert _row(result, "c=16", "tps_user_p50").verdict is Verdict.UNCHANGED  # 10% < 15% floor
    assert _row(result, "c=16", "tpot_s_p50").verdict is Verdict.REGRESSED  # added row, lower is better
    assert result.exit_code == gate.EXIT_REGRESSION


def test_scenario_gate_block_sets_thresholds_and_cli_wins(tmp_path: Path) -> None:
    b = write_run(tmp_path / "base", seed=1, loads=(16,))
    c = write_run(
        tmp_path / "cand",
        seed=2,
        loads=(16,),
        shape=Shape(tps_factor=0.9),
        gate_thresholds={"tps_user_p50": 20, "tps_user_p10": 20},
    )
    assert gate.evaluate(b, c).exit_code == gate.EXIT_PASS
    assert gate.evaluate(b, c, {"tps_user_p50": 5}).exit_code == gate.EXIT_REGRESSION


def test_bad_thresholds_exit_2(tmp_path: Path) -> None:
    b = write_run(tmp_path / "base", seed=1, loads=(16,), n=20)
    c = write_run(tmp_path / "cand", seed=2, loads=(16,), n=20)
    result = gate.evaluate(b, c, {"tps_usr_p50": 5})
    assert result.exit_code == 2 and "tps_usr_p50" in result.reasons[0]
    assert gate.evaluate(b, c, {"ttft_s_p99": -1}).exit_code == 2
    bad = write_run(tmp_path / "bad", seed=3, loads=(16,), n=20, gate_thresholds={"latency": 5})
    result = gate.evaluate(b, bad)
    assert result.exit_code == 2 and "scenario.yaml" in result.reasons[0]


def test_parse_thresholds() -> None:
    assert gate.parse_thresholds(["ttft_s_p99=15", "error_rate = 2", "tps_user_p10=12%"]) == {
        "ttft_s_p99": 15.0,
        "error_rate": 2.0,
        "tps_user_p10": 12.0,
    }
    for bad in (["ttft_s_p99"], ["ttft_s_p99=abc"], ["nope=3"], ["ttft_s_p99=-2"]):
        with pytest.raises(ValueError):
            gate.parse_thresholds(bad)


# --------------------------------------------------------------------------------------------------
# Reports


def test_markdown_junit_and_terminal_reports(tmp_path: Path) -> None:
    b = write_run(tmp_path / "base", seed=1, loads=(4, 16))
    c = write_run(tmp_path / "cand", seed=2, loads=(16, 64), shape=Shape(tps_factor=0.9))
    result = gate.evaluate(b, c)
    assert result.exit_code == gate.EXIT_REGRESSION

    md = gate.to_markdown(result)
    assert md.startswith("### tpsbench gate: ❌")
    table = [line for line in md.splitlines() if line.startswith("| c=")]
    assert len(table) == len(result.rows)
    assert any("TPS/user p50" in line and "regressed" in line for line in table)
    assert any("not comparable" in line for line in table)

    root = ET.fromstring(gate.to_junit(result))
    suite = root.find("testsuite")
    assert suite is not None
    cases = suite.findall("testcase")
    assert len(cases) == len(result.all_rows) == int(suite.get("tests", "0"))
    failed = [tc for tc in cases if tc.find("failure") is not None]
    assert len(failed) == len(result.regressions) == int(suite.get("failures", "0")) > 0
    assert {tc.get("name") for tc in failed} >= {"tps_user_p50"}
    skipped = [tc for tc in cases if tc.find("skipped") is not None]
    assert len(skipped) == 2 * len(gate.DEFAULT_METRICS) == int(suite.get("skipped", "0"))

    console = Console(record=True, width=200)
    console.print(gate.rich_table(result))
    text = console.export_text()
    assert "regressed" in text and "CI of difference [" in text  # notes are escaped, not eaten as markup


def test_junit_for_not_comparable_has_an_error(tmp_path: Path) -> None:
    result = gate.evaluate(tmp_path / "missing", tmp_path / "missing2")
    root = ET.fromstring(gate.to_junit(result))
    assert root.get("errors") == "1"
    err = root.find("./testsuite/testcase/error")
    assert err is not None and "missing" in err.get("message", "")
    assert "not comparable" in gate.to_markdown(result)


# --------------------------------------------------------------------------------------------------
# Error rates over seeded trials (the numbers benchmarks/gate_power.py prints)


def test_false_alarm_rate_on_identical_configurations() -> None:
    exit1, rows = gate_rates(100, Shape())
    assert exit1 < 0.05, (exit1, rows)


def test_detection_rate_of_planted_tps_regression() -> None:
    exit1, rows = gate_rates(100, Shape(tps_factor=0.9), loads=(16,), first_seed=1000)
    assert exit1 > 0.9 and rows["tps_user_p50"] > 0.9, (exit1, rows)


def test_detection_rate_of_planted_ttft_regression() -> None:
    # TTFT x 1.2 (p99 +20%, median too) is caught; the p99 row alone is weaker at 200 requests (benchmark).
    exit1, rows = gate_rates(100, Shape(ttft_factor=1.2), loads=(16,), first_seed=2000)
    assert exit1 > 0.9, (exit1, rows)


def test_detection_of_a_tail_only_ttft_regression_needs_more_requests() -> None:
    # p99 +20% with the median unchanged: only the bootstrap p99 row can see it.
    exit1, rows = gate_rates(20, replace(Shape(), ttft_tail=0.2), loads=(16,), n=2000, first_seed=3000)
    assert rows["ttft_s_p99"] > 0.9, (exit1, rows)
