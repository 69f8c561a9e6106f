"""The run directory's writer. File names, format versions and the readers are in
:mod:`tpsbench.results.files` (the contract); this module creates the directory and writes its files.

``results/<stamp>-<name>/`` holds scenario.yaml, metadata.json, requests.jsonl, summary.json, summary.csv.
A run never overwrites an earlier one: the directory is created exclusively and gets a ``-2``, ``-3`` ...
suffix when the name is taken.

    >>> import tempfile
    >>> root = Path(tempfile.mkdtemp())
    >>> a, b = create_run_dir(root, "x", stamp="s"), create_run_dir(root, "x", stamp="s")
    >>> (a.name, b.name)
    ('s-x', 's-x-2')
"""

from __future__ import annotations

import json
import os
import platform
import re
import socket
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from tpsbench import __version__
from tpsbench.core.record import RequestRecord
from tpsbench.results.files import (
    METADATA,
    REQUESTS,
    SCENARIO,
    SUMMARY_CSV,
    SUMMARY_JSON,
    TELEMETRY,
    record_line,
)
from tpsbench.results.telemetry import Sample

__all__ = [
    "METADATA",
    "REQUESTS",
    "SCENARIO",
    "SUMMARY_CSV",
    "SUMMARY_JSON",
    "TELEMETRY",
    "RecordWriter",
    "SampleWriter",
    "create_run_dir",
    "environment_metadata",
    "write_bytes_atomic",
    "write_json",
]


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "run"


def create_run_dir(root: Path, name: str, *, stamp: str | None = None) -> Path:
    """Create and return a new, empty run directory under ``root``; never reuse an existing one."""
    root.mkdir(parents=True, exist_ok=True)
    stamp = stamp or time.strftime("%Y%m%d-%H%M%S")
    base = f"{stamp}-{_slug(name)}"
    for n in range(1, 10_000):
        path = root / (base if n == 1 else f"{base}-{n}")
        try:
            path.mkdir()  # exclusive: fails if another run (even a concurrent one) took the name
        except FileExistsError:
            continue
        return path
    raise RuntimeError(f"no free run directory name under {root} for {base!r}")


class RecordWriter:
    """Append each finished request to requests.jsonl at once (flushed), one
    :func:`~tpsbench.results.files.record_line` per request (raw fields plus scalar metrics, each list once),
    so memory stays flat and an interrupted run keeps every finished request."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: IO[str] = path.open("a", encoding="utf-8")
        self.count = 0

    def write(self, record: RequestRecord) -> dict[str, Any]:
        line = record_line(record)
        self._file.write(json.dumps(line, separators=(",", ":")) + "\n")
        self._file.flush()
        self.count += 1
        return line

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> RecordWriter:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class SampleWriter:
    """Append scraped telemetry samples to telemetry.jsonl, one line each, flushed per scrape."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: IO[str] = path.open("a", encoding="utf-8")
        self.count = 0

    def write(self, samples: list[Sample]) -> None:
        self._file.write("".join(json.dumps(s.to_dict(), separators=(",", ":")) + "\n" for s in samples))
        self._file.flush()
        self.count += len(samples)

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> SampleWriter:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write via a temporary file and rename, so a reader (or Ctrl-C) never sees half a file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def write_json(path: Path, obj: Any) -> None:
    write_bytes_atomic(path, (json.dumps(obj, indent=2, sort_keys=False) + "\n").encode())


def environment_metadata() -> dict[str, Any]:
    """Where and with what the run was measured (pyperf style), never any secret."""
    return {
        "tool": {"name": "tpsbench", "version": __version__},
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "host": socket.gethostname(),
        "cpu_count": os.cpu_count(),
        "clock": "time.perf_counter_ns (CLOCK_MONOTONIC, shared by all processes of the host)",
    }
