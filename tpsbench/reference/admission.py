"""The reference endpoint's admission queue: new requests are parsed a bounded number per event-loop turn.

Why: a client that starts requests late and in bursts delivers hundreds of them (1,000-token prompts,
~4.3 KB of JSON each) within one engine step. Parsing one (HTTP head, JSON body, validation, the engine's
submit, the stream's encoder) costs tens of microseconds of CPU; done in the loop turn that read them, a
burst of 500 held the loop for 10-100 ms, and the engine's step woke that late (step lag p99 105 ms at
2,048 streams in ``tpsbench run``). Here a connection whose bytes hold a complete request (or a head to
read) joins a FIFO, and each loop turn parses at most ``per_turn`` of them before yielding: a due step
wakes after at most one such slice, and requests that wait are queued, as in a real server (their
server-side TTFT, which counts from the arrival of their last byte, grows: that is the honest answer).

The unit of work is one attempt: one request parsed and started (or answered, or refused), or a look at a
head that is not complete yet. A connection is queued at most once; one that answered at once (a GET)
and has more bytes goes back to the end of the queue.

The reads themselves are bounded too: asyncio's epoll selector hands the loop every ready socket at once
(a burst of 500 requests: 500 ``recv`` calls and callbacks in one turn, a few ms), so the serving process
runs on :func:`new_event_loop`, whose selector reports at most :data:`MAX_EVENTS` per turn. epoll is
level-triggered there and rotates its ready list, so the others come in the next turns, in order.
"""

from __future__ import annotations

import asyncio
import selectors
import time
from collections import deque
from typing import Any, Protocol

from tpsbench.reference.engine import Engine, LagStats

__all__ = [
    "MAX_EVENTS",
    "PER_TURN",
    "Admission",
    "Admittable",
    "BoundedEpollSelector",
    "TurnMonitor",
    "new_event_loop",
]

PER_TURN = 8  # ~25 us each on this host: ~0.2 ms a turn, well inside the engine's 1 ms precise-wait margin
MAX_EVENTS = 32  # ready sockets per turn: a read and its callback cost ~5 us


class Admittable(Protocol):
    """A connection with bytes to parse."""

    queued: bool  # in the admission queue now (set and cleared by :class:`Admission` only)

    def parse_next(self) -> None:
        """Parse at most one request from the bytes received, and start or answer it."""


class Admission:
    """FIFO of connections to parse, at most ``per_turn`` per event-loop turn (see the module doc)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, per_turn: int = PER_TURN) -> None:
        if per_turn < 1:
            raise ValueError(f"per_turn must be >= 1, got {per_turn}")
        self.loop = loop
        self.per_turn = per_turn
        self.turns = 0  # loop turns that parsed something (for tests and the curious)
        self._pending: deque[Admittable] = deque()
        self._scheduled = False

    def __len__(self) -> int:
        return len(self._pending)

    def add(self, conn: Admittable) -> None:
        """Queue ``conn`` (a no-op if it is queued already); parsed from the next loop turn on."""
        if conn.queued:
            return
        conn.queued = True
        self._pending.append(conn)
        if not self._scheduled:
            self._scheduled = True
            self.loop.call_soon(self.run)

    def run(self) -> None:
        """One turn's slice: parse up to ``per_turn`` queued connections, in order; the rest wait a turn."""
        self._scheduled = False
        pending = self._pending
        self.turns += 1
        for _ in range(min(self.per_turn, len(pending))):
            conn = pending.popleft()
            conn.queued = False
            conn.parse_next()  # may queue it again (answered at once, more bytes): at the end
        if pending and not self._scheduled:
            self._scheduled = True
            self.loop.call_soon(self.run)


class _CappedEpoll:
    """An ``select.epoll`` whose ``poll`` returns at most ``cap`` events."""

    def __init__(self, epoll: Any, cap: int) -> None:
        self._epoll = epoll
        self._cap = cap

    def poll(self, timeout: float = -1, maxevents: int = -1) -> list[tuple[int, int]]:
        cap = self._cap if maxevents <= 0 else min(maxevents, self._cap)
        events: list[tuple[int, int]] = self._epoll.poll(timeout, cap)
        return events

    def __getattr__(self, name: str) -> Any:  # register, modify, unregister, fileno, close
        return getattr(self._epoll, name)


class TurnMonitor:
    """The thread CPU time of each event-loop turn (from one ``select`` to the next), less the engine's step
    commits in it: what the HTTP side (reads, admission, accepts, GETs) held the loop for at a time.

    A step that comes due during a turn wakes after it, so its maximum bounds the step lag this work can
    cause on a core of its own; and, CPU time, it holds while other processes share the host (wall-clock
    lag does not). ``/pace`` reports it as ``loop_turn_cpu_s``."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.turns = LagStats()
        self._start: float | None = None
        self._commits = 0.0

    def select_called(self) -> None:
        if self._start is not None:
            cpu = time.thread_time() - self._start - (self.engine.work_cpu - self._commits)
            self.turns.add(cpu if cpu > 0.0 else 0.0)

    def select_returned(self) -> None:
        self._start = time.thread_time()
        self._commits = self.engine.work_cpu

    def reset(self) -> None:
        """A new window; the turn in progress (resetting: it reports the window before) is not in it."""
        self.turns = LagStats()
        self._start = None


class BoundedEpollSelector(selectors.EpollSelector):
    """asyncio's epoll selector, reporting at most ``max_events`` ready files per ``select``; with a
    :attr:`monitor`, it times each loop turn."""

    def __init__(self, max_events: int = MAX_EVENTS) -> None:
        if max_events < 1:
            raise ValueError(f"max_events must be >= 1, got {max_events}")
        super().__init__()
        epoll: Any = self._selector  # type: ignore[has-type]  # the stdlib's, set by its __init__
        self._selector = _CappedEpoll(epoll, max_events)
        self.monitor: TurnMonitor | None = None

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        monitor = self.monitor
        if monitor is None:
            return super().select(timeout)
        monitor.select_called()
        ready = super().select(timeout)
        monitor.select_returned()
        return ready


def new_event_loop(max_events: int = MAX_EVENTS) -> asyncio.AbstractEventLoop:
    """The serving process's loop: asyncio's, on a :class:`BoundedEpollSelector` where epoll exists."""
    if not hasattr(selectors, "EpollSelector"):
        return asyncio.new_event_loop()
    return asyncio.SelectorEventLoop(BoundedEpollSelector(max_events))
