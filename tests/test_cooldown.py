"""A level's cooldown, on exact synthetic timestamps: the load is held until the last measured request ends,
cooldown requests are kept but not measured, a stop during cooldown is not a failure, shares across
workers hold the load until the level's last measured end, and the scenario says where it does not apply.

The endpoint runs on a virtual clock: a request's duration is a function of its request id, and time jumps
from one request end to the next once every task is waiting, so every timestamp is exact."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from textwrap import dedent
from typing import Any

import pytest
from typer.testing import CliRunner

from tpsbench.cli.app import app
from tpsbench.config.dump import dump_scenario
from tpsbench.config.loader import load_scenario
from tpsbench.config.scenario import Level, Scenario, ScenarioError
from tpsbench.core.record import ErrorKind, Reply, RequestRecord, TokenSource
from tpsbench.load import outcome
from tpsbench.load.runner import run_level
from tpsbench.results import files
from tpsbench.results.summary import summarize_level

MS = 1_000_000
SETTLE = 200  # loop turns given to the tasks before the clock moves on


class VirtualEndpoint:
    """Request ``rid`` takes ``duration_ms(rid)`` on a virtual clock and streams one token per ms."""

    def __init__(self, duration_ms: Callable[[int], int]) -> None:
        self.duration_ms = duration_ms
        self.now = 0
        self._ends: list[tuple[int, int, asyncio.Future[None]]] = []
        self.stop = asyncio.Event()  # set by drive(stop_at_ns=...)

    def clock(self) -> int:
        return self.now

    async def __call__(self, prompt: Any, **kw: Any) -> Reply:
        rid, send = kw["request_id"], self.now
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._ends, (send + self.duration_ms(rid) * MS, rid, done))
        await done
        chunks = list(range(send + MS, self.now + 1, MS))
        record = RequestRecord(
            request_id=rid, level=kw["level"], send_ns=send, end_ns=self.now, warmup=kw["warmup"],
            worker=kw["worker"], chunk_ns=chunks, chunk_tokens=[1.0] * len(chunks),
            output_tokens=len(chunks), token_source=TokenSource.USAGE,
        )  # fmt: skip
        return Reply(record)

    async def drive(self, main: Coroutine[Any, Any, Any], *, stop_at_ns: int | None = None) -> Any:
        """Run ``main``, moving the clock to the next request end whenever everything waits; with
        ``stop_at_ns``, :meth:`stop` is set when the clock would pass that time."""
        task = asyncio.ensure_future(main)
        while not task.done():
            for _ in range(SETTLE):
                await asyncio.sleep(0)
            while self._ends and self._ends[0][2].done():  # cancelled with its request
                heapq.heappop(self._ends)
            if not self._ends or task.done():
                continue
            end, _, fut = self._ends[0]
            if stop_at_ns is not None and end > stop_at_ns and not self.stop.is_set():
                self.now = stop_at_ns
                self.stop.set()
                continue
            heapq.heappop(self._ends)
            self.now = end
            fut.set_result(None)
        return task.result()


def durations(rid: int) -> int:
    """Uneven request lengths (ms), so the users fall out of step: 100, 130, 160, 190, 220, 100, ..."""
    return 100 + 30 * (rid % 5)


def run(level: Level, ep: VirtualEndpoint, **kw: Any) -> list[RequestRecord]:
    got: list[RequestRecord] = []

    async def main() -> None:
        await ep.drive(
            run_level(ep, level, 0, ["p"], sink=lambda r: got.append(r.record), clock=ep.clock, **kw)
        )

    asyncio.run(main())
    return got


def in_flight(records: list[RequestRecord], t: int) -> int:
    """Requests in flight at instant ``t`` (sent at or before it, ending after it)."""
    return sum(1 for r in records if r.send_ns <= t < r.end_ns)


def instants(records: list[RequestRecord], t0: int, t1: int) -> list[int]:
    """Every send and end time in ``[t0, t1)``: in-flight counts only change there."""
    return sorted({t for r in records for t in (r.send_ns, r.end_ns) if t0 <= t < t1})


def test_closed_loop_holds_its_concurrency_until_the_last_measured_end() -> None:
    got = run(Level(concurrency=3, requests=12, cooldown=True), VirtualEndpoint(durations))
    measured = [r for r in got if r.measured]
    cooldown = [r for r in got if r.cooldown]
    assert len(measured) == 12 and sum(r.warmup for r in got) == 3
    t_end = max(r.end_ns for r in measured)
    # from the first send to the last measured end, exactly 3 in flight at every instant
    assert {in_flight(got, t) for t in instants(got, 0, t_end)} == {3}
    # cooldown requests: the ones after the measured ids, none sent after the last measured end, all run
    # to their end (their tokens inside the window count), none measured
    assert sorted(r.request_id for r in cooldown) == list(range(15, 15 + len(cooldown))) and cooldown
    assert all(r.send_ns < t_end and r.ok and not r.warmup for r in cooldown)
    assert max(r.end_ns for r in cooldown) > t_end
    # a user whose last measured request ended once every other measured one had sends nothing more
    assert in_flight(got, t_end) == len([r for r in cooldown if r.end_ns > t_end]) == 2


def test_without_cooldown_the_window_holds_the_drain() -> None:
    got = run(Level(concurrency=3, requests=12), VirtualEndpoint(durations))
    t_end = max(r.end_ns for r in got if r.measured)
    counts = [in_flight(got, t) for t in instants(got, 0, t_end)]
    assert counts[-1] == 1 and counts[-2] == 2 and not any(r.cooldown for r in got)


def test_exact_schedule_of_a_small_level() -> None:
    # c=2, one warmup each, 2 measured: ids 0,1 warmup (100, 130 ms), 2,3 measured (160, 190 ms)
    got = run(Level(concurrency=2, requests=2, cooldown=True), VirtualEndpoint(durations))
    rows = sorted((r.request_id, r.send_ns // MS, r.end_ns // MS, r.warmup, r.cooldown) for r in got)
    assert rows == [
        (0, 0, 100, True, False),
        (1, 0, 130, True, False),
        (2, 100, 260, False, False),  # measured: 160 ms
        (3, 130, 320, False, False),  # measured: 190 ms, the last measured end
        (4, 260, 480, False, True),  # cooldown (220 ms): the user of id 2 keeps the load on past 320
    ]


def test_one_user_sends_no_cooldown_request() -> None:
    got = run(Level(concurrency=1, requests=3, cooldown=True), VirtualEndpoint(durations))
    assert len(got) == 4 and not any(r.cooldown for r in got)


def test_duration_bound_level_cools_down_too() -> None:
    got = run(Level(concurrency=2, duration_s=0.5, warmup=2, cooldown=True), VirtualEndpoint(durations))
    measured = [r for r in got if r.measured]
    t_end = max(r.end_ns for r in measured)
    assert {in_flight(got, t) for t in instants(got, 0, t_end)} == {2}
    first_measured = min(r.send_ns for r in measured)
    assert all(r.send_ns - first_measured >= 500 * MS for r in got if r.cooldown)  # after the duration


def test_open_loop_keeps_its_schedule_until_the_last_measured_end() -> None:
    """Real time here (the dispatcher sleeps until each arrival); the schedule itself is exact."""

    async def send(prompt: Any, **kw: Any) -> Reply:
        send_ns = time.perf_counter_ns()
        await asyncio.sleep(0.45)
        end_ns, scheduled_ns = time.perf_counter_ns(), kw["scheduled_ns"]
        return Reply(RequestRecord(kw["request_id"], 0, send_ns, end_ns, scheduled_ns=scheduled_ns))

    got: list[RequestRecord] = []
    t0 = time.perf_counter_ns() + 20 * MS
    level = Level(rate=10, arrival="constant", requests=6, warmup=2, cooldown=True)
    asyncio.run(run_level(send, level, 0, ["p"], sink=lambda r: got.append(r.record), t0_ns=t0))
    # ids 0-7 (2 warmup, 6 measured) due every 100 ms; the last measured, due at 700 ms, ends at about
    # 1,150 ms: the schedule goes on, flagged cooldown, through 1,100 ms (id 11), not to 1,200 ms
    assert sorted((r.request_id, r.scheduled_ns) for r in got) == [(g, t0 + g * 100 * MS) for g in range(12)]
    assert [r.request_id for r in sorted(got, key=lambda r: r.request_id) if r.cooldown] == [8, 9, 10, 11]
    assert all(r.ok for r in got)


def test_shares_across_workers_hold_the_load_until_the_level_ends() -> None:
    """Two shares in one loop with the driver's rule: the cooldown ends when both have reported."""
    ep = VirtualEndpoint(durations)
    level = Level(concurrency=4, requests=16, cooldown=True)
    got: list[RequestRecord] = []
    over = asyncio.Event()
    reported: list[int] = []

    def report(worker: int) -> Callable[[], None]:
        def done() -> None:
            reported.append(worker)
            if len(reported) == 2:
                over.set()

        return done

    async def main() -> None:
        shares = [
            run_level(
                ep,
                level,
                0,
                ["p"],
                sink=lambda r: got.append(r.record),
                clock=ep.clock,
                worker=k,
                workers=2,
                cooldown_over=over,
                measured_done=report(k),
            )
            for k in range(2)
        ]
        await ep.drive(asyncio.gather(*shares))

    asyncio.run(main())
    measured = [r for r in got if r.measured]
    # the union of the shares measures exactly the single-process level's request numbers
    assert sorted(r.request_id for r in measured) == list(range(4, 20))
    assert {r.worker for r in measured} == {0, 1}
    assert all(r.request_id % 2 == r.worker for r in got)  # g = worker, worker + 2, ...
    t_end = max(r.end_ns for r in measured)
    assert {in_flight(got, t) for t in instants(got, 0, t_end)} == {4}
    assert sorted(reported) == [0, 1] and {r.worker for r in got if r.cooldown} == {0, 1}


def test_a_stop_during_cooldown_cancels_cooldown_requests_and_fails_nothing(tmp_path: Path) -> None:
    level = Level(concurrency=3, requests=6, cooldown=True)
    full = run(level, VirtualEndpoint(durations))
    t_end = max(r.end_ns for r in full if r.measured)
    ep = VirtualEndpoint(durations)
    got: list[RequestRecord] = []

    async def main() -> None:
        coro = run_level(
            ep, level, 0, ["p"], sink=lambda r: got.append(r.record), clock=ep.clock, stop=ep.stop
        )
        await ep.drive(coro, stop_at_ns=t_end + 1)

    asyncio.run(main())
    cancelled = [r for r in got if r.error is ErrorKind.CANCELLED]
    assert cancelled and all(r.cooldown and not r.measured for r in cancelled)
    assert all(r.ok for r in got if r.measured) and len([r for r in got if r.measured]) == 6
    # the records read back as written (the cooldown flag included), and the point counts no failure
    path = tmp_path / files.REQUESTS
    path.write_text("".join(files.json.dumps(files.record_line(r)) + "\n" for r in got))
    back = list(files.read_records(path))
    assert back == got
    point = summarize_level(back, level_index=0, level=level, slo={}, gpus=None)
    assert (
        point["errors"] == {}
        and point["measured"] == 6
        and point["cooldown"] == len(cancelled) + sum(1 for r in got if r.cooldown and r.ok)
    )
    assert outcome.judge([point], budget=0.0).exit_code == outcome.EXIT_OK


def test_summary_counts_cooldown_tokens_inside_the_window_only() -> None:
    def rec(rid: int, send: int, end: int, *, warmup: bool = False, cooldown: bool = False) -> RequestRecord:
        chunks = list(range(send + 1, end + 1))  # one token per second, in seconds
        return RequestRecord(
            request_id=rid, level=0, send_ns=send * 10**9, end_ns=end * 10**9, warmup=warmup,
            cooldown=cooldown, chunk_ns=[t * 10**9 for t in chunks], chunk_tokens=[1.0] * len(chunks),
            output_tokens=len(chunks), token_source=TokenSource.USAGE,
        )  # fmt: skip

    records = [
        rec(0, 0, 4, warmup=True),
        rec(1, 0, 2, warmup=True),
        rec(2, 2, 6),  # measured: window [2, 8]
        rec(3, 4, 8),
        rec(4, 6, 12, cooldown=True),  # tokens at 7, 8 inside the window
    ]
    p = summarize_level(records, level_index=0, level=Level(concurrency=2, requests=2), slo={}, gpus=None)
    assert (p["requests"], p["measured"], p["warmup"], p["cooldown"]) == (5, 2, 2, 1)
    assert p["window_s"] == 6.0
    # tokens arriving in [2, 8]: warmup 1 at 2, warmup 0 at 2..4, measured at 3..6 and 5..8, cooldown 7, 8
    assert p["output_tps"] == pytest.approx((1 + 3 + 4 + 4 + 2) / 6)
    assert p["self_check"]["achieved_concurrency"] == pytest.approx((4 + 4) / 6)
    assert p["self_check"]["in_flight_mean"] == pytest.approx((2 + 4 + 4 + 2) / 6) == 2.0
    assert p["e2e_s"]["n"] == 2


def test_record_format_5_keeps_the_cooldown_flag_and_older_lines_read_false() -> None:
    r = RequestRecord(request_id=1, level=0, send_ns=0, end_ns=5, cooldown=True)
    line = files.record_line(r)
    assert line["format"] == 5 and line["cooldown"] is True
    assert files.record_from_line(line, "x:1") == r and not r.measured
    old = {k: v for k, v in line.items() if k != "cooldown"} | {"format": 4}
    assert files.record_from_line(old, "x:1").cooldown is False


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "s.yaml"
    path.write_text(dedent(text).lstrip())
    return path


def issues(path: Path) -> list[tuple[int | None, str, str]]:
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    return [(i.line, i.field, i.message) for i in info.value.issues]


def test_loader_places_cooldown_errors(tmp_path: Path) -> None:
    (tmp_path / "t.jsonl").write_text('{"timestamp": 0, "input_length": 8, "output_length": 8}\n')
    path = write(
        tmp_path,
        """
        load:
          - concurrency: 2
            requests: 4
            cooldown: sure
          - trace: {path: t.jsonl, format: mooncake}
            cooldown: true
        """,
    )
    got = issues(path)
    assert got[0] == (4, "load[0].cooldown", "expected true or false, got 'sure'")
    assert got[1][:2] == (5, "load[1]") and got[1][2].startswith("'cooldown' does not apply to a trace")
    sessions = write(
        tmp_path,
        """
        workload: {sessions: {turns: 2}}
        load:
          - {rate: 2, requests: 4, cooldown: true}
        """,
    )
    [(line, field, message)] = issues(sessions)
    assert (line, field) == (None, "") and "closed-loop levels ('concurrency') only" in message


def test_cooldown_is_dumped_loaded_and_carried_by_overrides(tmp_path: Path) -> None:
    s = Scenario.model_validate({"load": [{"concurrency": 4, "requests": 8, "cooldown": True}]})
    path = tmp_path / "resolved.yaml"
    path.write_text(dump_scenario(s))
    assert "cooldown: true" in path.read_text() and load_scenario(path) == s
    assert [lv.cooldown for lv in s.with_overrides(concurrency=[1, 2]).fixed_levels] == [True, True]
    sweep = Scenario.model_validate({"sweep": {"concurrency": {"start": 1, "max": 4}, "cooldown": True}})
    assert sweep.sweep is not None and sweep.sweep.level(2).cooldown
    assert not Level(concurrency=1, requests=1).cooldown  # opt-in


def test_ids_are_consecutive_per_share() -> None:
    got = run(Level(concurrency=2, requests=4, cooldown=True), VirtualEndpoint(durations))
    ids = sorted(r.request_id for r in got)
    assert ids == list(itertools.islice(itertools.count(), len(ids)))


def test_validate_names_the_levels_that_cool_down(tmp_path: Path) -> None:
    path = write(
        tmp_path, "load: [{concurrency: 2, requests: 4}, {concurrency: 4, requests: 8, cooldown: true}]\n"
    )
    res = CliRunner().invoke(app, ["validate", str(path)])
    assert res.exit_code == 0 and "ok (2 levels: c=2, c=4 + cooldown)" in res.output
