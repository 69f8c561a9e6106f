"""Multi-process load generation: one level split across worker processes, each with its own event loop.

One Python event loop saturates one core; past that it stamps chunks late and the numbers drift. With
``workers: N`` each process drives share k of the level (see :func:`tpsbench.runner.run_level`: closed-loop
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
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tpsbench.client import Client
from tpsbench.runner import run_level
from tpsbench.scenario import Scenario
from tpsbench.transport import make_transport
from tpsbench.types import RequestRecord, default_clock
from tpsbench.workload import build_prompts

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


def _worker_main(job: WorkerJob, out: Any, go: Any, t0: Any, stop: Any) -> None:
    # Ctrl-C reaches every process of the terminal's group; the parent decides and sets ``stop``.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        asyncio.run(_worker(job, out, go, t0, stop))
    except BaseException as exc:  # report, so the parent never waits for a dead worker
        out.put(("failed", job.worker, f"{type(exc).__name__}: {exc}"))
        raise


async def _worker(job: WorkerJob, out: Any, go: Any, t0: Any, stop_flag: Any) -> None:
    s = job.scenario
    level = s.load[job.level_index]
    prompts = build_prompts(
        s.workload, s.endpoint.api, job.prompt_count, stream_id=job.level_index, nonce=job.nonce
    )
    transport = make_transport(s.endpoint.transport)
    client = Client(s.endpoint, job.base_url, job.model, transport, api_key=job.api_key)
    stop = asyncio.Event()

    async def watch_stop() -> None:
        while not stop_flag.is_set():
            await asyncio.sleep(POLL_S)
        stop.set()

    async def send(prompt: Any, **kw: Any) -> RequestRecord:
        return await client.send(prompt, workload=s.workload, **kw)

    def sink(record: RequestRecord) -> None:
        out.put(("record", record.to_dict()))

    out.put(("ready", job.worker, None))
    while not go.wait(POLL_S):
        await asyncio.sleep(0)
    start_ns = int(t0.value)
    delay = (start_ns - default_clock()) / 1e9
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
            t0_ns=start_ns,
            stop=stop,
        )
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
        await transport.aclose()
    out.put(("done", job.worker, result.self_check() | {"sent": result.sent, "worker": job.worker}))


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


def run_level_in_workers(
    jobs: list[WorkerJob],
    sink: Callable[[RequestRecord], None],
    stop_requested: Callable[[], bool],
) -> tuple[dict[str, Any], int]:
    """Run one level's shares in worker processes (blocking; call it from a thread). Returns the merged
    self-check and the number of requests sent."""
    ctx = mp.get_context("spawn")  # fork under a running event loop and threads is unsafe
    out = ctx.Queue()
    go, stop, t0 = ctx.Event(), ctx.Event(), ctx.Value("q", 0)
    procs = [ctx.Process(target=_worker_main, args=(job, out, go, t0, stop), daemon=True) for job in jobs]
    for p in procs:
        p.start()
    ready, done = 0, 0
    failures: list[str] = []
    checks: list[dict[str, Any]] = []
    sent = 0
    try:
        while done + len(failures) < len(procs):
            if stop_requested():
                stop.set()
            try:
                kind, *payload = out.get(timeout=POLL_S)
            except queue.Empty:
                if all(not p.is_alive() for p in procs) and out.empty():
                    failures.append("a worker exited without reporting")
                    break
                continue
            if kind == "record":
                sink(RequestRecord.from_dict(payload[0]))
            elif kind == "ready":
                ready += 1
                if ready == len(procs):
                    t0.value = default_clock() + START_LEAD_NS
                    go.set()
            elif kind == "done":
                done += 1
                checks.append(payload[1])
                sent += int(payload[1].get("sent", 0))
            elif kind == "failed":
                failures.append(f"worker {payload[0]}: {payload[1]}")
                stop.set()
                go.set()
    finally:
        stop.set()
        go.set()
        deadline = time.monotonic() + 10
        for p in procs:
            p.join(max(0.1, deadline - time.monotonic()))
            if p.is_alive():
                p.terminate()
    if failures:
        raise RuntimeError("load workers failed: " + "; ".join(failures))
    return merge_self_checks(sorted(checks, key=lambda c: c.get("worker", 0))), sent
