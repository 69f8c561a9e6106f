"""The gate's and compare's terminal output (80 columns, one line per verdict, bad input), and compare's
never-overwrite directories, on the committed baseline run."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from typer.testing import CliRunner

from tpsbench.cli.app import app
from tpsbench.results import files
from tpsbench.results.synthetic import Shape, write_synthetic_run

BASELINE = Path(__file__).parent.parent / "results" / "baseline"
runner = CliRunner()


def _pair(tmp_path: Path) -> tuple[Path, Path]:
    """Synthetic runs of three repeats (the real pipeline), the candidate 20% slower per user."""
    base = write_synthetic_run(tmp_path / "base", seed=1, loads=(4, 16), n=80, repeats=3)
    cand = write_synthetic_run(
        tmp_path / "cand", seed=2, loads=(4, 16), n=80, repeats=3, shape=Shape(tps_factor=0.8)
    )
    return base, cand


def test_gate_prints_one_line_per_verdict_regressions_first_at_80_columns(tmp_path: Path) -> None:
    base, cand = _pair(tmp_path)
    res = runner.invoke(
        app, ["gate", "--baseline", str(base), "--candidate", str(cand)], env={"COLUMNS": "80"}
    )
    assert res.exit_code == 1, res.output
    lines = res.stdout.splitlines()
    assert lines[0].startswith("tpsbench gate: regression (exit 1)")
    assert all(len(line) <= 80 for line in lines), [line for line in lines if len(line) > 80]
    verdicts = [
        line.split()[0]
        for line in lines[1:]
        if line.split() and line.split()[0] in {"FAIL", "ok", "warn", "good", "n/a"}
    ]
    assert verdicts[0] == "FAIL" and "FAIL" not in verdicts[verdicts.index("ok") :]
    assert any("TPS/user p50" in line and line.startswith("FAIL") for line in lines)


def test_gate_missing_baseline_is_bad_input(tmp_path: Path) -> None:
    res = runner.invoke(app, ["gate", "--baseline", str(tmp_path / "nope"), "--candidate", str(BASELINE)])
    assert res.exit_code == 2
    assert res.stderr.startswith("error: --baseline") and "no such run directory" in res.stderr
    assert "not comparable" not in res.stderr
    # an unreadable file inside a run directory is bad input too, said so by the gate itself
    broken = tmp_path / "broken"
    shutil.copytree(BASELINE, broken)
    (broken / "summary.json").write_text("{not json")
    res = runner.invoke(app, ["gate", "--baseline", str(broken), "--candidate", str(BASELINE)])
    assert res.exit_code == 2
    assert res.stdout.startswith("tpsbench gate: bad input (exit 2)") and "bad input:" in res.stderr


def test_gate_against_another_scenario_says_so(tmp_path: Path) -> None:
    cand = tmp_path / "other"
    shutil.copytree(BASELINE, cand)
    summary = files.read_summary(cand / files.SUMMARY_JSON)
    summary["run"]["scenario_name"] = "maverick-b200"
    summary["run"]["workload"]["output_tokens"] = 1000.0
    (cand / "summary.json").write_text(json.dumps(summary))
    res = runner.invoke(app, ["gate", "--baseline", str(BASELINE), "--candidate", str(cand)])
    assert res.exit_code == 2
    assert "the baseline is scenario 'ci-gate'" in res.stderr


def test_compare_writes_a_new_directory_each_time(tmp_path: Path) -> None:
    args = ["compare", str(BASELINE), str(BASELINE), "--label", "a", "--label", "b", "--out", str(tmp_path)]
    first = runner.invoke(app, args, env={"COLUMNS": "80"})
    second = runner.invoke(app, args, env={"COLUMNS": "80"})
    assert first.exit_code == 0 and second.exit_code == 0, first.output + second.output
    dirs = sorted(p for p in tmp_path.iterdir() if p.is_dir())
    assert len(dirs) == 2 and all((d / "compare.md").is_file() for d in dirs)
    assert all(len(line) <= 80 for line in first.stdout.splitlines())
    assert "TPS/user p50" in first.stdout and "|" not in first.stdout.splitlines()[0]


def test_compare_of_a_missing_run_is_bad_input(tmp_path: Path) -> None:
    res = runner.invoke(app, ["compare", str(BASELINE), str(tmp_path / "nope"), "--out", str(tmp_path)])
    assert res.exit_code == 2 and res.stderr.startswith("error: compare")
