"""Which cores the simulator and the client get when ``tpsbench run`` starts the reference endpoint itself.

Two busy event loops on shared cores steal each other's time slices: a chunk written or stamped a time
slice late is a late timestamp. So, where the host allows it (``os.sched_getaffinity`` lists at least two
CPUs), the simulator gets one core to itself and the client processes (the driver and any ``workers``,
which inherit the driver's affinity when they are spawned) share the others:

    >>> plan_cores([0, 1], workers=1)
    Placement(simulator=(1,), client=(0,), reason='simulator on CPU 1, client on CPU 0')
    >>> plan_cores([0], workers=1).simulator is None
    True

The plan is written to metadata.json (``placement``), and the driver's own affinity is restored when the
run ends.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

__all__ = ["Placement", "current", "plan_cores"]


@dataclass(frozen=True)
class Placement:
    """CPUs of the simulator and of the client processes; ``None``: left to the OS."""

    simulator: tuple[int, ...] | None
    client: tuple[int, ...] | None
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "simulator_cpus": list(self.simulator) if self.simulator else None,
            "client_cpus": list(self.client) if self.client else None,
            "pinned": self.simulator is not None,
            "reason": self.reason,
        }

    @contextlib.contextmanager
    def applied(self) -> Iterator[Placement]:
        """Pin this process (the driver; workers spawned inside inherit it) to the client CPUs."""
        global _current
        before = _affinity()
        if self.client and before is not None:
            os.sched_setaffinity(0, self.client)
        _current = self
        try:
            yield self
        finally:
            _current = None
            if self.client and before is not None:
                with contextlib.suppress(OSError):
                    os.sched_setaffinity(0, before)


_current: Placement | None = None


def current() -> Placement | None:
    """The placement in force (inside :meth:`Placement.applied`), for the run's metadata."""
    return _current


def _affinity() -> set[int] | None:
    try:
        return os.sched_getaffinity(0)
    except (AttributeError, OSError):  # not Linux
        return None


def plan_cores(cpus: Iterable[int] | None = None, *, workers: int = 1) -> Placement:
    """Plan the cores for the simulator and ``workers`` client processes over ``cpus`` (default: this
    process's affinity). The simulator takes the last CPU; with one CPU nothing is pinned."""
    available = sorted(cpus if cpus is not None else (_affinity() or ()))
    if len(available) < 2:
        usable = len(available) or "unknown"
        return Placement(None, None, f"{usable} CPU(s) usable: simulator and client share it")
    simulator, client = (available[-1],), tuple(available[:-1])
    names = ",".join(map(str, client))
    who = "client" if workers <= 1 else f"{workers} client workers"
    reason = f"simulator on CPU {simulator[0]}, {who} on CPU {names}"
    if workers > len(client):
        reason += f" ({workers} workers share {len(client)} core{'s' if len(client) > 1 else ''})"
    return Placement(simulator, client, reason)
