"""Load shapes of the runner: trace schedules, ramp-up (closed and open loop) and the open-loop
concurrency cap, whose waits are recorded so coordinated omission stays visible."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tpsbench.config.scenario import Level, Trace
from tpsbench.core.record import Reply, RequestRecord
from tpsbench.load.arrivals import arrival_offsets, ramp_offsets, ramp_time
from tpsbench.load.runner import run_level
from tpsbench.results.metrics import queue_s, sched_lag_s

WORKLOADS = Path(__file__).parent / "data" / "workloads"


class Endpoint:
    """Answers after ``delay_s``; stamps send_ns with the real clock and counts requests in flight."""

    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s
        self.in_flight = 0
        self.max_in_flight = 0
        self.starts: list[int] = []

    async def __call__(self, prompt: Any, **kw: Any) -> Reply:
        sent = time.perf_counter_ns()
        self.starts.append(sent)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.delay_s)
        finally:
            self.in_flight -= 1
        return Reply(
            RequestRecord(
                request_id=kw["request_id"],
                level=kw["level"],
                send_ns=sent,
                end_ns=time.perf_counter_ns(),
                scheduled_ns=kw["scheduled_ns"],
                warmup=kw["warmup"],
            )
        )


class Records(list[RequestRecord]):
    """A sink that keeps the records of the replies it is given."""

    def append_reply(self, reply: Reply) -> None:
        self.append(reply.record)


def _trace_level(**kw: Any) -> Level:
    return Level(trace=Trace(path=WORKLOADS / "plain.csv", format="plain"), **kw)


def test_trace_requests_go_out_on_the_schedule_with_their_own_prompt() -> None:
    ep = Endpoint(0.001)
    got = Records()
    schedule = [0.0, 0.03, 0.03, 0.09]
    asyncio.run(
        run_level(ep, _trace_level(), 0, ["a", "b", "c", "d"], sink=got.append_reply, schedule_s=schedule)
    )
    got.sort(key=lambda r: r.request_id)
    assert len(got) == 4 and not any(r.warmup for r in got)  # a trace has no warmup by default
    t0 = got[0].scheduled_ns
    assert t0 is not None
    assert [(r.scheduled_ns or 0) - t0 for r in got] == [0, 30_000_000, 30_000_000, 90_000_000]
    assert all(0 <= (lag := sched_lag_s(r) or 0) < 0.05 for r in got), lag


def test_trace_level_stops_at_requests_and_duration() -> None:
    got = Records()
    schedule = [0.0, 0.01, 0.02, 0.03, 0.04]
    asyncio.run(
        run_level(Endpoint(0), _trace_level(requests=3), 0, ["p"], sink=got.append_reply, schedule_s=schedule)
    )
    assert len(got) == 3
    got.clear()
    asyncio.run(
        run_level(
            Endpoint(0), _trace_level(duration_s=0.025), 0, ["p"], sink=got.append_reply, schedule_s=schedule
        )
    )
    assert len(got) == 3
    with pytest.raises(ValueError, match="needs its schedule"):
        asyncio.run(run_level(Endpoint(0), _trace_level(), 0, ["p"], sink=got.append_reply))


def test_closed_loop_ramp_starts_users_one_by_one() -> None:
    ep = Endpoint(0.25)
    got = Records()
    t0 = time.perf_counter_ns()
    asyncio.run(
        run_level(ep, Level(concurrency=4, requests=4, ramp_s=0.3, warmup=0), 0, ["p"], sink=got.append_reply)
    )
    first = sorted(s - t0 for s in ep.starts[:4])
    # user k starts at k * 0.3 / 4 s: 0, 75, 150, 225 ms (plus scheduling slack)
    for k, start in enumerate(first):
        assert k * 75e6 - 1e6 <= start < k * 75e6 + 40e6, (k, start)
    assert ep.max_in_flight == 4


def test_ramp_offsets_invert_ramp_time_and_keep_the_mean_rate_after_the_ramp() -> None:
    u = arrival_offsets(10.0, "poisson", count=2000, duration_s=None, seed=1)
    t = ramp_offsets(u, 5.0)
    assert np.allclose([ramp_time(x, 5.0) for x in t], u)
    assert np.all(np.diff(t) >= 0) and t[0] == 0.0
    # expected arrivals by time T: rate * T^2 / (2 ramp) during the ramp: 10 * 25 / 10 = 25 by t = 5 s
    assert 10 <= int(np.sum(t < 5.0)) <= 45
    late = t[t >= 10.0]
    assert np.mean(np.diff(late)) == pytest.approx(0.1, rel=0.15)  # full rate afterwards


def test_open_loop_ramp_level_sends_sparse_then_dense() -> None:
    ep = Endpoint(0)
    got = Records()
    level = Level(rate=100, arrival="constant", requests=30, warmup=0, ramp_s=0.4)
    asyncio.run(run_level(ep, level, 0, ["p"], sink=got.append_reply))
    sched = sorted(r.scheduled_ns or 0 for r in got)
    gaps = np.diff(sched) / 1e9
    assert gaps[0] > 3 * gaps[-1]  # rate 0 -> 100/s: early gaps are long
    assert gaps[-1] == pytest.approx(0.01, abs=1e-6)


def test_max_concurrency_caps_and_records_the_wait() -> None:
    ep = Endpoint(0.1)
    got = Records()
    level = Level(rate=200, arrival="constant", requests=6, warmup=0, max_concurrency=2)
    asyncio.run(run_level(ep, level, 0, ["p"], sink=got.append_reply))
    assert ep.max_in_flight == 2
    got.sort(key=lambda r: r.scheduled_ns or 0)
    waits = [queue_s(r) for r in got]
    assert all(w is not None for w in waits)
    assert waits[0] == pytest.approx(0, abs=0.01) and waits[1] == pytest.approx(0, abs=0.01)
    # requests 3..6 wait for a slot: about 0.1, 0.1, 0.2, 0.2 s minus their 5 ms spacing
    assert [round(w or 0, 1) for w in waits[2:]] == [0.1, 0.1, 0.2, 0.2]
    for r in got:  # the wait is part of the scheduling lag, never hidden
        assert (sched_lag_s(r) or 0) >= (queue_s(r) or 0)


def test_uncapped_open_loop_records_no_queue_time() -> None:
    got = Records()
    asyncio.run(
        run_level(Endpoint(0), Level(rate=100, requests=3, warmup=0), 0, ["p"], sink=got.append_reply)
    )
    assert [r.queue_ns for r in got] == [None] * 3
