"""llm-d Benchmark Report v0.2 (llm-d/llm-d-benchmark ``llmdbenchmark/analysis/benchmark_report/``): one
report per load point, as llm-d writes one per workload stage. :func:`serialize` is pure (a summary in,
JSON bytes out); ``tests/test_export.py`` validates its output against the published JSON Schema.

Mapping (tpsbench summary point -> report):

- ``run``: uid = a hash of the run name and level, eid = a hash of the run name, time from
  metadata.json when given;
- ``scenario.load.standardized``: tool tpsbench (or the source tool of an imported run), the level's
  ``concurrency`` or ``rate_qps``, ISL/OSL means (``distribution: other``: tpsbench records the mean);
  the scenario's own description goes to ``native.config``;
- ``results.request_performance.aggregate``: requests total/failures; input/output length, TTFT, TPOT
  (``tpot_s``: decode time / decode tokens), ITL (tpsbench's inter-chunk gaps, ``itl_s``) and request
  latency (``e2e_s``) as Statistics blocks from the point's ``describe`` blocks (p0p1, p25, p75, p99p9
  and mode are not computed by tpsbench and are left out); throughput: output token rate, request rate.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import tpsbench

VERSION = "0.2"
_STATS = ("min", "p1", "p5", "p10", "p50", "p90", "p95", "p99", "max")


def _hash(*parts: object) -> str:
    return hashlib.sha256("/".join(str(p) for p in parts).encode()).hexdigest()[:32]


def _stats(block: object, units: str, scale: float = 1.0) -> dict[str, Any] | None:
    """A Statistics block from a tpsbench ``describe`` block (None when it has no mean)."""
    if not isinstance(block, Mapping) or not isinstance(block.get("mean"), int | float):
        return None
    out: dict[str, Any] = {"units": units, "mean": block["mean"] * scale}
    if isinstance(block.get("std"), int | float):
        out["stddev"] = block["std"] * scale
    for k in _STATS:
        if isinstance(block.get(k), int | float):
            out[k] = block[k] * scale
    return out


def _scalar(value: object, units: str) -> dict[str, Any] | None:
    return {"units": units, "mean": float(value)} if isinstance(value, int | float) else None


def _iso(wall: object) -> str | None:
    if not isinstance(wall, int | float):
        return None
    return datetime.fromtimestamp(wall, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _seq(mean: object) -> dict[str, Any]:
    return {"distribution": "other", "value": float(mean) if isinstance(mean, int | float) else 0}


def _drop_none(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None}


def report(
    summary: Mapping[str, Any], point: Mapping[str, Any], metadata: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The Benchmark Report (a dict) of one summary point."""
    run = summary.get("run") or {}
    meta = metadata or {}
    name = str(run.get("name") or "run")
    workload = run.get("workload") or {}
    tool = str(run.get("source_tool") or "tpsbench")
    tool_version = str((summary.get("tool") or {}).get("version") or tpsbench.__version__)
    start, end = _iso(meta.get("start_wall")), _iso(meta.get("end_wall"))
    time_block = _drop_none({"start": start, "end": end})
    measured = point.get("measured") or 0
    failures = sum((point.get("errors") or {}).values())
    aggregate = {
        "requests": _drop_none(
            {
                "total": int(measured),
                "failures": int(failures),
                "input_length": None,
                "output_length": _stats(point.get("output_tokens"), "count"),
            }
        ),
        "latency": _drop_none(
            {
                "time_to_first_token": _stats(point.get("ttft_s"), "s"),
                "time_per_output_token": _stats(point.get("tpot_s"), "s/token"),
                "inter_token_latency": _stats(point.get("itl_s"), "s"),
                "request_latency": _stats(point.get("e2e_s"), "s"),
            }
        ),
        "throughput": _drop_none(
            {
                "output_token_rate": _scalar(point.get("output_tps"), "tokens/s"),
                "request_rate": _scalar(point.get("request_rate"), "queries/s"),
            }
        ),
    }
    standardized = _drop_none(
        {
            "tool": tool,
            "tool_version": tool_version if tool == "tpsbench" else "unknown",
            "source": "random",
            "input_seq_len": _seq(workload.get("input_tokens")),
            "output_seq_len": _seq(workload.get("output_tokens")),
            "concurrency": point.get("concurrency"),
            "rate_qps": point.get("rate"),
        }
    )
    return {
        "version": VERSION,
        "run": _drop_none(
            {
                "uid": _hash(name, point.get("level")),
                "eid": _hash(name),
                "time": time_block or None,
                "description": f"tpsbench run {name}, level {point.get('level')}",
                "keywords": ["tpsbench", tool],
            }
        ),
        "scenario": {
            "load": {
                "metadata": {
                    "schema_version": "0.0.1",
                    "cfg_id": _hash(json.dumps(workload, sort_keys=True)),
                },
                "standardized": standardized,
                "native": {"config": {"run": dict(run), "level": point.get("level")}},
            }
        },
        "results": {"request_performance": {"aggregate": aggregate}},
    }


def serialize(summary: Mapping[str, Any], level: int, metadata: Mapping[str, Any] | None = None) -> bytes:
    """One load point's Benchmark Report v0.2 as indented JSON bytes; ValueError for an unknown level."""
    for p in summary.get("points") or []:
        if p.get("level") == level:
            return (json.dumps(report(summary, p, metadata), indent=2, allow_nan=False) + "\n").encode()
    raise ValueError(f"no load point with level {level} in this summary")
