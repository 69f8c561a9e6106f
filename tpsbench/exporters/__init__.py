"""A run in other tools' formats: one module per format with a pure ``serialize`` (summary in, bytes out);
:func:`export_run` is the one place that reads the run directory and writes the files."""

from __future__ import annotations

from pathlib import Path

from tpsbench.exporters import llmd
from tpsbench.results.files import METADATA, SUMMARY_JSON, read_metadata, read_summary
from tpsbench.results.views import Run

__all__ = ["EXPORTERS", "export_run"]

EXPORTERS = ("llm-d-br",)


def export_run(run_dir: Path, fmt: str, out: Path | None = None) -> Path:
    """Write ``run_dir`` as ``fmt`` into ``out`` (default ``RUN_DIR/llm-d-br/``), one file per load point
    (``level-<i>.json``); returns the directory written."""
    if fmt not in EXPORTERS:
        raise ValueError(f"unknown export format {fmt!r}; expected one of {', '.join(EXPORTERS)}")
    summary = read_summary(run_dir / SUMMARY_JSON)
    metadata = read_metadata(run_dir / METADATA)
    target = out or run_dir / fmt
    target.mkdir(parents=True, exist_ok=True)
    for p in Run.from_summary(summary).points:
        (target / f"level-{p.level}.json").write_bytes(llmd.serialize(summary, p.level, metadata))
    return target
