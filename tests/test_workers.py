"""Multi-process load generation: shares of a level run in worker processes and merge into one run
directory on one clock."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from tpsbench.config.scenario import Scenario
from tpsbench.load.benchmark import run_benchmark
from tpsbench.load.workers import drive, merge_self_checks


def test_two_workers_merge_into_one_run(pace_url: str, tmp_path: Path) -> None:
    scenario = Scenario.model_validate(
        {
            "endpoint": {"base_url": pace_url, "model": "pace"},
            "workload": {"input_tokens": 8, "output_tokens": 30},
            "workers": 2,
            "load": [
                {"concurrency": 5, "requests": 20},
                {"rate": 40, "arrival": "poisson", "requests": 20, "warmup": 2},
            ],
        }
    )
    outcome = asyncio.run(run_benchmark(scenario, out_root=tmp_path))
    lines = [json.loads(x) for x in (outcome.run_dir / "requests.jsonl").read_text().splitlines()]
    assert len(lines) == 25 + 22
    assert len({x["request_id"] for x in lines}) == len(lines)
    assert {x["worker"] for x in lines} == {0, 1}
    assert all(x["error"] is None and x["output_tokens"] == 30 for x in lines)
    closed, open_ = outcome.summary["points"]
    assert closed["measured"] == 20 and open_["measured"] == 20
    assert closed["self_check"]["workers"] == 2
    # one clock: open-loop sends follow the shared schedule (lag small), whichever worker sent them
    lags = [x["send_ns"] - x["scheduled_ns"] for x in lines if x["level"] == 1]
    assert max(lags) < 50_000_000
    assert all(0.01 < x["ttft_s"] < 0.5 for x in lines)


def test_merge_self_checks_takes_the_worst_worker() -> None:
    merged = merge_self_checks(
        [
            {"worker": 0, "loop_lag_p99_s": 0.001, "cpu_s": 1.0, "cpu_percent": 40.0, "loop_lag_samples": 5},
            {"worker": 1, "loop_lag_p99_s": 0.020, "cpu_s": 2.0, "cpu_percent": 95.0, "loop_lag_samples": 5},
        ]
    )
    assert merged["loop_lag_p99_s"] == 0.020
    assert merged["cpu_percent"] == 95.0
    assert merged["cpu_s"] == 3.0
    assert merged["loop_lag_samples"] == 10


def test_workers_on_a_local_ray_instance(pace_url: str, tmp_path: Path) -> None:
    pytest.importorskip("ray")
    scenario = Scenario.model_validate(
        {
            "endpoint": {"base_url": pace_url, "model": "pace"},
            "workload": {"input_tokens": 8, "output_tokens": 30},
            "workers": 2,
            "load": [{"concurrency": 4, "requests": 12}],
        }
    )
    outcome = asyncio.run(run_benchmark(scenario, out_root=tmp_path, cluster="local"))
    lines = [json.loads(x) for x in (outcome.run_dir / "requests.jsonl").read_text().splitlines()]
    assert len(lines) == 16
    assert {x["worker"] for x in lines} == {0, 1}
    assert all(x["error"] is None and x["output_tokens"] == 30 for x in lines)
    assert outcome.summary["points"][0]["self_check"]["workers"] == 2
    meta = json.loads((outcome.run_dir / "metadata.json").read_text())
    assert meta["cluster"] == "local"


def test_workers_hold_the_load_until_the_levels_last_measured_end(pace_url: str, tmp_path: Path) -> None:
    """With cooldown, a worker whose share is done keeps sending until every share's measured requests have
    ended (the driver says when): the load holds to the level's last measured end, not to each share's."""
    scenario = Scenario.model_validate(
        {
            "endpoint": {"base_url": pace_url, "model": "pace"},
            "workload": {"input_tokens": 8, "output_tokens": {"mean": 30, "std": 10, "min": 10, "max": 50}},
            "workers": 2,
            "load": [{"concurrency": 6, "requests": 24, "cooldown": True}],
        }
    )
    outcome = asyncio.run(run_benchmark(scenario, out_root=tmp_path))
    lines = [json.loads(x) for x in (outcome.run_dir / "requests.jsonl").read_text().splitlines()]
    measured = [x for x in lines if not x["warmup"] and not x["cooldown"]]
    cooldown = [x for x in lines if x["cooldown"]]
    assert len(measured) == 24 and cooldown and all(x["error"] is None for x in lines)
    assert {x["worker"] for x in cooldown} == {0, 1}
    t_end = max(x["end_ns"] for x in measured)
    # the driver's word reaches the workers within a poll or two (POLL_S): unmeasured sends after the end
    assert max(x["send_ns"] for x in cooldown) - t_end < 500_000_000
    # over the last request length before the last measured end every user had a request in flight, but
    # for the moments between one request's end and the next send (long on a busy host); a drain would
    # average about half the users there
    span = sorted(x["end_ns"] - x["send_ns"] for x in measured)[len(measured) // 2]
    t0 = t_end - span
    busy = sum(max(0, min(x["end_ns"], t_end) - max(x["send_ns"], t0)) for x in lines)
    assert busy / span > 0.8 * 6
    point = outcome.summary["points"][0]
    assert point["cooldown"] == len(cooldown) and point["measured"] == 24
    assert point["self_check"]["in_flight_mean"] > 0.8 * 6


class ScriptedDriver:
    """A pool whose workers say what ``script`` holds, one message per poll, and then end."""

    def __init__(self, script: list[tuple[object, ...]], exited_after: int) -> None:
        self.script, self.polls, self.exited_after = script, 0, exited_after
        self.calls: list[str] = []

    def get(self, timeout_s: float) -> tuple[object, ...] | None:
        self.polls += 1
        return self.script.pop(0) if self.script else None

    def go(self, t0_ns: int) -> None:
        self.calls.append("go")

    def stop(self) -> None:
        self.calls.append("stop")

    def end_cooldown(self) -> None:
        self.calls.append("end_cooldown")

    def exited(self) -> int:
        return 2 if self.polls > self.exited_after else 0

    def close(self) -> None:
        self.calls.append("close")


def test_driver_ends_the_cooldown_once_every_worker_is_done_measuring() -> None:
    check = {"sent": 3}
    script: list[tuple[object, ...]] = [("ready", 0, None), ("ready", 1, None), ("measured_done", 1, None)]
    script += [("measured_done", 0, None), ("done", 0, check), ("done", 1, check)]
    driver = ScriptedDriver(script, exited_after=99)
    _, sent = drive(driver, 2, lambda reply: None, lambda: False)
    assert driver.calls == ["go", "end_cooldown", "close"] and sent == 6
    # a worker that reported done counts as done measuring: the other's word ends the cooldown
    driver = ScriptedDriver([("done", 0, check), ("measured_done", 1, None), ("done", 1, check)], 99)
    drive(driver, 2, lambda reply: None, lambda: False)
    assert driver.calls.count("end_cooldown") == 1


class Window:
    def __init__(self, driver: ScriptedDriver) -> None:
        self.driver = driver

    def opened(self) -> None:
        self.driver.calls.append("opened")

    def closed(self) -> None:
        self.driver.calls.append("closed")


def test_driver_brackets_the_levels_measured_window() -> None:
    """Opened at the first worker's first measured send, closed once every worker's measured requests
    have ended (the reference endpoint's pace report covers that window)."""
    check = {"sent": 3}
    script: list[tuple[object, ...]] = [("ready", 0, None), ("ready", 1, None)]
    script += [("measured_started", 1, None), ("measured_started", 0, None), ("measured_done", 0, None)]
    script += [("measured_done", 1, None), ("done", 0, check), ("done", 1, check)]
    driver = ScriptedDriver(script, exited_after=99)
    drive(driver, 2, lambda reply: None, lambda: False, Window(driver))
    assert driver.calls == ["go", "opened", "end_cooldown", "closed", "close"]
    # a share that ended without a measured_done word (interrupted) closes it by its done
    driver = ScriptedDriver([("measured_started", 0, None), ("done", 0, check), ("done", 1, check)], 99)
    drive(driver, 2, lambda reply: None, lambda: False, Window(driver))
    assert driver.calls == ["opened", "end_cooldown", "closed", "close"]


def test_driver_stops_every_worker_when_one_ends_without_a_word() -> None:
    script: list[tuple[object, ...]] = [("ready", 0, None), ("ready", 1, None), ("done", 0, {"sent": 1})]
    driver = ScriptedDriver(script, exited_after=3)
    with pytest.raises(RuntimeError, match="a worker exited without reporting"):
        drive(driver, 2, lambda reply: None, lambda: False)
    assert "stop" in driver.calls
