"""Bytes per request on disk and the write cost per record, for each requests.jsonl record format.

    /work/venv/bin/python benchmarks/record_size.py [RUN_DIR ...] [--passes 5]

(default runs: results/reference, results/baseline).

The records of each run directory are read by the one record reader, then written again, in the same process
and on the same records:

- format 1 (the run's own file when it is format 1, as results/reference and results/baseline are): its
  bytes per request as stored (the ``itl_s`` list beside the chunk times); its write cost = the per-request
  metrics plus ``json.dumps`` of the stored line, a write and a flush;
- format 3 (each list once, chunk times absolute) and the current format (chunk times delta-encoded), the
  latter through the real :class:`~tpsbench.results.rundir.RecordWriter` (metrics, encoding, write, flush);
- gzip (level 1) over the current format with a sync flush per record (so that Ctrl-C keeps every finished
  request): what compressing while writing would add. tpsbench writes plain lines (readable with head, tail -f
  and jq during a run); the one reader reads ``requests.jsonl.gz`` too, for runs archived with gzip.

Write cost: the median over ``--passes`` passes of the per-record mean, in microseconds, on this host (it
is shared: compare the rows of one run, not runs).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tpsbench.core.record import RequestRecord
from tpsbench.results import files, metrics
from tpsbench.results.rundir import RecordWriter

REPO = Path(__file__).resolve().parents[1]
DEFAULT_RUNS = (REPO / "results" / "reference", REPO / "results" / "baseline")


def _timed(passes: int, n: int, one_pass: Callable[[], None]) -> float:
    """Median over passes of the mean microseconds per record."""
    times = []
    for _ in range(passes):
        t = time.perf_counter()
        one_pass()
        times.append((time.perf_counter() - t) / n * 1e6)
    return statistics.median(times)


def _format3(r: RequestRecord) -> dict[str, Any]:
    """The current line with absolute chunk times (format 3's layout)."""
    line = files.record_line(r)
    del line["chunk_dns"]
    return line | {"format": 3, "chunk_ns": list(r.chunk_ns)}


def measure(run: Path, passes: int) -> list[tuple[str, float, float]]:
    """``(format, bytes per request, write us per record)`` rows for one run directory."""
    path = run / files.REQUESTS
    stored = [line for _, line in files.iter_record_lines(path)]
    records = [files.record_from_line(line, str(path)) for line in stored]
    n = len(records)
    rows: list[tuple[str, float, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.jsonl"

        def dump_each(
            lines_of: Callable[[RequestRecord, dict[str, Any]], dict[str, Any]],
        ) -> Callable[[], None]:
            def one_pass() -> None:
                with out.open("w", encoding="utf-8") as f:
                    for r, line in zip(records, stored, strict=True):
                        f.write(json.dumps(lines_of(r, line), separators=(",", ":")) + "\n")
                        f.flush()

            return one_pass

        if all(line.get("format", 1) == 1 for line in stored):

            def format1(r: RequestRecord, line: dict[str, Any]) -> dict[str, Any]:
                metrics.request_metrics(r)  # the format-1 writer computed every metric, lists included
                return line

            cost = _timed(passes, n, dump_each(format1))
            rows.append(("1 (as stored)", path.stat().st_size / n, cost))
        cost = _timed(passes, n, dump_each(lambda r, _: _format3(r)))
        rows.append(("3 (lists once)", out.stat().st_size / n, cost))

        def current() -> None:
            out.unlink(missing_ok=True)
            with RecordWriter(out) as writer:
                for r in records:
                    writer.write(r)

        cost = _timed(passes, n, current)
        rows.append((f"{files.RECORD_FORMAT} (current: deltas)", out.stat().st_size / n, cost))
        assert list(files.read_records(out)) == records, "the current format must read back exactly"

        def gzipped() -> None:
            z = zlib.compressobj(1, zlib.DEFLATED, 31)
            with (Path(tmp) / "out.jsonl.gz").open("wb") as f:
                for r in records:
                    line = json.dumps(files.record_line(r), separators=(",", ":")) + "\n"
                    f.write(z.compress(line.encode()) + z.flush(zlib.Z_SYNC_FLUSH))
                    f.flush()
                f.write(z.flush())

        cost = _timed(passes, n, gzipped)
        rows.append(
            (
                f"{files.RECORD_FORMAT} + gzip -1, flush/record",
                (Path(tmp) / "out.jsonl.gz").stat().st_size / n,
                cost,
            )
        )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("runs", nargs="*", type=Path, default=list(DEFAULT_RUNS))
    ap.add_argument("--passes", type=int, default=5)
    args = ap.parse_args()
    for run in args.runs:
        records = list(files.read_records(run / files.REQUESTS))
        chunks = statistics.fmean(len(r.chunk_ns) for r in records)
        tokens = statistics.fmean(r.output_tokens or 0 for r in records)
        print(
            f"{run.name}: {len(records)} requests, {tokens:.0f} output tokens, {chunks:.0f} chunks a request"
        )
        print(f"  {'format':<34} {'bytes/request':>13} {'write us/record':>16}")
        for name, size, cost in measure(run, args.passes):
            print(f"  {name:<34} {size:>13,.0f} {cost:>16,.0f}")


if __name__ == "__main__":
    main()
