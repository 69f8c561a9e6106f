"""Load workers beyond one machine, on Ray (``pip install 'tpsbench[ray]'``).

The same worker as local processes (:func:`tpsbench.load.worker.run_worker`) runs as a Ray task; the driver
gathers its records through a Ray queue. ``cluster`` is ``"local"`` (start a private Ray instance on
127.0.0.1, as the tests do), ``"auto"`` (join the running cluster) or a cluster address.

Records travel in batches (every ``FLUSH_S``) from a thread of the worker, so the worker's event loop,
which stamps chunk arrivals, never blocks on a Ray call. Workers on other hosts convert their times onto
the driver's clock (see :func:`tpsbench.load.worker.clock_offset_ns`).
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any

from tpsbench.load.worker import WorkerJob, worker_entry

FLUSH_S = 0.1


def _ray() -> Any:
    try:
        import ray
    except ImportError as exc:  # pragma: no cover - depends on the extra
        raise RuntimeError("--cluster needs Ray: pip install 'tpsbench[ray]'") from exc
    return ray


class _RayWorkerSide:
    """Worker side: buffer records, flush and poll the coordinator from a thread."""

    def __init__(self, queue: Any, coordinator: Any) -> None:
        self.queue, self.coordinator = queue, coordinator
        self._buffer: list[dict[str, Any]] = []
        self._notes: list[tuple[Any, ...]] = []  # small messages sent from the thread too (measured_done)
        self._lock = threading.Lock()
        self._start: int | None = None
        self._stopped = False
        self._cooled = False
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._pump, daemon=True)
        self._thread.start()

    def _flush(self) -> None:
        with self._lock:
            batch, self._buffer = self._buffer, []
            notes, self._notes = self._notes, []
        if batch:
            self.queue.put(("records", batch))
        for note in notes:
            self.queue.put(note)

    def _pump(self) -> None:
        ray = _ray()
        while not self._done.wait(FLUSH_S):
            self._flush()
            self._start, self._stopped, self._cooled = ray.get(self.coordinator.state.remote())
        self._flush()

    def put(self, msg: tuple[Any, ...]) -> None:
        if msg[0] == "record":
            with self._lock:
                self._buffer.append(msg[1])
            return
        if msg[0] == "measured_done":
            with self._lock:
                self._notes.append(msg)
            return
        if msg[0] in ("done", "failed"):
            self._done.set()
            self._thread.join()
        self.queue.put(msg)

    def start_ns(self) -> int | None:
        return self._start

    def stopped(self) -> bool:
        return self._stopped

    def cooldown_over(self) -> bool:
        return self._cooled


def _ray_task(job: WorkerJob, queue: Any, coordinator: Any) -> None:
    worker_entry(job, _RayWorkerSide(queue, coordinator))


class _Coordinator:
    def __init__(self) -> None:
        self.t0: int | None = None
        self.stopped = False
        self.cooled = False

    def go(self, t0: int) -> None:
        self.t0 = t0

    def stop(self) -> None:
        self.stopped = True

    def end_cooldown(self) -> None:
        self.cooled = True

    def state(self) -> tuple[int | None, bool, bool]:
        return self.t0, self.stopped, self.cooled


class RayPool:
    """Driver side: one Ray task per worker share, a queue for records, an actor for start and stop."""

    def __init__(self, jobs: list[WorkerJob], cluster: str) -> None:
        ray = _ray()
        from ray.util.queue import Empty, Queue

        self._ray, self._empty = ray, Empty
        self._owns_ray = not ray.is_initialized()
        if self._owns_ray:
            if cluster == "local":
                ray.init(
                    num_cpus=max(2, len(jobs)),
                    include_dashboard=False,
                    log_to_driver=False,
                    _node_ip_address="127.0.0.1",
                )
            else:
                ray.init(address=cluster, log_to_driver=False)
        self.queue = Queue()
        self.coordinator = ray.remote(_Coordinator).remote()
        task = ray.remote(num_cpus=1)(_ray_task)
        self.refs = [task.remote(job, self.queue, self.coordinator) for job in jobs]

    def get(self, timeout_s: float) -> tuple[Any, ...] | None:
        try:
            msg: tuple[Any, ...] = self.queue.get(timeout=timeout_s)
            return msg
        except self._empty:
            return None

    def go(self, t0_ns: int) -> None:
        self._ray.get(self.coordinator.go.remote(t0_ns))

    def stop(self) -> None:
        self._ray.get(self.coordinator.stop.remote())

    def end_cooldown(self) -> None:
        self._ray.get(self.coordinator.end_cooldown.remote())

    def exited(self) -> int:
        done, _ = self._ray.wait(self.refs, num_returns=len(self.refs), timeout=0)
        return len(done)

    def close(self) -> None:
        self.stop()
        # a failed task was reported through the queue already
        with contextlib.suppress(Exception):
            self._ray.get(self.refs, timeout=30)
        if self._owns_ray:
            self._ray.shutdown()
