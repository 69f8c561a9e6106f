"""The run's closing table on the terminal (:func:`tpsbench.cli.console.summary_table`) fits 80 columns with
every column, at the throughput end's widest numbers."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from rich.console import Console

from tpsbench.cli.console import summary_table
from tpsbench.results.views import open_run

PUBLISHED = Path(__file__).resolve().parents[1] / "results" / "maverick-b200-throughput"


def test_a_client_bound_throughput_run_fits_80_columns_with_its_err_column(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    shutil.copytree(PUBLISHED, run_dir, ignore=shutil.ignore_patterns("report"))
    summary = json.loads((run_dir / "summary.json").read_text())
    for point in summary["points"]:  # the widest cells: a flag on every load, 5-digit counts, errors
        point["self_check"]["client_bound"] = True
        point["ok"] = point["measured"] = 10_240
        point["errors"] = {"http_5xx": 12_345}
    (run_dir / "summary.json").write_text(json.dumps(summary))
    console = Console(width=80)
    with console.capture() as captured:
        console.print(summary_table(open_run(run_dir)))
    lines = captured.get().splitlines()
    assert max(len(line) for line in lines) <= 80
    header = next(line for line in lines if "TTFT p50" in line)
    assert header.split()[-1] == "err"  # the last column is there, not cut at the edge
    row = next(line for line in lines if "c=2048" in line)
    assert row.split()[:2] == ["!c=2048", "10240/10240"] and row.split()[-3:] == ["73,904", "9,238", "12345"]
