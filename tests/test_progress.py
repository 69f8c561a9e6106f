"""The terminal's progress bar per level (:class:`tpsbench.cli.console.RichObserver`): its total is the
warmup and measured requests the runner expects, so cooldown requests, counted beside it, never overrun it."""

from __future__ import annotations

import io

from rich.console import Console

from tpsbench.cli.console import RichObserver
from tpsbench.config.scenario import Level
from tpsbench.load.benchmark import expected_requests


def _line(kind: str) -> dict[str, object]:
    return {"tps_user": 50.0, "warmup": kind == "warmup", "cooldown": kind == "cooldown", "error": None}


def test_cooldown_requests_are_counted_beside_the_bar_not_on_it() -> None:
    level = Level(concurrency=2, requests=4, warmup=2, cooldown=True)
    expected = expected_requests(level, level.resolved_warmup)
    assert expected == 6  # warmup + measured: cooldown has no count known up front
    obs = RichObserver(Console(file=io.StringIO(), width=100))
    order = ["warmup"] * 2 + ["measured"] * 3 + ["cooldown"] * 2 + ["measured"] + ["cooldown"]
    with obs:
        obs.level_started(0, level, expected)
        for kind in order:
            obs.request_done(_line(kind))
            (task,) = obs.progress.tasks
            assert task.total is not None and task.completed <= task.total, (kind, task.completed)
        assert (task.completed, task.total) == (6, 6) and "+3 cooldown" in task.fields["live"]
        obs.level_done(0, {"self_check": {}})
    assert (task.completed, task.total) == (6, 6)
    assert "6/6" in obs.console.file.getvalue()  # type: ignore[attr-defined]
