"""The one record reader on gzip-archived records (requests.jsonl.gz): same records as the plain file, a
stream cut anywhere reads as the records before the cut (the torn-line rule), corruption is an error."""

from __future__ import annotations

import gzip
import json
import shutil
import zlib
from pathlib import Path

import pytest

from tpsbench.core.record import RequestRecord
from tpsbench.results import files
from tpsbench.results.views import open_run

BASELINE = Path(__file__).resolve().parents[1] / "results" / "baseline"


@pytest.fixture(scope="module")
def records() -> list[RequestRecord]:
    return list(files.read_records(BASELINE / files.REQUESTS))[:40]


def _plain(records: list[RequestRecord]) -> bytes:
    return b"".join(json.dumps(files.record_line(r), separators=(",", ":")).encode() + b"\n" for r in records)


def _flushed_per_record(records: list[RequestRecord]) -> tuple[bytes, list[int]]:
    """A gzip stream with a sync flush after each record (what an appending writer would leave), and the
    byte offset at which each record becomes complete."""
    z = zlib.compressobj(1, zlib.DEFLATED, 31)
    out, ends = b"", []
    for r in records:
        out += z.compress(_plain([r])) + z.flush(zlib.Z_SYNC_FLUSH)
        ends.append(len(out))
    return out + z.flush(), ends


def test_a_gzipped_run_reads_as_the_plain_one(tmp_path: Path, records: list[RequestRecord]) -> None:
    run = tmp_path / "run"
    shutil.copytree(BASELINE, run)
    (run / files.REQUESTS).unlink()
    (run / files.REQUESTS_GZ).write_bytes(gzip.compress(_plain(records)))
    assert files.requests_path(run) == run / files.REQUESTS_GZ
    opened = open_run(run)
    assert list(opened.records) == records and opened.record_warnings == ()
    assert files.requests_path(BASELINE) == BASELINE / files.REQUESTS  # the plain file wins when both exist
    two = tmp_path / "two.jsonl.gz"  # gzip output appended to a gzip file: two members
    two.write_bytes(gzip.compress(_plain(records[:5])) + gzip.compress(_plain(records[5:])))
    assert list(files.read_records(two)) == records


def test_a_cut_stream_keeps_every_record_before_the_cut(tmp_path: Path, records: list[RequestRecord]) -> None:
    data, ends = _flushed_per_record(records)
    path = tmp_path / "requests.jsonl.gz"
    cuts = sorted({ends[9], ends[9] + 7, (ends[20] + ends[21]) // 2, len(data) - 3, *range(11, ends[0], 97)})
    for cut in cuts:
        path.write_bytes(data[:cut])
        warned: list[str] = []
        back = list(files.read_records(path, warn=warned.append))
        complete = sum(1 for e in ends if e <= cut)
        assert back == records[: len(back)] and len(back) >= complete, cut
        assert any("gzip stream ends early" in w for w in warned), cut
        assert all(f"{path}" in w for w in warned)


def test_a_corrupt_gzip_is_an_error_naming_the_file(tmp_path: Path, records: list[RequestRecord]) -> None:
    data = bytearray(gzip.compress(_plain(records)))
    data[len(data) // 2 : len(data) // 2 + 16] = b"\xff" * 16
    path = tmp_path / "requests.jsonl.gz"
    path.write_bytes(bytes(data))
    with pytest.raises(files.RunFileError, match=r"requests.jsonl.gz"):
        list(files.read_records(path))
    path.write_bytes(b"not gzip at all\n")
    with pytest.raises(files.RunFileError, match=r"requests.jsonl.gz: not a valid gzip file"):
        list(files.read_records(path))
