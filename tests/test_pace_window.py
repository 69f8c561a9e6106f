"""The reference endpoint's pace report covers a level's measured window: the runner says when the window
opens and closes, :class:`PaceWindow` restarts and reads ``/pace`` there, and a run against the bundled
reference endpoint (reached through its Unix socket) keeps both parts."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

from tpsbench.client.transport.h11 import H11Transport
from tpsbench.config.scenario import Level, Scenario
from tpsbench.core.record import Reply, RequestRecord
from tpsbench.core.timeouts import Timeouts
from tpsbench.load.benchmark import run_benchmark
from tpsbench.load.pace_window import PaceWindow
from tpsbench.load.runner import run_level
from tpsbench.reference.api import MODEL_NAME
from tpsbench.reference.server import start_server


def _events(level: Level) -> list[tuple[str, int]]:
    """What happened, in order: ("send"/"end", request number) and the window's ("opened"/"closed", -1)."""
    log: list[tuple[str, int]] = []

    async def send(prompt: Any, *, request_id: int, level: int, warmup: bool, **kw: Any) -> Reply:
        log.append(("send", request_id))
        await asyncio.sleep(0.001 * (1 + request_id % 3))  # uneven lengths: users fall out of step
        log.append(("end", request_id))
        return Reply(RequestRecord(request_id=request_id, level=level, send_ns=0, end_ns=1, warmup=warmup))

    records: list[RequestRecord] = []
    asyncio.run(
        run_level(
            send,
            level,
            0,
            ["p"],
            sink=lambda r: records.append(r.record),
            measured_started=lambda: log.append(("opened", -1)),
            measured_done=lambda: log.append(("closed", -1)),
        )
    )
    measured = {r.request_id for r in records if r.measured}
    first_send = min(i for i, (kind, rid) in enumerate(log) if kind == "send" and rid in measured)
    last_end = max(i for i, (kind, rid) in enumerate(log) if kind == "end" and rid in measured)
    assert log.index(("opened", -1)) == first_send - 1  # just before the first measured send
    assert log.index(("closed", -1)) == last_end + 1  # just after the last measured end
    assert log.count(("opened", -1)) == 1 and log.count(("closed", -1)) == 1
    return log


def test_the_runner_brackets_the_measured_window() -> None:
    _events(Level(concurrency=3, requests=9))  # warmup: the first 3
    log = _events(Level(concurrency=3, requests=9, cooldown=True))
    assert log[-1][0] == "end"  # cooldown requests ran on after the window closed


def test_pace_window_reports_the_measured_window_and_what_came_before() -> None:
    async def main() -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        handle = await start_server()
        transport = H11Transport()
        messages = [{"role": "user", "content": "hi"}]
        request = {"model": MODEL_NAME, "messages": messages, "max_tokens": 4, "stream": True}
        body = json.dumps(request).encode()

        async def one() -> None:
            ex = await transport.stream(
                handle.url + "/chat/completions", {"Content-Type": "application/json"}, body, Timeouts()
            )
            assert ex.status == 200 and ex.error is None

        try:
            window = PaceWindow(handle.url)
            await window.start()
            await one()  # before the window: warmup
            stats = handle.server.delivery
            window.opened()
            while handle.server.delivery is stats:  # the reset lands a loop turn or two later
                await asyncio.sleep(0.001)
            await asyncio.gather(one(), one())
            window.closed()
            measured = await window.report()
            await window.aclose()
            never_opened = PaceWindow(handle.url)  # a level with nothing measured: its whole span
            await never_opened.start()
            await one()
            whole = await never_opened.report()
            await never_opened.aclose()
        finally:
            await transport.aclose()
            await handle.stop()
        return measured, whole

    measured, whole = asyncio.run(main())
    assert measured is not None and whole is not None
    assert measured["window"] == "measured"
    assert measured["engine"]["requests"]["submitted"] == 2
    assert measured["before_window"]["engine"]["requests"]["submitted"] == 1
    assert whole["window"] == "level" and "before_window" not in whole
    assert whole["engine"]["requests"]["submitted"] == 1


def test_a_reference_run_reports_its_measured_window_over_a_unix_socket(tmp_path: Path) -> None:
    scenario = Scenario.model_validate(
        {
            "workload": {"input_tokens": 50, "output_tokens": 20},
            "load": [{"concurrency": 3, "requests": 6}],
        }
    )
    outcome = asyncio.run(run_benchmark(scenario, out_root=tmp_path))
    meta = json.loads((outcome.run_dir / "metadata.json").read_text())
    path = meta["endpoint"]["network"]["unix_socket"]
    assert path and path.endswith("reference.sock") and not os.path.exists(path)  # removed after the run
    pace = outcome.summary["points"][0]["self_check"]["simulator"]
    assert pace["window"] == "measured"
    before = pace["before_window"]["engine"]["requests"]["submitted"]
    assert before + pace["engine"]["requests"]["submitted"] == 9  # 3 warmup + 6 measured
    assert 3 <= before < 9
