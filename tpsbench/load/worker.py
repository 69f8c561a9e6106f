"""The worker side of multi-process load: one share of a level, driven in its own event loop.

A worker builds its :class:`~.session.LevelSession`, says it is ready, waits for the shared start, drives
its share (see :func:`.runner.run_level`: closed-loop users split evenly, open-loop schedule computed whole
and dealt round-robin) and streams its records back through a :class:`WorkerSide`. With a level's
``cooldown`` a share keeps sending cooldown requests until *every* share's measured requests have ended:
it reports its own (``measured_done``) and the driver says when all have (``cooldown_over``), so the
level holds its load until the level's last measured end, not each share's. A share also reports when
its first measured request starts (``measured_started``): the driver brackets the level's measured window
with the first of those and the last ``measured_done``. The pools that start
workers (local processes in :mod:`.workers`, Ray tasks in :mod:`.raypool`) differ only in their sides.
All processes of a host stamp ``time.perf_counter_ns`` (CLOCK_MONOTONIC, one clock per host), so records
merge without conversion; workers on another host convert their times with the driver's clock anchor.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from dataclasses import dataclass
from typing import Any, Protocol

from tpsbench.config.scenario import Level
from tpsbench.core import eventloop
from tpsbench.core.record import Reply, RequestRecord, default_clock
from tpsbench.load.runner import run_level
from tpsbench.load.session import LevelSession, RunContext

__all__ = [
    "POLL_S",
    "ClockAnchor",
    "WorkerJob",
    "WorkerSide",
    "clock_offset_ns",
    "run_worker",
    "shift_record",
    "worker_entry",
]

POLL_S = 0.05


@dataclass(frozen=True)
class ClockAnchor:
    """The driver's host and its wall and monotonic clocks read together: workers on another host convert
    their clock to the driver's with it."""

    host: str = ""
    wall_ns: int = 0
    monotonic_ns: int = 0

    @classmethod
    def here(cls) -> ClockAnchor:
        return cls(socket.gethostname(), time.time_ns(), time.perf_counter_ns())


@dataclass(frozen=True)
class WorkerJob:
    """One worker's share of one level, picklable."""

    run: RunContext
    level_index: int
    level: Level
    id_offset: int  # request ids of the level start here
    prompt_count: int
    worker: int  # this share: worker ``worker`` of ``workers``
    workers: int
    anchor: ClockAnchor = ClockAnchor()


class WorkerSide(Protocol):
    """How a worker talks to the driver (a multiprocessing queue, or a Ray queue on a cluster)."""

    def put(self, msg: tuple[Any, ...]) -> None: ...
    def start_ns(self) -> int | None: ...  # the shared start, in the driver's clock; None until "go"
    def stopped(self) -> bool: ...
    def cooldown_over(self) -> bool: ...  # every share's measured requests have ended


def clock_offset_ns(anchor: ClockAnchor) -> int:
    """driver clock = worker clock + offset. Zero on the driver's host (CLOCK_MONOTONIC is host-wide);
    elsewhere from wall clocks (NTP-synchronised, so good to about a millisecond: cross-host windows
    carry that error, per-request metrics do not, they are differences on one clock)."""
    if not anchor.host or anchor.host == socket.gethostname():
        return 0
    return (anchor.wall_ns - anchor.monotonic_ns) - (time.time_ns() - default_clock())


def shift_record(record: RequestRecord, offset_ns: int) -> RequestRecord:
    """The same record with every timestamp moved by ``offset_ns`` (onto the driver's clock)."""
    if offset_ns == 0:
        return record
    record.send_ns += offset_ns
    record.end_ns += offset_ns
    if record.scheduled_ns is not None:
        record.scheduled_ns += offset_ns
    if record.headers_ns is not None:
        record.headers_ns += offset_ns
    record.chunk_ns = [t + offset_ns for t in record.chunk_ns]
    return record


async def run_worker(job: WorkerJob, side: WorkerSide) -> None:
    """A worker's whole life: set up, say ready, wait for the shared start, drive its share, report."""
    offset = clock_offset_ns(job.anchor)
    session = LevelSession.open(job.run)  # the driver refuses deferred tokenizers with workers
    work = session.work(job.level_index, job.level, job.prompt_count)
    stop = asyncio.Event()
    cooldown_over = asyncio.Event()

    async def watch_stop() -> None:
        while not side.stopped():
            if not cooldown_over.is_set() and side.cooldown_over():
                cooldown_over.set()
            await asyncio.sleep(POLL_S)
        stop.set()

    def measured_started() -> None:
        side.put(("measured_started", job.worker, None))

    def measured_done() -> None:
        side.put(("measured_done", job.worker, None))

    def sink(reply: Reply) -> None:
        side.put(("record", shift_record(reply.record, offset).to_dict()))

    side.put(("ready", job.worker, None))
    while (start := side.start_ns()) is None:
        await asyncio.sleep(POLL_S / 5)
    local_start = start - offset
    delay = (local_start - default_clock()) / 1e9
    if delay > 0:
        await asyncio.sleep(delay)
    watcher = asyncio.create_task(watch_stop())
    try:
        result = await run_level(
            session.send,
            job.level,
            job.level_index,
            work.prompts,
            sink=sink,
            seed=job.run.scenario.workload.seed,
            id_offset=job.id_offset,
            worker=job.worker,
            workers=job.workers,
            t0_ns=local_start,
            stop=stop,
            schedule_s=work.schedule_s,
            sessions=work.sessions,
            cooldown_over=cooldown_over if job.level.cooldown else None,
            measured_done=measured_done,
            measured_started=measured_started,
        )
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
        await session.aclose()
    side.put(("done", job.worker, result.self_check() | {"sent": result.sent, "worker": job.worker}))


def worker_entry(job: WorkerJob, side: WorkerSide) -> None:
    """Run a worker to its end in this process, reporting a failure instead of dying silently."""
    try:
        eventloop.run(run_worker(job, side))
    except BaseException as exc:
        side.put(("failed", job.worker, f"{type(exc).__name__}: {exc}"))
        raise
