"""Multi-process load generation: one level split across worker processes, each with its own event loop.

One Python event loop saturates one core; past that it stamps chunks late and the numbers drift. With
``workers: N`` each process drives share k of the level (see :func:`.runner.run_level`: closed-loop
users split evenly, open-loop schedule computed whole and dealt round-robin) and streams its records back
to the parent, which alone writes the run directory. All processes stamp ``time.perf_counter_ns``
(CLOCK_MONOTONIC, one clock per host), so records merge without conversion; an open-loop schedule starts
at one absolute ``t0_ns`` that every worker shares.

The parent does no measuring: it waits for every worker to be ready (imports and connections take a
moment), starts them together, and copies records to the sink as they arrive.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing as mp
import queue
import signal
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from tpsbench.client.client import Client
from tpsbench.client.transport import make_transport
from tpsbench.config.scenario import Level, Scenario
from tpsbench.core.record import RequestRecord, default_clock
from tpsbench.load.runner import run_level
from tpsbench.workload.prompts import build_prompts
from tpsbench.workload.tokenizer import load_tokenizer

START_LEAD_NS = 100_000_000  # workers start 100 ms after the go signal, so all see the same t0 in time
POLL_S = 0.05


@dataclass(frozen=True)
class WorkerJob:
    """Everything a worker needs, picklable. The API key travels in memory only, never to disk."""

    scenario: Scenario
    level_index: int
    base_url: str
    model: str
    api_key: str | None
    worker: int
    workers: int
    id_offset: int
    prompt_count: int
    nonce: int
    driver_host: str = ""  # workers on another host convert their clock to the driver's
    driver_clock_anchor: tuple[int, int] = (0, 0)  # (wall ns, monotonic ns) read together on the driver
    level: Level | None = None  # None: the scenario's fixed level ``level_index``; a sweep passes its own


class WorkerSide(Protocol):
    """How a worker talks to the driver (a multiprocessing queue here, a Ray queue on a cluster)."""

    def put(self, msg: tuple[Any, ...]) -> None: ...
    def start_ns(self) -> int | None: ...  # the shared start, in the driver's clock; None until "go"
    def stopped(self) -> bool: ...


class DriverSide(Protocol):
    def get(self, timeout_s: float) -> tuple[Any, ...] | None: ...
    def go(self, t0_ns: int) -> None: ...
    def stop(self) -> None: ...
    def all_exited(self) -> bool: ...
    def close(self) -> None: ...


def clock_offset_ns(job: WorkerJob) -> int:
    """driver clock = worker clock + offset. Zero on the driver's host (CLOCK_MONOTONIC is host-wide);
    elsewhere from wall clocks (NTP-synchronised, so good to about a millisecond: cross-host windows
    carry that error, per-request metrics do not, they are differences on one clock)."""
    if not job.driver_host or job.driver_host == socket.gethostname():
        return 0
    wall, mono = job.driver_clock_anchor
    return (wall - mono) - (time.time_ns() - default_clock())


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
    s = job.scenario
    level = job.level if job.level is not None else s.fixed_levels[job.level_index]
    offset = clock_offset_ns(job)
    # The driver refuses deferred tokenizers with workers, so this one counts in line.
    tokenizer = load_tokenizer(
        s.endpoint.tokenizer, base_url=job.base_url, model=job.model, api_key=job.api_key
    )
    prompts = build_prompts(
        s.workload,
        s.endpoint.api,
        job.prompt_count,
        stream_id=job.level_index,
        nonce=job.nonce,
        tokenizer=tokenizer,
    )
    transport = make_transport(s.endpoint.transport)
    client = Client(
        s.endpoint,
        job.base_url,
        job.model,
        transport,
        api_key=job.api_key,
        count_tokens=tokenizer.count if tokenizer is not None else None,
    )
    stop = asyncio.Event()

    async def watch_stop() -> None:
        while not side.stopped():
            await asyncio.sleep(POLL_S)
        stop.set()

    async def send(prompt: Any, **kw: Any) -> RequestRecord:
        return await client.send(prompt, workload=s.workload, **kw)

    def sink(record: RequestRecord) -> None:
        side.put(("record", shift_record(record, offset).to_dict()))

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
            send,
            level,
            job.level_index,
            prompts,
            sink=sink,
            seed=s.workload.seed,
            id_offset=job.id_offset,
            worker=job.worker,
            workers=job.workers,
            t0_ns=local_start,
            stop=stop,
        )
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
        await transport.aclose()
    side.put(("done", job.worker, result.self_check() | {"sent": result.sent, "worker": job.worker}))


def worker_entry(job: WorkerJob, side: WorkerSide) -> None:
    """Run a worker to its end in this process, reporting a failure instead of dying silently."""
    try:
        asyncio.run(run_worker(job, side))
    except BaseException as exc:
        side.put(("failed", job.worker, f"{type(exc).__name__}: {exc}"))
        raise


class _MpWorkerSide:
    def __init__(self, out: Any, go: Any, t0: Any, stop: Any) -> None:
        self.out, self.go, self.t0, self.stop = out, go, t0, stop

    def put(self, msg: tuple[Any, ...]) -> None:
        self.out.put(msg)

    def start_ns(self) -> int | None:
        return int(self.t0.value) if self.go.is_set() else None

    def stopped(self) -> bool:
        return bool(self.stop.is_set())


def _mp_main(job: WorkerJob, side: _MpWorkerSide) -> None:
    # Ctrl-C reaches every process of the terminal's group; the driver decides and sets ``stop``.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    worker_entry(job, side)


class ProcessPool:
    """Driver side of local worker processes (``spawn``: forking under a running event loop is unsafe)."""

    def __init__(self, jobs: list[WorkerJob]) -> None:
        ctx = mp.get_context("spawn")
        self.out = ctx.Queue()
        self.ev_go, self.ev_stop, self.t0 = ctx.Event(), ctx.Event(), ctx.Value("q", 0)
        side = _MpWorkerSide(self.out, self.ev_go, self.t0, self.ev_stop)
        self.procs = [ctx.Process(target=_mp_main, args=(job, side), daemon=True) for job in jobs]
        for p in self.procs:
            p.start()

    def get(self, timeout_s: float) -> tuple[Any, ...] | None:
        try:
            msg: tuple[Any, ...] = self.out.get(timeout=timeout_s)
            return msg
        except queue.Empty:
            return None

    def go(self, t0_ns: int) -> None:
        self.t0.value = t0_ns
        self.ev_go.set()

    def stop(self) -> None:
        self.ev_stop.set()

    def all_exited(self) -> bool:
        return all(not p.is_alive() for p in self.procs) and self.out.empty()

    def close(self) -> None:
        self.stop()
        deadline = time.monotonic() + 10
        for p in self.procs:
            p.join(max(0.1, deadline - time.monotonic()))
            if p.is_alive():
                p.terminate()


def drive(
    driver: DriverSide,
    n_workers: int,
    sink: Callable[[RequestRecord], None],
    stop_requested: Callable[[], bool],
) -> tuple[dict[str, Any], int]:
    """The driver loop (blocking; call it from a thread): start the workers together once all are ready,
    copy records to the sink as they arrive, stop them when asked. Returns the merged self-check and the
    number of requests sent."""
    ready, done = 0, 0
    failures: list[str] = []
    checks: list[dict[str, Any]] = []
    sent = 0
    try:
        while done + len(failures) < n_workers:
            if stop_requested():
                driver.stop()
            msg = driver.get(POLL_S)
            if msg is None:
                if driver.all_exited():
                    failures.append("a worker exited without reporting")
                    break
                continue
            kind, *payload = msg
            if kind == "record":
                sink(RequestRecord.from_dict(payload[0]))
            elif kind == "records":  # a batch (Ray workers send them so)
                for d in payload[0]:
                    sink(RequestRecord.from_dict(d))
            elif kind == "ready":
                ready += 1
                if ready == n_workers:
                    driver.go(default_clock() + START_LEAD_NS)
            elif kind == "done":
                done += 1
                checks.append(payload[1])
                sent += int(payload[1].get("sent", 0))
            elif kind == "failed":
                failures.append(f"worker {payload[0]}: {payload[1]}")
                driver.stop()
    finally:
        driver.close()
    if failures:
        raise RuntimeError("load workers failed: " + "; ".join(failures))
    return merge_self_checks(sorted(checks, key=lambda c: int(c.get("worker", 0)))), sent


def run_level_in_workers(
    jobs: list[WorkerJob],
    sink: Callable[[RequestRecord], None],
    stop_requested: Callable[[], bool],
    cluster: str | None = None,
) -> tuple[dict[str, Any], int]:
    """One level's shares in local processes, or as Ray tasks when ``cluster`` is given ("auto" or an
    address; needs ``pip install 'tpsbench[ray]'``)."""
    if cluster:
        from tpsbench.load.raypool import RayPool

        return drive(RayPool(jobs, cluster), len(jobs), sink, stop_requested)
    return drive(ProcessPool(jobs), len(jobs), sink, stop_requested)


def merge_self_checks(checks: list[dict[str, Any]]) -> dict[str, Any]:
    """One level's self-check from its workers': the worst lag and CPU (any worker behind makes the level
    client-bound), total CPU seconds, and each worker's own figures."""

    def worst(key: str) -> float | None:
        vals = [c[key] for c in checks if c.get(key) is not None]
        return max(vals) if vals else None

    return {
        "workers": len(checks),
        "loop_lag_p99_s": worst("loop_lag_p99_s"),
        "loop_lag_max_s": worst("loop_lag_max_s"),
        "loop_lag_samples": sum(c.get("loop_lag_samples", 0) for c in checks),
        "cpu_s": sum(c.get("cpu_s") or 0.0 for c in checks),
        "cpu_percent": worst("cpu_percent"),  # per worker: each has one core at most
        "interrupted": any(c.get("interrupted") for c in checks),
        "per_worker": checks,
    }
