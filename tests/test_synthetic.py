"""Synthetic runs (tpsbench.results.synthetic) are real run directories, and the gate's rates over them
(tpsbench.gate.power, what benchmarks/gate_power.py prints) see a planted regression."""

from __future__ import annotations

from pathlib import Path

from tpsbench.core.record import ErrorKind
from tpsbench.gate.power import gate_rates
from tpsbench.results import files
from tpsbench.results.synthetic import Shape, write_synthetic_run
from tpsbench.results.views import open_run


def test_a_synthetic_run_is_a_real_run_directory(tmp_path: Path) -> None:
    run_dir = write_synthetic_run(tmp_path / "run", seed=0, loads=(2, 8), n=40, shape=Shape(error_p=0.2))
    records = list(files.read_records(run_dir / files.REQUESTS))
    assert len(records) == 2 * 48 and {r.error for r in records} == {None, ErrorKind.HTTP_5XX}
    run = open_run(run_dir)
    assert [p.label for p in run.points] == ["c=2", "c=8"]
    for p in run.points:
        ok = [r for r in records if r.level == p.level and not r.warmup and r.ok]
        tps = p.dist("tps_user")
        assert tps is not None and tps.n == len(ok) and tps.p50_ci is not None


def test_gate_rates_pass_the_same_shape_and_catch_a_planted_regression() -> None:
    same, _ = gate_rates(2, Shape(), loads=(16,), n=100)
    slower, rows = gate_rates(2, Shape(tps_factor=0.7), loads=(16,), n=100, first_seed=100)
    assert same == 0.0 and slower == 1.0 and rows["tps_user_p50"] == 1.0
