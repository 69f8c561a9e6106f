"""The summary contract, both ways, on REAL summaries (summarize_level over records, written and read back
through the run directory): every key results/views.py reads is one the writer writes, so renaming a summary
key fails here, and every key the writer writes is known to the view, so adding a key without teaching the
view (or the readers that pass it on) fails too."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tpsbench.results import files, stats, summary, views
from tpsbench.results.synthetic import write_synthetic_run

BLOCK_KEYS = {"n", *views.STATS, "p50_ci", "mean_ci"}  # what Distribution.from_block reads
RUN_KEYS = {"schema", "tool", "run", "slo", "points", "capacity", "repeats"}  # what views.Run reads
WHERE = "tpsbench/results/views.py"


@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    run = write_synthetic_run(tmp_path_factory.mktemp("contract") / "r", seed=3, loads=(2, 8), n=30)
    return files.read_summary(run / files.SUMMARY_JSON)


@pytest.fixture(scope="module")
def pooled(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A point of a run of two repeats, pooled as the benchmark pools it (summary schema 2)."""
    run = write_synthetic_run(tmp_path_factory.mktemp("contract") / "r2", seed=4, loads=(2,), n=20, repeats=2)
    summary = files.read_summary(run / files.SUMMARY_JSON)
    assert summary["schema"] == 2
    return dict(summary["points"][0])


def test_every_key_the_view_reads_is_written(real: dict[str, Any], pooled: dict[str, Any]) -> None:
    written = set(real["points"][0]) | set(pooled)
    missing = [k for k in views.POINT_KEYS if k not in written]
    assert not missing, (
        f"{WHERE} POINT_KEYS reads {missing}, which summarize_level no longer writes: renamed? Rename the "
        "Point property that reads it (and every reader of that property) or restore the key"
    )


def test_every_key_the_writer_writes_is_known(real: dict[str, Any], pooled: dict[str, Any]) -> None:
    known = set(views.POINT_KEYS) | set(views.RAW_KEYS)
    unknown = sorted((set(real["points"][0]) | set(pooled)) - known)
    assert not unknown, (
        f"summarize_level writes {unknown}, unknown to the view: add each to POINT_KEYS in {WHERE} with a "
        "Point property that reads it, or to RAW_KEYS there if readers only pass it on"
    )
    assert not set(views.POINT_KEYS) & set(views.RAW_KEYS)


def test_metric_blocks_match_the_distribution(real: dict[str, Any]) -> None:
    point = real["points"][0]
    assert set(summary.POINT_METRICS) <= set(point)
    for name in summary.POINT_METRICS:
        block = point[name]
        assert set(block) <= BLOCK_KEYS, f"{name} block has {set(block) - BLOCK_KEYS}: teach Distribution"
        assert set(block) >= BLOCK_KEYS - {"p50_ci", "mean_ci"}, f"{name} lost {BLOCK_KEYS - set(block)}"
        if name not in summary.POOLED_METRICS:
            assert {"p50_ci", "mean_ci"} <= set(block), f"{name} block lost its CIs"
    assert set(stats.STAT_KEYS) == BLOCK_KEYS


def test_run_level_keys(real: dict[str, Any], pooled: dict[str, Any]) -> None:
    assert set(real) <= RUN_KEYS
    assert {"schema", "tool", "run", "slo", "points"} <= set(real)
    info = views.Run.from_summary(real).info
    assert {"name", "model", "api", "endpoint", "gpus", "workload"} <= set(info)


def test_a_real_point_reads_back_typed(real: dict[str, Any], pooled: dict[str, Any]) -> None:
    run = views.Run.from_summary(real)
    p = run.points[1]
    assert (p.level, p.concurrency, p.label) == (1, 8, "c=8")
    assert p.measured == 30 and p.ok is not None and p.ok + p.n_errors == 30
    assert p.output_tps == real["points"][1]["output_tps"]
    d = p.dist("tps_user")
    assert d is not None and d.n == p.ok and d.p50 == real["points"][1]["tps_user"]["p50"]
    assert d.p50_ci is not None and d.p50_ci[0] <= d.p50 <= d.p50_ci[1]
    assert p.warning_causes is not None and p.self_check["cpu_percent"] == 10.0
    q = views.Point(pooled)
    assert q.repeat_count == 2
    est = q.repeat_estimate("output_tps")
    assert est is not None and len(est.values) == 2


def test_the_package_opens_run_files_only_in_files_py() -> None:
    """No module but results/files.py names the run files or parses JSON of a run directory."""
    root = Path(__file__).resolve().parents[1] / "tpsbench"
    offenders = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        if rel == "results/files.py":
            continue
        text = path.read_text(encoding="utf-8")
        for needle in ('"summary.json"', '"requests.jsonl"', '"metadata.json"'):
            if needle in text:
                offenders.append(f"{rel}: {needle} (name it through tpsbench.results.files)")
    assert not offenders, "\n".join(offenders)
