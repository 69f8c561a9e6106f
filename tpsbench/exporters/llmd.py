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
from tpsbench.results.views import Distribution, Point, Run

VERSION = "0.2"
_STATS = ("min", "p1", "p5", "p10", "p50", "p90", "p95", "p99", "max")


def _hash(*parts: object) -> str:
    return hashlib.sha256("/".join(str(p) for p in parts).encode()).hexdigest()[:32]


def _stats(d: Distribution | None, units: str, scale: float = 1.0) -> dict[str, Any] | None:
    """A Statistics block from a point's metric block (None when it has no mean)."""
    if d is None or d.mean is None:
        return None
    out: dict[str, Any] = {"units": units, "mean": d.mean * scale}
    if (sd := d.get("std")) is not None:
        out["stddev"] = sd * scale
    out.update({k: v * scale for k in _STATS if (v := d.get(k)) is not None})
    return out


def _scalar(value: object, units: str) -> dict[str, Any] | None:
    return {"units": units, "mean": float(value)} if isinstance(value, int | float) else None


def _iso(wall: object) -> str | None:
    if not isinstance(wall, int | float):
        return None
    return datetime.fromtimestamp(wall, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _seq(mean: float | None) -> dict[str, Any]:
    return {"distribution": "other", "value": mean if mean is not None else 0}


def _drop_none(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None}


def report(run: Run, point: Point, metadata: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The Benchmark Report (a dict) of one load point of a run (both read through the views)."""
    meta = metadata or {}
    name = str(run.info.get("name") or "run")
    tool = str(run.info.get("source_tool") or "tpsbench")
    tool_version = run.tool_version or tpsbench.__version__
    isl, osl = run.isl_osl
    start, end = _iso(meta.get("start_wall")), _iso(meta.get("end_wall"))
    time_block = _drop_none({"start": start, "end": end})
    measured, failures = point.measured or 0, point.n_errors
    aggregate = {
        "requests": _drop_none(
            {
                "total": int(measured),
                "failures": int(failures),
                "input_length": None,
                "output_length": _stats(point.dist("output_tokens"), "count"),
            }
        ),
        "latency": _drop_none(
            {
                "time_to_first_token": _stats(point.dist("ttft_s"), "s"),
                "time_per_output_token": _stats(point.dist("tpot_s"), "s/token"),
                "inter_token_latency": _stats(point.dist("itl_s"), "s"),
                "request_latency": _stats(point.dist("e2e_s"), "s"),
            }
        ),
        "throughput": _drop_none(
            {
                "output_token_rate": _scalar(point.output_tps, "tokens/s"),
                "request_rate": _scalar(point.request_rate, "queries/s"),
            }
        ),
    }
    standardized = _drop_none(
        {
            "tool": tool,
            "tool_version": tool_version if tool == "tpsbench" else "unknown",
            "source": "random",
            "input_seq_len": _seq(isl),
            "output_seq_len": _seq(osl),
            "concurrency": point.concurrency,
            "rate_qps": point.rate,
        }
    )
    return {
        "version": VERSION,
        "run": _drop_none(
            {
                "uid": _hash(name, point.level),
                "eid": _hash(name),
                "time": time_block or None,
                "description": f"tpsbench run {name}, level {point.level}",
                "keywords": ["tpsbench", tool],
            }
        ),
        "scenario": {
            "load": {
                "metadata": {
                    "schema_version": "0.0.1",
                    "cfg_id": _hash(json.dumps(dict(run.workload), sort_keys=True)),
                },
                "standardized": standardized,
                "native": {"config": {"run": dict(run.info), "level": point.level}},
            }
        },
        "results": {"request_performance": {"aggregate": aggregate}},
    }


def serialize(summary: Mapping[str, Any], level: int, metadata: Mapping[str, Any] | None = None) -> bytes:
    """One load point's Benchmark Report v0.2 as indented JSON bytes; ValueError for an unknown level."""
    run = Run.from_summary(summary)
    for p in run.points:
        if p.level == level:
            return (json.dumps(report(run, p, metadata), indent=2, allow_nan=False) + "\n").encode()
    raise ValueError(f"no load point with level {level} in this summary")
