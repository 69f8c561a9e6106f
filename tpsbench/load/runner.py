"""Drive one load level: closed loop (N users, each sends its next request when the last one ends) or open
loop (requests start on a precomputed, seeded schedule whether or not earlier ones finished).

The runner knows nothing of HTTP: it calls ``send`` (normally ``Client.send``) and hands every finished
request's :class:`~tpsbench.core.record.Reply` to ``sink`` at once, so records stream to disk and Ctrl-C
loses nothing finished.

Warmup: the first ``warmup`` requests of a level (by start order) are flagged and not measured. In closed
loop the default warmup equals the concurrency, so every user's first request, which also opens its
connection, is unmeasured. A closed-loop level measures at least ``concurrency`` requests
(:attr:`Level.measured_requests`).

Cooldown (``Level.cooldown``): once the measured requests have all started, the level goes on sending as
before (closed loop: each user takes its next request; open loop: the same seeded arrival process,
continued), but those requests are flagged ``cooldown`` and not measured. When the last measured request
has ended (with workers: every share's), no new request starts and the cooldown requests in flight run to
their end, so the tokens they streamed inside the measured window are in their records (a cancelled
request's stream is lost: the client decodes a body once it has ended). So the server holds the level's
load until the last measured end, the measured window's end as warmup makes its start.

A level that only fails stops: once ``max(20, concurrency)`` requests in a row have failed with the same
error kind and none of the level has succeeded, no new request starts (those in flight finish and are
recorded) and :attr:`LevelResult.stopped` says why. Without it a closed loop against a dead endpoint
re-sends as fast as the CPU allows and measures nothing but its own speed.

    >>> import asyncio
    >>> from tpsbench.config.scenario import Level
    >>> async def send(prompt, *, request_id, level, scheduled_ns, warmup, worker):
    ...     r = RequestRecord(request_id=request_id, level=level, send_ns=0, end_ns=1, warmup=warmup)
    ...     return Reply(r)
    >>> got = []
    >>> res = asyncio.run(run_level(send, Level(concurrency=2, requests=4), 0, ["p"], sink=got.append))
    >>> (len(got), res.sent)
    (6, 6)
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from tpsbench.config.scenario import Level
from tpsbench.core import collector
from tpsbench.core.record import NS_PER_S, ErrorKind, Reply, RequestRecord, default_clock
from tpsbench.load.arrivals import arrival_offsets, ramp_offsets, ramp_time
from tpsbench.load.phases import Phases, chain, continued
from tpsbench.workload.sessions import SessionSpec


class SendFn(Protocol):
    def __call__(
        self,
        prompt: Any,
        *,
        request_id: int,
        level: int,
        scheduled_ns: int | None,
        warmup: bool,
        worker: int,
    ) -> Awaitable[Reply]: ...


Sink = Callable[[Reply], None]


@dataclass
class LevelResult:
    """What the runner itself observed while driving one level (the records went to the sink)."""

    level_index: int
    start_ns: int
    end_ns: int
    sent: int = 0
    finished: int = 0
    interrupted: bool = False
    loop_lag_s: list[float] = field(default_factory=list)  # event-loop lag samples (self-check)
    cpu_s: float = 0.0  # this process's CPU time over the level
    stopped: str | None = None  # why the level ended early because every request failed (None: it did not)

    def self_check(self) -> dict[str, Any]:
        """Client health over the level; the summary turns it into the client-bound flag."""
        wall = (self.end_ns - self.start_ns) / NS_PER_S
        lags = sorted(self.loop_lag_s)
        p99 = lags[min(len(lags) - 1, int(0.99 * len(lags)))] if lags else None
        return {
            "loop_lag_p99_s": p99,
            "loop_lag_max_s": lags[-1] if lags else None,
            "loop_lag_samples": len(lags),
            "cpu_s": self.cpu_s,
            "cpu_percent": 100.0 * self.cpu_s / wall if wall > 0 else None,
            "interrupted": self.interrupted,
            "stopped": self.stopped,
        }


FAIL_STREAK = 20  # consecutive failures of one kind, no success yet: the level stops (at least concurrency)
PRECISE_S = 0.001  # an open-loop request's last millisecond of waiting yields instead of sleeping in epoll
LAG_PROBE_S = 0.010  # a 10 ms probe resolves the lag that matters for chunks arriving every few ms


async def _probe_loop_lag(samples: list[float], clock: Callable[[], int]) -> None:
    """Measure event-loop lag: how late a 10 ms sleep wakes up. A busy loop stamps chunks late."""
    while True:
        t = clock()
        await asyncio.sleep(LAG_PROBE_S)
        samples.append(max(0.0, (clock() - t) / NS_PER_S - LAG_PROBE_S))


async def run_level(
    send: SendFn,
    level: Level,
    level_index: int,
    prompts: Sequence[Any],
    *,
    sink: Sink,
    seed: int = 0,
    clock: Callable[[], int] = default_clock,
    id_offset: int = 0,
    worker: int = 0,
    workers: int = 1,
    t0_ns: int | None = None,
    stop: asyncio.Event | None = None,
    schedule_s: Sequence[float] | None = None,
    sessions: Sequence[SessionSpec] | None = None,
    cooldown_over: asyncio.Event | None = None,
    measured_done: Callable[[], None] | None = None,
    measured_started: Callable[[], None] | None = None,
) -> LevelResult:
    """Run one level to completion (its request count or duration) and return what the runner saw.

    ``prompts`` are used in order and cycled. ``stop`` ends the level early (Ctrl-C): no new requests
    start, requests in flight are cancelled and recorded with ``ErrorKind.CANCELLED``.

    With ``workers`` > 1 this call drives share ``worker`` of the level: the level's requests are numbered
    globally (g = 0, 1, 2, ...; the first ``warmup`` are warmup) and this worker takes g = worker, worker +
    workers, ...; closed-loop users are split as evenly as possible; an open-loop schedule is computed whole
    (same seed) from the common start ``t0_ns`` and dealt round-robin, so the union of all workers is
    exactly the single-process level.

    A ``trace`` level sends request g at ``schedule_s[g]`` (seconds from the start; the trace's clock, see
    :mod:`tpsbench.workload.traces`) with prompt g. ``ramp_s`` starts closed-loop users one by one over
    that time (user k of the level's ``concurrency`` at ``k * ramp_s / concurrency``) and bends an open-loop
    schedule into a linear rate ramp (:func:`.arrivals.ramp_offsets`). ``max_concurrency`` (open loop):
    a request due while that many are in flight waits for a slot, and its record's ``queue_ns`` says how
    long (its ``scheduled_ns`` stays the time it was due).

    With ``sessions`` (multi-turn, :mod:`tpsbench.workload.sessions`) every request is a turn of a session:
    closed loop runs ``concurrency`` sessions at a time (each user plays sessions one after another), open
    loop starts session i at the schedule's offset i; a session sends its turns in order, each after the
    previous answer and its think time, with the text the server returned as the assistant's turns, and
    ends early when a turn fails. Request numbers (and so warmup, ``requests`` and the worker share) are
    taken turn by turn, in start order; records carry ``session_id`` (numbered per level) and ``turn``.
    In open loop, a later turn's ``scheduled_ns`` is when its think time ended, so its lag is recorded too.

    With ``level.cooldown`` (see the module docstring) this share sends cooldown requests until
    ``cooldown_over`` is set. Without it the runner sets its own once this share's measured requests have
    all ended (a single process is the whole level); workers pass the driver's, set when every share has
    reported ``measured_done`` (called once, when this share's measured requests have all ended).
    ``measured_started`` is called once, when this share's first measured request starts: with
    ``measured_done`` it brackets the share's measured window (the reference endpoint's pace report covers
    the level's, :mod:`.pace_window`).
    """
    stop = stop or asyncio.Event()
    # The cyclic GC's full passes visit every object of the process: up to 100 ms with no chunk stamped,
    # measured at 1,024 streams. Quiet for the level (core/collector.py: frozen, no full pass; a freeze is
    # O(1), unlike a collect, which would delay a shared open-loop start); the process's own policy after.
    collector_before = collector.quiet()
    result = LevelResult(level_index, clock(), clock())
    cpu0 = time.process_time()
    probe = asyncio.create_task(_probe_loop_lag(result.loop_lag_s, clock))
    warmup = level.resolved_warmup
    measured = level.measured_requests
    total = warmup + measured if measured is not None else None
    halt = asyncio.Event()  # set when the level gives up: no new request starts, in-flight ones finish
    streak = _FailureStreak(max(FAIL_STREAK, level.concurrency or 0))
    if level.cooldown and cooldown_over is None:
        cooldown_over = asyncio.Event()
        measured_done = chain(measured_done, cooldown_over.set)
    phases = Phases(warmup, cooldown_over if level.cooldown else None, measured_done, measured_started)

    def record_done(record: RequestRecord) -> None:
        if result.stopped is None and (reason := streak.add(record)) is not None:
            result.stopped = reason
            halt.set()

    slots = asyncio.Semaphore(level.max_concurrency) if level.max_concurrency is not None else None

    async def one(
        g: int, scheduled_ns: int | None, prompt: Any = None, turn: tuple[int, int] | None = None
    ) -> Reply:
        if prompt is None:
            prompt = prompts[g % len(prompts)]
        session_id, turn_index = turn if turn is not None else (None, None)
        rid = id_offset + g
        is_warmup = g < warmup
        is_cooldown = phases.is_cooldown(g)
        result.sent += 1
        queue_ns: int | None = None
        held = False
        phases.began(g)
        try:
            if slots is not None:
                waited = clock()
                await slots.acquire()
                held = True
                queue_ns = clock() - waited
            reply = await send(
                prompt,
                request_id=rid,
                level=level_index,
                scheduled_ns=scheduled_ns,
                warmup=is_warmup,
                worker=worker,
            )
        except asyncio.CancelledError:
            now = clock()
            cancelled = RequestRecord(
                request_id=rid,
                level=level_index,
                send_ns=now if scheduled_ns is None else max(scheduled_ns, now),
                end_ns=now,
                scheduled_ns=scheduled_ns,
                worker=worker,
                warmup=is_warmup,
                error=ErrorKind.CANCELLED,
                error_detail="run interrupted while the request was in flight",
                queue_ns=queue_ns,
                session_id=session_id,
                turn=turn_index,
                cooldown=is_cooldown,
            )
            sink(Reply(cancelled))
            raise
        finally:
            if held:
                assert slots is not None
                slots.release()
            phases.ended(g)
        reply.record.queue_ns = queue_ns
        reply.record.session_id, reply.record.turn = session_id, turn_index
        reply.record.cooldown = is_cooldown
        result.finished += 1
        sink(reply)
        record_done(reply.record)
        return reply

    async def play(sid: int, take: Callable[[], int | None], scheduled_ns: int | None) -> bool:
        """Play session ``sid`` turn by turn; False once ``take`` has no request left."""
        assert sessions
        spec = sessions[sid % len(sessions)]
        answers: list[str] = []
        for k in range(spec.turns):
            think = spec.think_s[k]
            if k and think > 0:
                due = clock() + int(think * NS_PER_S)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(_either(stop, halt), think)
                scheduled_ns = due if scheduled_ns is not None else None  # open loop: due when thought
            elif k and scheduled_ns is not None:
                scheduled_ns = clock()
            if (g := take()) is None:
                return False
            reply = await one(g, scheduled_ns, spec.prompt(k, answers), (sid, k))
            if not reply.record.ok:
                break  # no answer to build the next turn on
            answers.append(reply.text or "")
        return True

    try:
        if level.concurrency is not None:
            split = split_evenly(level.concurrency, workers)
            users = split[worker]
            share = (worker, workers)
            first_user = sum(split[:worker])
            ramp = [(first_user + k) * level.ramp_s / level.concurrency for k in range(users)]
            player = None
            if sessions:
                started = iter(range(worker, 1 << 62, workers))  # session ids of this share

                async def player(take: Callable[[], int | None]) -> bool:
                    return await play(next(started), take, None)

            await _closed_loop(
                one, users, total, phases, level.duration_s, stop, clock, share, halt, ramp, player
            )
        elif level.trace is not None:
            if schedule_s is None:
                raise ValueError("a trace level needs its schedule (schedule_s)")
            offsets = np.asarray(schedule_s, dtype=np.float64)
            if level.duration_s is not None:
                offsets = offsets[offsets < level.duration_s]
            mine = [
                (g, float(offsets[g]))
                for g in range(worker, min(len(offsets), total or len(offsets)), workers)
            ]
            await _open_loop(one, mine, stop, clock, t0_ns, halt)
        else:
            assert level.rate is not None
            window = None if level.duration_s is None else level.duration_s + warmup / level.rate
            offsets = arrival_offsets(
                level.rate,
                level.arrival,
                burstiness=level.burstiness,
                count=total,
                # a ramp fits fewer full-rate seconds into the window: draw those, then bend them
                duration_s=None if window is None else ramp_time(window, level.ramp_s),
                seed=seed + level_index,
            )
            offsets = ramp_offsets(offsets, level.ramp_s)
            mine = [(g, float(offsets[g])) for g in range(worker, len(offsets), workers)]
            if not sessions:
                schedule: Iterable[tuple[int, float]] = mine
                if level.cooldown:
                    phases.cooldown_from = len(offsets)

                    def more(n: int) -> NDArray[np.float64]:  # the same arrivals, continued
                        drawn = arrival_offsets(
                            level.rate or 1.0, level.arrival, burstiness=level.burstiness, count=n,
                            duration_s=None, seed=seed + level_index,
                        )  # fmt: skip
                        return ramp_offsets(drawn, level.ramp_s)

                    schedule = itertools.chain(mine, continued(more, len(offsets), worker, workers))
                await _open_loop(one, schedule, stop, clock, t0_ns, halt, phases)
            else:
                turns = iter(range(worker, 1 << 62, workers))  # request numbers of this share, by start
                window_end: list[int] = []

                def take_turn() -> int | None:
                    g = next(turns)
                    if total is not None and g >= total:
                        return None
                    if window is not None and window_end and clock() >= window_end[0]:
                        return None
                    return g

                async def start(i: int, scheduled_ns: int | None) -> None:
                    if not window_end and window is not None and scheduled_ns is not None:
                        window_end.append(scheduled_ns - int(offsets[i] * NS_PER_S) + int(window * NS_PER_S))
                    await play(i, take_turn, scheduled_ns)

                await _open_loop(start, mine, stop, clock, t0_ns, halt)
    except asyncio.CancelledError:
        result.interrupted = True
        raise
    finally:
        phases.close()  # a share that sent nothing measured (no users, an empty schedule) is done too
        result.interrupted = result.interrupted or stop.is_set()
        probe.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await probe
        result.end_ns = clock()
        result.cpu_s = time.process_time() - cpu0
        collector.restore(collector_before)
    return result


class _FailureStreak:
    """Consecutive failures of one kind, in completion order, while the level has had no success."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.kind: ErrorKind | None = None
        self.count = 0
        self.any_ok = False

    def add(self, record: RequestRecord) -> str | None:
        """Count ``record``; the reason to stop the level once the streak reaches the limit, else None."""
        if record.ok:
            self.any_ok = True
            return None
        if self.any_ok or record.error is ErrorKind.CANCELLED:
            return None
        if record.error is self.kind:
            self.count += 1
        else:
            self.kind, self.count = record.error, 1
        if self.count < self.limit or self.kind is None:
            return None
        return f"stopped after {self.count} consecutive {self.kind.value} failures and no success"


def split_evenly(n: int, parts: int) -> list[int]:
    """``n`` split into ``parts`` integers that differ by at most one, larger first.

    >>> split_evenly(10, 4)
    [3, 3, 2, 2]
    """
    return [n // parts + (1 if k < n % parts else 0) for k in range(parts)]


async def _closed_loop(
    one: Callable[[int, int | None], Coroutine[Any, Any, Any]],
    users: int,
    total: int | None,
    phases: Phases,
    duration_s: float | None,
    stop: asyncio.Event,
    clock: Callable[[], int],
    share: tuple[int, int] = (0, 1),
    halt: asyncio.Event | None = None,
    ramp_s: Sequence[float] = (),
    player: Callable[[Callable[[], int | None]], Coroutine[Any, Any, bool]] | None = None,
) -> None:
    """Exactly ``users`` requests in flight until ``total`` have started or the measured window (which
    opens when the first measured request starts) has lasted ``duration_s``; then, with cooldown, on as
    long as ``phases`` is cooling (those requests are cooldown). User k starts after ``ramp_s[k]`` seconds
    (0 if not given). With a ``player`` each user plays sessions (``player(take)`` takes a request number
    per turn) until one returns False."""
    first, step = share
    next_index = first  # global request index: this share takes first, first + step, ...
    measure_start: int | None = None

    def take() -> int | None:
        nonlocal next_index, measure_start
        if stop.is_set() or (halt is not None and halt.is_set()):
            phases.close()
            return None
        if not phases.closed:
            if total is not None and next_index >= total:
                phases.close(next_index)
            else:
                now = clock()
                if next_index >= phases.warmup and measure_start is None:
                    measure_start = now
                if (
                    duration_s is not None
                    and measure_start is not None
                    and now - measure_start >= duration_s * NS_PER_S
                ):
                    phases.close(next_index)
        if phases.closed and not phases.cooling():
            return None
        g = next_index
        next_index += step
        return g

    async def user(delay: float) -> None:
        if delay > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
        if player is not None:
            while await player(take):
                pass
            return
        while (i := take()) is not None:
            await one(i, None)

    await _gather_cancelling(
        [asyncio.create_task(user(ramp_s[k] if k < len(ramp_s) else 0.0)) for k in range(users)],
        stop,
    )


async def _open_loop(
    one: Callable[[int, int | None], Coroutine[Any, Any, Any]],
    schedule: Iterable[tuple[int, float]],
    stop: asyncio.Event,
    clock: Callable[[], int],
    t0_ns: int | None = None,
    halt: asyncio.Event | None = None,
    phases: Phases | None = None,
) -> None:
    """Start request i at t0 + offsets_s[i] whatever happened to the others. A late start is recorded
    (scheduled_ns vs send_ns), never hidden: that is how coordinated omission stays visible. Requests
    from ``phases.cooldown_from`` on (an endless continuation, with cooldown) start only while
    ``phases`` is cooling."""
    lead_ns = 20_000_000  # start the schedule a little ahead so request 0 is not late by construction
    t0 = t0_ns if t0_ns is not None else clock() + lead_ns
    tasks: list[asyncio.Task[Any]] = []

    async def dispatch() -> None:
        for i, off in schedule:
            cooling = phases is not None and phases.is_cooldown(i)
            if cooling:
                assert phases is not None
                if not phases.closed:
                    await asyncio.sleep(0)  # the last measured tasks start (and count as in flight)
                    phases.close()  # every measured request is out
                if not phases.cooling():
                    return
            scheduled = t0 + int(off * NS_PER_S)
            delay = (scheduled - clock()) / NS_PER_S
            if delay > PRECISE_S:
                over = phases.cooldown_over if cooling and phases is not None else None
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(_either(stop, halt, over), delay - PRECISE_S)
            # epoll wakes up to 1 ms late: the last PRECISE_S are spent yielding to the loop (which keeps
            # reading and stamping responses meanwhile) until the due time
            while clock() < scheduled and not stop.is_set():
                await asyncio.sleep(0)
            if stop.is_set() or (halt is not None and halt.is_set()):
                return
            if cooling and phases is not None and not phases.cooling():
                return
            tasks.append(asyncio.create_task(one(i, scheduled)))

    dispatcher = asyncio.create_task(dispatch())
    await _gather_cancelling([dispatcher], stop)
    await _gather_cancelling(tasks, stop)


async def _either(stop: asyncio.Event, *others: asyncio.Event | None) -> None:
    """Return when ``stop`` or any of ``others`` (None skipped) is set."""
    events = [stop, *(e for e in others if e is not None)]
    if len(events) == 1:
        await stop.wait()
        return
    waits = [asyncio.create_task(e.wait()) for e in events]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()


async def _gather_cancelling(tasks: list[asyncio.Task[None]], stop: asyncio.Event) -> None:
    """Wait for ``tasks``; when ``stop`` is set (or we are cancelled) cancel them and wait until each has
    recorded its cancellation, so partial results are complete and consistent."""
    if not tasks:
        return
    stopper = asyncio.create_task(stop.wait())
    # One done-callback per task, not asyncio.wait(FIRST_COMPLETED) in a loop: that re-registers on every
    # pending task at each completion, O(n^2) over a level's end (2,048 users draining: seconds of loop
    # time, spent while the last measured streams are still being stamped).
    outcome: asyncio.Future[asyncio.Task[Any] | None] = asyncio.get_running_loop().create_future()
    left = len(tasks)

    def finished(t: asyncio.Task[Any]) -> None:
        nonlocal left
        left -= 1
        if outcome.done():
            return
        if not t.cancelled() and t.exception() is not None:
            outcome.set_result(t)  # the first failure: raised below
        elif not left:
            outcome.set_result(None)

    try:
        for t in tasks:
            t.add_done_callback(finished)
        stopper.add_done_callback(lambda _: None if outcome.done() else outcome.set_result(None))
        failed = await outcome
        if failed is not None:
            raise failed.exception()  # type: ignore[misc]
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        stopper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await stopper
