"""Peak memory (RSS) and wall time of what runs after a level: its summary, and the report at the end.

    /work/venv/bin/python benchmarks/memory_peak.py RUN_DIR

Each step runs in a fresh process (its peak RSS is its own ``ru_maxrss``), on a copy of what it reads
(``requests.jsonl`` linked, never written; the report is written into the copy):

- ``summary``: every level re-summarized as ``tpsbench run`` does after it (the level's records read back by
  the one record reader, then ``summarize_level`` with the run's scenario, its telemetry and the runner's
  self-check figures from summary.json); it says whether the document equals the run's summary.json, and
  where it differs (a run written by another tpsbench version may lack a newer warning);
- ``report``: ``tpsbench report`` (every chart, the HTML and the Markdown).

Measured on a 2,048-concurrency throughput run (14,752 records of ~1,000 chunks, 165 MB): with the chunks
of the records read back as Python lists, summary 1,162 MB and report 2,411 MB; packed
(:class:`~tpsbench.core.record.Packed`) 316 and 584 MB. The report's rest: the records (about 250 MB), the
timeline's arrays of every chunk (240 MB while it bins them), matplotlib. This host is shared: time under
the measure lock (``flock /work/wt/measure.lock nice -n -10 ...``) and compare rows of one invocation.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tpsbench.config.loader import load_scenario
from tpsbench.load.benchmark import _level_samples
from tpsbench.results import files
from tpsbench.results.summary import summarize_level, summarize_run, to_json

# self_check figures summarize_level derives from the records (the rest came from the runner)
DERIVED = ("sched_lag_p99_s", "achieved_concurrency", "in_flight_mean", "cpu_percent_ok", "client_bound")


def resummarize(run_dir: Path) -> bytes:
    """summary.json of ``run_dir`` rebuilt level by level, as the run built it."""
    scenario = load_scenario(run_dir / files.SCENARIO)
    written = files.read_summary(run_dir / files.SUMMARY_JSON)
    points = []
    for index, level in enumerate(scenario.load):
        check = {k: v for k, v in written["points"][index]["self_check"].items() if k not in DERIVED}
        records = [r for r in files.read_records(files.requests_path(run_dir)) if r.level == index]
        points.append(
            summarize_level(
                records,
                level_index=index,
                level=level,
                slo=dict(scenario.slo),
                gpus=scenario.gpus,
                self_check=check,
                seed=scenario.workload.seed,
                samples=_level_samples(run_dir, index, records),
            )
        )
        del records
    return to_json(summarize_run(points, run_info=written["run"], slo=dict(scenario.slo)))


def _differences(a: Any, b: Any, path: str = "") -> list[str]:
    """Where two JSON documents differ (a summary written by another tpsbench version may lack a newer
    warning, say)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in dict.fromkeys([*a, *b]) for d in _differences(a.get(k), b.get(k), f"{path}.{k}")]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        pairs = enumerate(zip(a, b, strict=True))
        return [d for i, (x, y) in pairs for d in _differences(x, y, f"{path}[{i}]")]
    return [] if a == b else [path.lstrip(".")]


def _step(argv: list[str]) -> tuple[float, float]:
    """(peak RSS MB, wall s) of one child process; exits when it fails."""
    t = time.perf_counter()
    child = subprocess.Popen(argv, stdout=subprocess.DEVNULL)  # the summary's verdict goes to stderr
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - t
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode:
        sys.exit(f"{' '.join(argv)}: exit status {child.returncode}")
    return usage.ru_maxrss / 1024, wall


def main() -> int:
    if len(sys.argv) == 3 and sys.argv[1] == "--summary":  # the child of the summary step
        run_dir = Path(sys.argv[2])
        rebuilt, written = resummarize(run_dir), (run_dir / files.SUMMARY_JSON).read_bytes()
        paths = _differences(json.loads(rebuilt), json.loads(written)) if rebuilt != written else []
        verdict = f"differs at {', '.join(paths)}" if rebuilt != written else "byte-identical"
        print(f"rebuilt summary vs summary.json: {verdict}", file=sys.stderr)
        return 0
    run_dir = Path(sys.argv[1]).resolve()
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / run_dir.name
        copy.mkdir()
        for path in run_dir.iterdir():
            if path.is_file() and path.name.startswith(files.REQUESTS):
                (copy / path.name).symlink_to(path)
            elif path.is_file():
                shutil.copy(path, copy / path.name)
        rows = []
        peak, wall = _step([sys.executable, __file__, "--summary", str(copy)])
        rows.append(("summary (every level)", peak, wall))
        report = [sys.executable, "-c", "from tpsbench.cli import main; main()", "report", str(copy)]
        peak, wall = _step(report)
        rows.append(("report", peak, wall))
    records = sum(1 for _ in files.iter_record_lines(files.requests_path(run_dir)))
    print(json.dumps({"run": run_dir.name, "records": records}))
    print(f"{'step':24} {'peak RSS MB':>12} {'wall s':>8}")
    for name, peak, wall in rows:
        print(f"{name:24} {peak:12,.0f} {wall:8.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
