"""What an importer produces, and how it becomes a tpsbench run directory.

An importer reads another harness's output into an :class:`Imported`: request records on one clock (built
from the source's per-request data; whatever had to be derived rather than read is named in ``derived``),
one load level per source benchmark, and the source's own aggregates, kept verbatim. :func:`write_run`
then writes the same run directory a ``tpsbench run`` writes: requests.jsonl, a summary recomputed with
tpsbench's metrics (so every TPS/user definition is computed from the same records), metadata.json, and
``source.json`` with the source tool, its files, its aggregates and the labels of derived fields.
Report, compare and gate then read it like any run; charts name the source tool (``run.source_tool``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tpsbench.config.scenario import Level
from tpsbench.core.record import RequestRecord
from tpsbench.results.files import METADATA, REQUESTS, SOURCE, SUMMARY_CSV, SUMMARY_JSON
from tpsbench.results.rundir import (
    RecordWriter,
    create_run_dir,
    environment_metadata,
    write_bytes_atomic,
    write_json,
)
from tpsbench.results.summary import summarize_level, summarize_run, to_csv, to_json


class ImportFormatError(ValueError):
    """The input is not a file of the format asked for (or detected); the message names file and field."""


@dataclass
class ImportedLevel:
    """One benchmark of the source (a concurrency or a rate) and its records."""

    level: Level
    records: list[RequestRecord]
    source_ids: list[str] = field(default_factory=list)  # the source's request id per record, in order


@dataclass
class Imported:
    tool: str  # "aiperf", "guidellm", "vllm", ...
    format: str  # what was read: "aiperf raw records", ...
    files: list[str]
    levels: list[ImportedLevel]
    derived: list[str]  # which record fields were derived, not read, and how
    aggregates: dict[str, Any]  # the source's own aggregates, verbatim
    model: str | None = None
    endpoint: str | None = None
    isl: float | None = None
    osl: float | None = None
    clock: str = ""  # which clock the source's timestamps are on


def level_of(concurrency: int | None, rate: float | None, n: int) -> Level:
    """The tpsbench level that describes a source benchmark of ``n`` requests (no warmup: the source's
    warmup, if any, is not in its exported records)."""
    if concurrency is not None:
        return Level(concurrency=concurrency, requests=max(n, 1), warmup=0)
    if rate is not None:
        return Level(rate=rate, requests=max(n, 1), warmup=0)
    return Level(concurrency=1, requests=max(n, 1), warmup=0)


def write_run(imp: Imported, out_root: Path, name: str | None = None) -> Path:
    """Write ``imp`` as a new run directory under ``out_root``; returns its path."""
    run_dir = create_run_dir(out_root, name or f"{imp.tool}-import")
    next_id = 0
    points: list[dict[str, Any]] = []
    ids: dict[str, str] = {}
    with RecordWriter(run_dir / REQUESTS) as writer:
        for index, lv in enumerate(imp.levels):
            records = renumber(lv.records, index, next_id)
            for r, sid in zip(records, lv.source_ids, strict=False):
                ids[str(r.request_id)] = sid
            next_id += len(records)
            for r in records:
                writer.write(r)
            points.append(summarize_level(records, level_index=index, level=lv.level, slo={}, gpus=None))
    run_info = {
        "name": run_dir.name,
        "scenario_name": None,
        "endpoint": imp.endpoint,
        "model": imp.model,
        "api": "chat",
        "gpus": None,
        "workload": {"input_tokens": imp.isl, "output_tokens": imp.osl, "prompts_file": None, "seed": None},
        "reference_endpoint": False,
        "tokenizer": None,
        "source_tool": imp.tool,
        "imported": {"format": imp.format, "files": imp.files, "derived": imp.derived},
    }
    summary = summarize_run(points, run_info=run_info, slo={})
    write_bytes_atomic(run_dir / SUMMARY_JSON, to_json(summary))
    write_bytes_atomic(run_dir / SUMMARY_CSV, to_csv(summary))
    write_json(
        run_dir / METADATA,
        environment_metadata()
        | {
            "run_name": run_dir.name,
            "imported_at_wall": time.time(),
            "source_tool": imp.tool,
            "clock": imp.clock,
        },
    )
    write_json(
        run_dir / SOURCE,
        {
            "tool": imp.tool,
            "format": imp.format,
            "files": imp.files,
            "derived": imp.derived,
            "clock": imp.clock,
            "request_ids": ids,
            "aggregates": imp.aggregates,
        },
    )
    return run_dir


def renumber(records: Sequence[RequestRecord], level: int, first_id: int) -> list[RequestRecord]:
    """The records with ``level`` set and ids from ``first_id`` in order."""
    for i, r in enumerate(records):
        r.level = level
        r.request_id = first_id + i
    return list(records)
