"""Synthetic run directories for the report tests: a closed-loop sweep that looks like a real endpoint.

Each request is simulated on integer-nanosecond timestamps (one worker per concurrency slot, back to back),
then written as the contract says: ``requests.jsonl`` lines are ``RequestRecord.to_dict()`` plus the
per-request metrics, and ``summary.json`` holds the per-level distributions computed from those lines.

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

from tpsbench.core.record import NS_PER_S, ErrorKind, RequestRecord, TokenSource

# TPS/user of a Maverick-like endpoint: speculative decoding up to c=8, then memory-bound decode.
DEFAULT_TPS_USER = {1: 1000.0, 2: 930.0, 4: 800.0, 8: 640.0, 16: 420.0, 32: 280.0, 64: 180.0}
SPEC_TOKENS = (1, 2, 3, 4)
SPEC_PROBS = (0.22, 0.218, 0.168, 0.394)  # tokens committed per verify step (EAGLE-3, k=3)
SPEC_MEAN = float(np.dot(SPEC_TOKENS, SPEC_PROBS))
STATS_Q = {"p1": 1, "p5": 5, "p10": 10, "p50": 50, "p90": 90, "p95": 95, "p99": 99}


def dist_block(values: Sequence[float], rng: np.random.Generator | None = None) -> dict[str, Any]:
    """A summary metric block; with ``rng``, seeded bootstrap CIs of the median and the mean."""
    a = np.asarray(values, dtype=float)
    if a.size == 0:
        return {"n": 0, **{k: None for k in ("mean", "std", "min", "max", *STATS_Q)}}
    block: dict[str, Any] = {
        "n": int(a.size),
        "mean": float(a.mean()),
        "std": float(a.std(ddof=1)) if a.size > 1 else 0.0,
        "min": float(a.min()),
        "max": float(a.max()),
    }
    block.update({k: float(np.percentile(a, q)) for k, q in STATS_Q.items()})
    if rng is not None and a.size > 1:
        boot = rng.choice(a, size=(200, a.size), replace=True)
        block["p50_ci"] = [float(v) for v in np.percentile(np.median(boot, axis=1), [2.5, 97.5])]
        block["mean_ci"] = [float(v) for v in np.percentile(boot.mean(axis=1), [2.5, 97.5])]
    return block


def request_metrics(rec: RequestRecord) -> dict[str, Any]:
    """The per-request metrics the contract adds to each line (same definitions as docs/architecture.md)."""
    if not rec.ok or not rec.chunk_ns:
        keys = ("ttft_s", "decode_s", "decode_tokens", "first_chunk_tokens", "tps_user", "tpot_s", "e2e_s")
        return {**dict.fromkeys(keys), "e2e_tps": None, "itl_s": [], "n_chunks": 0, "sched_lag_s": None}
    n = float(rec.output_tokens or sum(rec.chunk_tokens))
    first, last = rec.chunk_ns[0], rec.chunk_ns[-1]
    decode_s = (last - first) / NS_PER_S
    decode_tokens = n - rec.chunk_tokens[0]
    e2e_s = (last - rec.send_ns) / NS_PER_S
    tps_user = decode_tokens / decode_s if decode_s > 0 and decode_tokens > 0 else None
    return {
        "ttft_s": (first - rec.send_ns) / NS_PER_S,
        "decode_s": decode_s,
        "decode_tokens": decode_tokens,
        "first_chunk_tokens": rec.chunk_tokens[0],
        "tps_user": tps_user,
        "tpot_s": 1 / tps_user if tps_user else None,
        "e2e_s": e2e_s,
        "e2e_tps": n / e2e_s if e2e_s > 0 else None,
        "itl_s": [(b - a) / NS_PER_S for a, b in zip(rec.chunk_ns, rec.chunk_ns[1:], strict=False)],
        "n_chunks": len(rec.chunk_ns),
        "sched_lag_s": None,
    }


@dataclass
class SynthRun:
    summary: dict[str, Any]
    lines: list[dict[str, Any]] = field(default_factory=list)
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
    lines: list[dict[str, Any]] = []
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
        level_lines = [{**r.to_dict(), **request_metrics(r)} for r in records]
        lines += level_lines
        measured = [ln for ln in level_lines if not ln["warmup"]]
        ok = [ln for ln in measured if ln["error"] is None]
        window = (max(ln["end_ns"] for ln in measured) - min(ln["send_ns"] for ln in measured)) / NS_PER_S
        out_tokens = sum(ln["output_tokens"] for ln in ok)

        def block(key: str, lines_: list[dict[str, Any]] = ok, ci: bool = True) -> dict[str, Any]:
            return dist_block([ln[key] for ln in lines_ if ln[key] is not None], rng if ci else None)

        point: dict[str, Any] = {
            "level": level,
            "concurrency": conc,
            "rate": rate,
            "arrival": "poisson" if rate is not None else None,
            "requests": len(records),
            "measured": len(measured),
            "warmup": c,
            "ok": len(ok),
            "errors": {"http_5xx": n_fail} if n_fail else {},
            "window_s": window,
            "ttft_s": block("ttft_s"),
            "tps_user": block("tps_user"),
            "tpot_s": block("tpot_s"),
            "e2e_s": block("e2e_s"),
            "itl_s": dist_block([g for ln in ok for g in ln["itl_s"]]),
            "tokens_per_chunk": dist_block([k for ln in ok for k in ln["chunk_tokens"]]),
            "output_tokens": dist_block([ln["output_tokens"] for ln in ok]),
            "sched_lag_s": dist_block([]),
            "output_tps": out_tokens / window,
            "output_tps_per_gpu": out_tokens / window / gpus if gpus else None,
            "request_rate": len(measured) / window,
            "error_rate": n_fail / len(measured),
            "goodput": len(ok) / window,
            "slo_met": None,
            "token_sources": {"usage": len(ok)},
            "short_outputs": 0,
            "self_check": {
                "loop_lag_p99_s": 0.0004,
                "sched_lag_p99_s": None,
                "achieved_concurrency": float(c),
                "cpu_percent": 12.0,
                "client_bound": level in client_bound,
            },
            # Like the summary writer: a failed request is always worth a sentence.
            "warnings": (
                [f"{n_fail} of {len(measured)} measured requests failed (http_5xx: {n_fail})"]
                if n_fail
                else []
            )
            + list((warnings or {}).get(level, [])),
        }
        points.append(point)
    summary = {
        "schema": 1,
        "tool": {"name": "tpsbench", "version": "0.1.0"},
        "run": {
            "name": name,
            "scenario_name": f"{name}-scenario",
            "endpoint": "http://127.0.0.1:8000/v1",
            "model": model,
            "api": api,
            "gpus": gpus,
            "workload": {"input_tokens": isl, "output_tokens": osl},
            "reference_endpoint": reference is not None,
        },
        "slo": {k: dict(v) for k, v in (slo or {}).items()},
        "points": points,
    }
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
    return SynthRun(summary=summary, lines=lines, metadata=metadata, scenario_yaml=scenario)


def write_run(run_dir: Path, name: str | None = None, *, with_requests: bool = True, **kwargs: Any) -> Path:
    """Write a synthetic run directory (see :func:`synth_run` for the knobs) and return its path."""
    run = synth_run(name or run_dir.name, **kwargs)
    run_dir.mkdir(parents=True, exist_ok=False)
    (run_dir / "summary.json").write_text(json.dumps(run.summary, indent=2), encoding="utf-8")
    (run_dir / "metadata.json").write_text(json.dumps(run.metadata, indent=2), encoding="utf-8")
    (run_dir / "scenario.yaml").write_text(run.scenario_yaml, encoding="utf-8")
    if with_requests:
        with (run_dir / "requests.jsonl").open("w", encoding="utf-8") as f:
            for line in run.lines:
                f.write(json.dumps(line) + "\n")
    return run_dir
