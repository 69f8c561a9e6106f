"""Synthetic run directories for the report tests: a closed-loop sweep that looks like a real endpoint.

Only the requests are simulated (integer-nanosecond timestamps, one worker per concurrency slot, back to
back); everything after them is the real pipeline: ``summarize_level`` / ``summarize_run`` make the summary
and :mod:`tpsbench.results.rundir` writes the run directory, so a renamed summary key or a changed metric
definition reaches the report, compare and gate tests that read these runs.

    write_run(tmp_path / "a", tps_user={1: 1000, 64: 180})
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tpsbench.config.scenario import Level
from tpsbench.core.record import NS_PER_S, ErrorKind, RequestRecord, TokenSource
from tpsbench.results import files
from tpsbench.results.rundir import RecordWriter, write_bytes_atomic, write_json
from tpsbench.results.summary import Slo, summarize_level, summarize_run, to_csv, to_json

# TPS/user of a Maverick-like endpoint: speculative decoding up to c=8, then memory-bound decode.
DEFAULT_TPS_USER = {1: 1000.0, 2: 930.0, 4: 800.0, 8: 640.0, 16: 420.0, 32: 280.0, 64: 180.0}
SPEC_TOKENS = (1, 2, 3, 4)
SPEC_PROBS = (0.22, 0.218, 0.168, 0.394)  # tokens committed per verify step (EAGLE-3, k=3)
SPEC_MEAN = float(np.dot(SPEC_TOKENS, SPEC_PROBS))


@dataclass
class SynthRun:
    summary: dict[str, Any]
    records: list[RequestRecord] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    scenario_yaml: str = ""


def _interp_tps(table: Mapping[int, float], c: int) -> float:
    """TPS/user at concurrency c, log-linear between the table's entries."""
    ks = sorted(table)
    if c in table:
        return float(table[c])
    xs = np.log2(ks)
    return float(np.interp(math.log2(c), xs, [table[k] for k in ks]))


def synth_run(
    name: str = "demo",
    *,
    concurrencies: Sequence[int] = (1, 2, 4, 8, 16, 32, 64),
    rates: Sequence[float] = (),
    tps_user: Mapping[int, float] = DEFAULT_TPS_USER,
    requests_per_level: int = 40,
    isl: int = 1000,
    osl: int = 200,
    model: str = "llama-4-maverick",
    api: str = "chat",
    gpus: int | None = 8,
    slo: Mapping[str, Mapping[str, float]] | None = None,
    warnings: Mapping[int, Sequence[str]] | None = None,
    client_bound: Sequence[int] = (),
    errors: Mapping[int, int] | None = None,
    seed: int = 0,
    metadata_extra: Mapping[str, Any] | None = None,
    reference: Mapping[str, Any] | None = None,
) -> SynthRun:
    """Simulate a sweep. Keys of ``warnings``, ``errors`` (failed requests) and ``client_bound`` are level
    indexes. ``rates`` adds open-loop levels after the closed-loop ones. ``reference`` makes it a run of the
    bundled reference endpoint with those model overrides in its scenario."""
    rng = np.random.default_rng(seed)
    loads: list[tuple[int | None, float | None]] = [(c, None) for c in concurrencies]
    loads += [(None, r) for r in rates]
    all_records: list[RequestRecord] = []
    slo_spec: Slo = {k: dict(v) for k, v in (slo or {}).items()}
    points: list[dict[str, Any]] = []
    t0 = 1_000 * NS_PER_S
    rid = 0
    for level, (conc, rate) in enumerate(loads):
        c = conc if conc is not None else max(1, round(float(rate or 1.0)))
        speed = _interp_tps(tps_user, c)
        spec = c <= 8
        n_fail = (errors or {}).get(level, 0)
        workers = [t0] * c
        records: list[RequestRecord] = []
        for i in range(c + requests_per_level):
            w = i % c
            send = workers[w]
            warm = i < c
            fail = not warm and i - c < n_fail
            ttft = 0.045 + 0.004 * c
            ttft *= float(rng.lognormal(0, 0.15))
            u = speed * float(rng.lognormal(0, 0.06)) * (0.6 if rng.random() < 0.04 else 1.0)
            chunk_ns: list[int] = []
            chunk_tokens: list[float] = []
            t = send + int(ttft * NS_PER_S)
            made = 0
            while made < osl and not fail:
                k = int(rng.choice(SPEC_TOKENS, p=SPEC_PROBS)) if spec else 1
                k = min(k, osl - made)
                if chunk_ns:
                    step = (SPEC_MEAN if spec else 1.0) / u
                    t += int(step * float(rng.lognormal(0, 0.2)) * NS_PER_S)
                chunk_ns.append(t)
                chunk_tokens.append(float(k))
                made += k
            end = t + 1_000_000 if not fail else send + int(0.01 * NS_PER_S)
            rec = RequestRecord(
                request_id=rid,
                level=level,
                send_ns=send,
                end_ns=end,
                worker=w,
                warmup=warm,
                status=200 if not fail else 503,
                error=ErrorKind.HTTP_5XX if fail else None,
                chunk_ns=chunk_ns,
                chunk_tokens=chunk_tokens,
                output_tokens=osl if not fail else None,
                token_source=TokenSource.USAGE if not fail else TokenSource.NONE,
                input_tokens=isl,
                requested_output_tokens=osl,
                finish_reason="length" if not fail else None,
            )
            rid += 1
            workers[w] = end
            records.append(rec)
        t0 = max(workers) + NS_PER_S
        all_records += records
        level_spec = (
            Level(concurrency=conc, requests=requests_per_level, warmup=c)
            if conc is not None
            else Level(rate=rate, requests=requests_per_level, warmup=c)
        )
        point = summarize_level(
            records,
            level_index=level,
            level=level_spec,
            slo=slo_spec,
            gpus=gpus,
            self_check={"loop_lag_p99_s": 0.0004, "cpu_percent": 12.0},
            seed=seed,
        )
        # knobs the simulation cannot produce by itself: a flagged client and extra warnings
        if level in client_bound:
            point["self_check"]["client_bound"] = True
        point["warnings"] = list(point["warnings"]) + list((warnings or {}).get(level, []))
        points.append(point)
    run_info = {
        "name": name,
        "scenario_name": f"{name}-scenario",
        "endpoint": "http://127.0.0.1:8000/v1",
        "model": model,
        "api": api,
        "gpus": gpus,
        "workload": {"input_tokens": isl, "output_tokens": osl},
        "reference_endpoint": reference is not None,
    }
    summary = summarize_run(points, run_info=run_info, slo=slo_spec)
    metadata = {
        "tool": {"name": "tpsbench", "version": "0.1.0"},
        "python": "3.11.2",
        "host": "bench-host",
        "endpoint": {"base_url": "http://127.0.0.1:8000/v1", "model": model, "api_key_env": "BENCH_KEY"},
        "seed": seed,
        "start": "2025-05-20T10:00:00Z",
        "end": "2025-05-20T10:12:00Z",
        "clock": "perf_counter_ns",
        "workers": 1,
        **(metadata_extra or {}),
    }
    load_yaml = "\n".join(
        f"  - {{concurrency: {cc}, requests: {requests_per_level}}}"
        if cc is not None
        else f"  - {{rate: {r}, requests: {requests_per_level}}}"
        for cc, r in loads
    )
    scenario = (
        f"name: {name}-scenario\nendpoint:\n  base_url: http://127.0.0.1:8000/v1\n  model: {model}\n"
        f"  api: {api}\nworkload:\n  input_tokens: {isl}\n  output_tokens: {osl}\n"
        f"gpus: {gpus if gpus else 'null'}\nload:\n{load_yaml}\n"
        f"reference: {json.dumps(dict(reference or {}))}\n"
    )
    return SynthRun(summary=summary, records=all_records, metadata=metadata, scenario_yaml=scenario)


def write_run(run_dir: Path, name: str | None = None, *, with_requests: bool = True, **kwargs: Any) -> Path:
    """Write a synthetic run directory (see :func:`synth_run` for the knobs) and return its path."""
    run = synth_run(name or run_dir.name, **kwargs)
    run_dir.mkdir(parents=True, exist_ok=False)
    write_bytes_atomic(run_dir / files.SUMMARY_JSON, to_json(run.summary))
    write_bytes_atomic(run_dir / files.SUMMARY_CSV, to_csv(run.summary))
    write_json(run_dir / files.METADATA, run.metadata)
    (run_dir / files.SCENARIO).write_text(run.scenario_yaml, encoding="utf-8")
    if with_requests:
        with RecordWriter(run_dir / files.REQUESTS) as writer:
            for record in run.records:
                writer.write(record)
    return run_dir
