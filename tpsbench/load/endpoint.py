"""Where a run's requests go: the user's endpoint, or the bundled reference endpoint started for the run
(and how the load reaches it)."""

from __future__ import annotations

import contextlib
import os
import socket
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass

from tpsbench.config.scenario import Scenario
from tpsbench.load.placement import plan_cores

__all__ = ["Endpoint", "endpoint_for"]


@dataclass(frozen=True)
class Endpoint:
    """Where a run's requests go: ``base_url``, ``source`` ("reference" for the bundled reference endpoint
    started here, None for the user's) and the Unix socket the load connects through, if any."""

    base_url: str
    source: str | None = None
    unix_socket: str | None = None


@contextlib.contextmanager
def endpoint_for(scenario: Scenario) -> Iterator[Endpoint]:
    """The scenario's endpoint. With no base_url, start the bundled reference endpoint in its own process
    (so the simulator and the load generator never share an event loop), on a core of its own where the
    host has two or more (:mod:`.placement`), and stop it. The load reaches it through a Unix socket
    where the OS has them: TCP over loopback makes the sender pay the receiver's side of every packet
    too (~6.8 against ~2.2 us a small send here, both sides alike), which at 2,048 streams is a third of
    each core."""
    if scenario.endpoint.base_url:
        yield Endpoint(scenario.endpoint.base_url, None, scenario.endpoint.unix_socket)
        return
    from tpsbench.reference.serve import ReferenceServerProcess

    cores = plan_cores(workers=scenario.workers)
    with contextlib.ExitStack() as stack:
        unix_socket = None
        if hasattr(socket, "AF_UNIX") and os.name == "posix":
            folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="tpsbench-"))
            unix_socket = os.path.join(folder, "reference.sock")  # short: a socket path has 108 bytes
        server = ReferenceServerProcess(
            scenario.reference, seed=scenario.workload.seed, cpus=cores.simulator, unix_path=unix_socket
        )
        stack.enter_context(cores.applied())
        stack.enter_context(server)
        yield Endpoint(server.url, "reference", unix_socket)
