"""The driver side of multi-process load: pools of workers (:mod:`.worker`) and the loop that drives them.

One Python event loop saturates one core; past that it stamps chunks late and the numbers drift. With
``workers: N`` a level is split into N shares (:class:`~.worker.WorkerJob`), each driven by a worker in a
process of its own; the records stream back to the driver, which alone writes the run directory. Two pools
start the same worker: :class:`ProcessPool` (local processes) and :class:`~.raypool.RayPool` (Ray tasks,
``--cluster``); :func:`drive` runs either.

The driver does no measuring: it waits for every worker to be ready (imports and connections take a
moment), starts them together at one absolute ``t0_ns`` (an open-loop schedule starts there in every
worker), copies records to the sink as they arrive, and ends a level's cooldown once every worker's
measured requests have ended. It also says when the level's measured window opens (the first worker's
first measured request starts) and closes (every worker's measured requests have ended).
"""

from __future__ import annotations

import multiprocessing as mp
import queue
import signal
import time
from collections.abc import Callable
from typing import Any, Protocol

from tpsbench.core.record import Reply, RequestRecord, default_clock
from tpsbench.load.worker import POLL_S, WorkerJob, WorkerSide, worker_entry

__all__ = ["DriverSide", "ProcessPool", "WindowHooks", "drive", "merge_self_checks", "run_level_in_workers"]

START_LEAD_NS = 100_000_000  # workers start 100 ms after the go signal, so all see the same t0 in time


class WindowHooks(Protocol):
    """Told when a level's measured window opens and closes (:class:`.pace_window.PaceWindow`)."""

    def opened(self) -> None: ...
    def closed(self) -> None: ...


class DriverSide(Protocol):
    """A pool as the driver sees it."""

    def get(self, timeout_s: float) -> tuple[Any, ...] | None: ...
    def go(self, t0_ns: int) -> None: ...
    def stop(self) -> None: ...
    def end_cooldown(self) -> None: ...
    def exited(self) -> int: ...  # workers whose process (or task) has ended
    def close(self) -> None: ...


class _MpWorkerSide:
    def __init__(self, out: Any, go: Any, t0: Any, stop: Any, cool: Any) -> None:
        self.out, self.go, self.t0, self.stop, self.cool = out, go, t0, stop, cool

    def put(self, msg: tuple[Any, ...]) -> None:
        self.out.put(msg)

    def start_ns(self) -> int | None:
        return int(self.t0.value) if self.go.is_set() else None

    def stopped(self) -> bool:
        return bool(self.stop.is_set())

    def cooldown_over(self) -> bool:
        return bool(self.cool.is_set())


def _mp_main(job: WorkerJob, side: WorkerSide) -> None:
    # Ctrl-C reaches every process of the terminal's group; the driver decides and sets ``stop``.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    worker_entry(job, side)


class ProcessPool:
    """Driver side of local worker processes (``spawn``: forking under a running event loop is unsafe)."""

    def __init__(self, jobs: list[WorkerJob]) -> None:
        ctx = mp.get_context("spawn")
        self.out = ctx.Queue()
        self.ev_go, self.ev_stop, self.t0 = ctx.Event(), ctx.Event(), ctx.Value("q", 0)
        self.ev_cool = ctx.Event()
        side = _MpWorkerSide(self.out, self.ev_go, self.t0, self.ev_stop, self.ev_cool)
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

    def end_cooldown(self) -> None:
        self.ev_cool.set()

    def exited(self) -> int:
        return sum(not p.is_alive() for p in self.procs)

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
    sink: Callable[[Reply], None],
    stop_requested: Callable[[], bool],
    window: WindowHooks | None = None,
) -> tuple[dict[str, Any], int]:
    """The driver loop (blocking; call it from a thread): start the workers together once all are ready,
    copy records to the sink as they arrive, end the cooldown once every worker has reported its measured
    requests ended (``measured_done``, or ``done``), stop them when asked. ``window``, called from this
    thread: ``opened()`` at the first ``measured_started``, ``closed()`` once every worker's measured
    requests have ended. Returns the merged self-check and the number of requests sent."""
    ready, done = 0, 0
    started = False
    measured: set[int] = set()  # workers whose measured requests have all ended

    def measured_ended(worker: int) -> None:
        all_before = len(measured) == n_workers
        measured.add(worker)
        if len(measured) == n_workers and not all_before:
            driver.end_cooldown()
            if window is not None:
                window.closed()

    failures: list[str] = []
    checks: list[dict[str, Any]] = []
    sent = 0
    try:
        while done + len(failures) < n_workers:
            if stop_requested():
                driver.stop()
            gone = driver.exited()  # before the poll: what a worker put before it ended arrives in it
            msg = driver.get(POLL_S)
            if msg is None:
                if (lost := gone - done - len(failures)) > 0:
                    # the others stop too: with cooldown they would wait for the lost worker's word
                    failures += ["a worker exited without reporting"] * lost
                    driver.stop()
                continue
            kind, *payload = msg
            if kind == "record":
                sink(Reply(RequestRecord.from_dict(payload[0])))
            elif kind == "records":  # a batch (Ray workers send them so)
                for d in payload[0]:
                    sink(Reply(RequestRecord.from_dict(d)))
            elif kind == "ready":
                ready += 1
                if ready == n_workers:
                    driver.go(default_clock() + START_LEAD_NS)
            elif kind == "measured_started":
                if not started and window is not None:
                    window.opened()
                started = True
            elif kind == "measured_done":
                measured_ended(int(payload[0]))
            elif kind == "done":
                measured_ended(int(payload[0]))
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
    sink: Callable[[Reply], None],
    stop_requested: Callable[[], bool],
    cluster: str | None = None,
    window: WindowHooks | None = None,
) -> tuple[dict[str, Any], int]:
    """One level's shares in local processes, or as Ray tasks when ``cluster`` is given ("auto" or an
    address; needs ``pip install 'tpsbench[ray]'``)."""
    if cluster:
        from tpsbench.load.raypool import RayPool

        return drive(RayPool(jobs, cluster), len(jobs), sink, stop_requested, window)
    return drive(ProcessPool(jobs), len(jobs), sink, stop_requested, window)


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
