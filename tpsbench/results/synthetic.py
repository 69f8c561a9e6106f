"""Seeded synthetic runs written through the real pipeline, to measure the regression gate's error rates
(``benchmarks/gate_power.py``) and to test it (tests/test_gate.py) on runs whose truth is known.

A :class:`Shape` says how one run's requests are drawn; :func:`write_synthetic_run` draws them per load point
(closed loop, one request per free user) as records and writes the run directory as a real run does: every
record through :class:`~tpsbench.results.rundir.RecordWriter`, the summary by
:func:`~tpsbench.results.summary.summarize_level` and :func:`~tpsbench.results.summary.summarize_run`.
Nothing here computes a metric or a summary block of its own.

    >>> import tempfile
    >>> run = write_synthetic_run(Path(tempfile.mkdtemp()) / "r", seed=0, loads=(4,), n=20)
    >>> sorted(p.name for p in run.iterdir())
    ['requests.jsonl', 'scenario.yaml', 'summary.csv', 'summary.json']
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats as sps

from tpsbench.config.scenario import Level
from tpsbench.core.record import NS_PER_S, ErrorKind, RequestRecord, TokenSource
from tpsbench.results import files
from tpsbench.results import repeats as repeats_
from tpsbench.results.rundir import RecordWriter, write_bytes_atomic
from tpsbench.results.summary import summarize_level, summarize_run, to_csv, to_json

__all__ = ["Shape", "synthetic_records", "write_synthetic_run"]


@dataclass(frozen=True)
class Shape:
    """How one run's requests are drawn; a gate trial's candidate differs from its baseline by a plant."""

    ttft_sigma: float = 0.35  # lognormal sigma of TTFT at a load point (CV ~ 36%: queueing behind prefills)
    tps_sigma: float = 0.10  # lognormal sigma of TPS/user (CV ~ 10%: batch composition varies)
    error_p: float = 0.005
    tps_factor: float = 1.0  # every request's TPS/user x factor
    ttft_factor: float = 1.0  # every request's TTFT x factor
    ttft_tail: float = 0.0  # TTFT above its p90 stretched up to (1 + tail) at p97+: p99 +tail, median same
    output_tokens: int = 256
    input_tokens: int = 1000
    model: str = "maverick"
    api: str = "chat"
    drift: float = 0.0  # run-to-run: lognormal sigma of a factor on TPS/user and TTFT drawn once per repeat


def _medians(concurrency: float) -> tuple[float, float]:
    """(TTFT s, TPS/user) medians that degrade with load, like a batching server."""
    return 0.15 * (1 + concurrency / 16), 80.0 / (1 + concurrency / 32)


def synthetic_records(
    rng: np.random.Generator, level: int, concurrency: int, n: int, warmup: int, shape: Shape, first_id: int
) -> list[RequestRecord]:
    """``warmup + n`` closed-loop requests of one load point: TTFT and TPS/user lognormal around
    :func:`_medians`, each answer two chunks (the first token, then the rest), failures HTTP 500."""
    total = n + warmup
    ttft_med, tps_med = _medians(concurrency)
    z = rng.standard_normal(total)
    ttft = ttft_med * np.exp(shape.ttft_sigma * z) * shape.ttft_factor
    if shape.ttft_tail:
        ramp = np.clip((sps.norm.cdf(z) - 0.90) / 0.07, 0.0, 1.0)  # exact: the true p99 moves by +tail
        ttft *= 1 + shape.ttft_tail * ramp
    tps = tps_med * np.exp(shape.tps_sigma * rng.standard_normal(total)) * shape.tps_factor
    failed = rng.random(total) < shape.error_p
    tokens = shape.output_tokens
    free = [(0, w) for w in range(concurrency)]  # the next request goes to the first free user
    out = []
    for i in range(total):
        t, worker = heapq.heappop(free)
        rec = RequestRecord(
            request_id=first_id + i,
            level=level,
            send_ns=t,
            end_ns=t + int(0.05 * NS_PER_S),
            worker=worker,
            warmup=i < warmup,
            status=500,
            error=ErrorKind.HTTP_5XX,
            error_detail="500 Internal Server Error",
            input_tokens=shape.input_tokens,
            requested_output_tokens=tokens,
        )
        if not failed[i]:
            first = t + int(ttft[i] * NS_PER_S)
            rec.end_ns = first + int((tokens - 1) / tps[i] * NS_PER_S)
            rec.headers_ns, rec.status, rec.error, rec.error_detail = first - 1000, 200, None, None
            rec.chunk_ns, rec.chunk_tokens = [first, rec.end_ns], [1.0, float(tokens - 1)]
            rec.output_tokens, rec.token_source, rec.finish_reason = tokens, TokenSource.USAGE, "length"
        heapq.heappush(free, (rec.end_ns, worker))
        out.append(rec)
    return out


def write_synthetic_run(
    path: Path,
    *,
    seed: int,
    loads: Sequence[int] = (4, 16, 64),
    n: int = 200,
    warmup: int = 8,
    shape: Shape = Shape(),
    gate_thresholds: Mapping[str, float] | None = None,
    gpus: int = 8,
    repeats: int = 1,
) -> Path:
    """Write a run directory (summary.json/csv, requests.jsonl, scenario.yaml) of seeded synthetic
    requests, one closed-loop load point per concurrency of ``loads``, and return its path.

    ``repeats`` > 1 runs the plan that many times and writes the summary a run of repeats writes (records
    stamped with their repeat, points pooled by :func:`tpsbench.results.repeats.pool`). ``shape.drift``
    draws one factor per repeat (a single run too): run-to-run differences the requests of one run
    cannot show."""
    rng = np.random.default_rng(seed)
    path.mkdir(parents=True)
    per_level: dict[int, list[dict[str, Any]]] = {}
    by_level: dict[int, list[RequestRecord]] = {}
    next_id = 0
    self_check = {"loop_lag_p99_s": 0.0005, "cpu_percent": 10.0}
    with RecordWriter(path / files.REQUESTS) as writer:
        for k in range(repeats):
            this = shape
            if shape.drift:
                f = float(np.exp(shape.drift * rng.standard_normal()))
                this = replace(shape, tps_factor=shape.tps_factor * f, ttft_factor=shape.ttft_factor / f)
            for index, c in enumerate(loads):
                records = synthetic_records(rng, index, c, n, warmup, this, first_id=next_id)
                next_id += len(records)
                for record in records:
                    record.repeat = k
                    writer.write(record)
                level = Level(concurrency=c, requests=n, warmup=warmup)
                by_level.setdefault(index, []).extend(records)
                point = summarize_level(
                    records, level_index=index, level=level, slo={}, gpus=gpus, self_check=dict(self_check),
                    seed=seed,
                )  # fmt: skip
                if repeats > 1:  # as load/benchmark.py: a single run's point carries no repeat
                    point["repeat"] = k
                per_level.setdefault(index, []).append(point)
    points = []
    for index, per in per_level.items():
        if repeats == 1:
            points.append(per[0])
            continue
        level = Level(concurrency=loads[index], requests=n, warmup=warmup)
        whole = summarize_level(
            by_level[index], level_index=index, level=level, slo={}, gpus=gpus,
            self_check=repeats_.merged_self_check(per), seed=seed,
        )  # fmt: skip
        points.append(repeats_.pool(whole, per))
    run_info = {
        "name": path.name,
        "scenario_name": "synthetic",
        "endpoint": "http://127.0.0.1:8000/v1",
        "model": shape.model,
        "api": shape.api,
        "gpus": gpus,
        "workload": {"input_tokens": shape.input_tokens, "output_tokens": shape.output_tokens},
    }
    block = None
    if repeats > 1:
        runs = [{"repeat": k} for k in range(repeats)]
        block = repeats_.run_block(runs, points, count=repeats, cooldown_s=0.0)
    summary = summarize_run(points, run_info=run_info, slo={}, repeats=block)
    write_bytes_atomic(path / files.SUMMARY_JSON, to_json(summary))
    write_bytes_atomic(path / files.SUMMARY_CSV, to_csv(summary))
    scenario = "name: synthetic\nload:\n" + "".join(
        f"  - {{concurrency: {c}, requests: {n}, warmup: {warmup}}}\n" for c in loads
    )
    if gate_thresholds:
        scenario += "gate:\n  thresholds:\n" + "".join(f"    {k}: {v}\n" for k, v in gate_thresholds.items())
    (path / files.SCENARIO).write_text(scenario, encoding="utf-8")
    return path
