"""The runner drives load exactly as the scenario says: closed loop keeps N in flight, open loop follows its
schedule whatever happens, warmup is flagged, shares across workers add up to the whole level, and a stop
(Ctrl-C) records every request in flight as cancelled."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from typing import Any

import pytest

from tpsbench.config.scenario import Level
from tpsbench.core.record import ErrorKind, Reply, RequestRecord
from tpsbench.load.arrivals import arrival_offsets
from tpsbench.load.runner import run_level, split_evenly


class FakeEndpoint:
    """Answers after ``delay_s``; tracks how many requests are in flight."""

    def __init__(self, delay_s: float = 0.01) -> None:
        self.delay_s = delay_s
        self.in_flight = 0
        self.max_in_flight = 0
        self.calls: list[dict[str, Any]] = []

    async def __call__(self, prompt: Any, **kw: Any) -> Reply:
        self.calls.append(kw)
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
                send_ns=0,
                end_ns=1,
                scheduled_ns=kw["scheduled_ns"],
                warmup=kw["warmup"],
                worker=kw["worker"],
            )
        )


def into(out: list[RequestRecord]) -> Callable[[Reply], None]:
    """A sink that keeps the records."""
    return lambda reply: out.append(reply.record)


def test_closed_loop_keeps_exactly_n_in_flight_and_flags_warmup() -> None:
    ep = FakeEndpoint()
    got: list[RequestRecord] = []
    res = asyncio.run(
        run_level(ep, Level(concurrency=4, requests=20), 3, ["p"], sink=into(got), id_offset=100)
    )
    assert ep.max_in_flight == 4
    assert len(got) == res.sent == res.finished == 24  # default warmup = one request per user
    assert sum(r.warmup for r in got) == 4
    assert sorted(r.request_id for r in got) == list(range(100, 124))
    assert {r.level for r in got} == {3}
    assert all(r.scheduled_ns is None for r in got)
    assert not res.interrupted


def test_closed_loop_duration_bound_stops_by_itself() -> None:
    ep = FakeEndpoint(0.02)
    got: list[RequestRecord] = []
    asyncio.run(run_level(ep, Level(concurrency=2, duration_s=0.2, warmup=0), 0, ["p"], sink=into(got)))
    # 2 users x 0.2 s / 0.02 s each = about 20 requests; generous bounds for a loaded machine
    assert 4 <= len(got) <= 24


def test_open_loop_follows_schedule_even_when_requests_are_slow() -> None:
    ep = FakeEndpoint(0.3)  # every request outlives several arrivals: a closed loop would fall behind
    got: list[RequestRecord] = []
    level = Level(rate=50, arrival="constant", requests=10, warmup=0)
    asyncio.run(run_level(ep, level, 0, ["p"], sink=into(got)))
    assert len(got) == 10
    assert ep.max_in_flight >= 5
    sched = sorted(r.scheduled_ns for r in got if r.scheduled_ns is not None)
    gaps = [b - a for a, b in itertools.pairwise(sched)]
    assert all(g == pytest.approx(20_000_000, abs=1) for g in gaps)


def test_shares_across_workers_add_up_to_the_single_process_level() -> None:
    level = Level(rate=100, arrival="poisson", requests=17, warmup=3)
    single: list[RequestRecord] = []
    asyncio.run(run_level(FakeEndpoint(0.001), level, 0, ["p"], sink=into(single), seed=5, t0_ns=0))
    shares: list[RequestRecord] = []
    for k in range(3):
        asyncio.run(
            run_level(
                FakeEndpoint(0.001), level, 0, ["p"], sink=into(shares), seed=5, worker=k, workers=3, t0_ns=0
            )
        )
    key = lambda r: r.request_id  # noqa: E731
    assert [(r.request_id, r.scheduled_ns, r.warmup) for r in sorted(single, key=key)] == [
        (r.request_id, r.scheduled_ns, r.warmup) for r in sorted(shares, key=key)
    ]
    offsets = arrival_offsets(100, "poisson", count=20, duration_s=None, seed=5)
    assert sorted(r.scheduled_ns for r in single) == [int(o * 1e9) for o in offsets]
    assert {r.worker for r in shares} == {0, 1, 2}


def test_closed_loop_shares_split_users_and_requests() -> None:
    assert split_evenly(10, 4) == [3, 3, 2, 2]
    got: list[RequestRecord] = []
    eps = [FakeEndpoint(), FakeEndpoint()]
    for k in range(2):
        asyncio.run(
            run_level(
                eps[k], Level(concurrency=5, requests=10), 0, ["p"], sink=into(got), worker=k, workers=2
            )
        )
    assert [ep.max_in_flight for ep in eps] == [3, 2]
    assert sorted(r.request_id for r in got) == list(range(15))
    assert sum(r.warmup for r in got) == 5


def test_stop_cancels_in_flight_requests_and_records_them() -> None:
    got: list[RequestRecord] = []

    async def main() -> Any:
        stop = asyncio.Event()
        ep = FakeEndpoint(5.0)
        task = asyncio.create_task(
            run_level(ep, Level(concurrency=3, requests=10), 0, ["p"], sink=into(got), stop=stop)
        )
        await asyncio.sleep(0.05)
        stop.set()
        return await task

    res = asyncio.run(main())
    assert res.interrupted
    assert len(got) == 3
    assert all(r.error is ErrorKind.CANCELLED for r in got)


def test_loop_lag_and_cpu_are_recorded() -> None:
    res = asyncio.run(
        run_level(FakeEndpoint(0.05), Level(concurrency=1, requests=2), 0, ["p"], sink=lambda r: None)
    )
    check = res.self_check()
    assert check["loop_lag_samples"] > 0
    assert check["cpu_s"] >= 0


class FailingEndpoint(FakeEndpoint):
    """Fails every request with ``kind`` at once, except the ones whose global index is in ``succeed``."""

    def __init__(self, kind: ErrorKind, succeed: frozenset[int] = frozenset()) -> None:
        super().__init__(0.0)
        self.kind, self.succeed = kind, succeed

    async def __call__(self, prompt: Any, **kw: Any) -> Reply:
        reply = await super().__call__(prompt, **kw)
        if kw["request_id"] not in self.succeed:
            reply.record.error = self.kind
        return reply


@pytest.mark.parametrize("level", [Level(concurrency=4, requests=1000), Level(rate=2000, requests=1000)])
def test_a_level_that_only_fails_stops_with_the_reason(level: Level) -> None:
    got: list[RequestRecord] = []
    res = asyncio.run(run_level(FailingEndpoint(ErrorKind.CONNECT), level, 0, ["p"], sink=into(got)))
    assert res.stopped == "stopped after 20 consecutive connect failures and no success"
    assert 20 <= len(got) == res.sent < 40 and res.self_check()["stopped"] == res.stopped


def test_a_level_with_a_success_or_mixed_failures_runs_to_the_end() -> None:
    one_ok = FailingEndpoint(ErrorKind.HTTP_5XX, succeed=frozenset({3}))
    res = asyncio.run(run_level(one_ok, Level(concurrency=2, requests=60), 0, ["p"], sink=lambda r: None))
    assert res.stopped is None and res.sent == 62
    wide = asyncio.run(  # the streak must reach the concurrency: 64 users all fail in the first wave
        run_level(
            FailingEndpoint(ErrorKind.CONNECT),
            Level(concurrency=64, requests=64),
            0,
            ["p"],
            sink=lambda r: None,
        )
    )
    assert wide.stopped == "stopped after 64 consecutive connect failures and no success"


def test_gather_cancelling_waits_for_all_raises_the_first_failure_and_stops_on_request() -> None:
    from tpsbench.load.runner import _gather_cancelling

    async def case(kind: str) -> tuple[list[str], BaseException | None]:
        stop = asyncio.Event()
        seen: list[str] = []

        async def user(k: int) -> None:
            try:
                await asyncio.sleep(0.001 * (k + 1))
                if kind == "fail" and k == 1:
                    raise RuntimeError("user 1 broke")
                if kind == "stop" and k == 1:
                    stop.set()
                    await asyncio.sleep(10)
                if kind != "all":
                    await asyncio.sleep(10)
                seen.append(f"done {k}")
            except asyncio.CancelledError:
                seen.append(f"cancelled {k}")
                raise

        tasks = [asyncio.create_task(user(k)) for k in range(3)]
        try:
            await _gather_cancelling(tasks, stop)
        except RuntimeError as exc:
            return sorted(seen), exc
        return sorted(seen), None

    assert asyncio.run(case("all")) == (["done 0", "done 1", "done 2"], None)
    seen, exc = asyncio.run(case("fail"))
    assert str(exc) == "user 1 broke" and seen == ["cancelled 0", "cancelled 2"]
    assert asyncio.run(case("stop")) == (["cancelled 0", "cancelled 1", "cancelled 2"], None)
