"""The reference endpoint as a process: ``serve`` (``tpsbench serve``), its command line, and
:class:`ReferenceServerProcess`, which runs it in a subprocess of its own (its own event loop and, where
the host has the cores, its own CPU: see ``cpus``).

    python -m tpsbench.reference.serve --port 0 --param draft_len=0   # prints http://127.0.0.1:PORT/v1
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterable, Mapping
from typing import Any

from tpsbench.core import collector
from tpsbench.core.serverprocess import ServerProcess
from tpsbench.reference.admission import MAX_EVENTS, PER_TURN, new_event_loop
from tpsbench.reference.api import MODEL_NAME
from tpsbench.reference.model import DEFAULT_PARAMS, ModelParams
from tpsbench.reference.server import ACCEPT_PER_TURN, start_server

__all__ = ["ReferenceServerProcess", "main", "parse_param_overrides", "serve"]


def parse_param_overrides(items: Iterable[str]) -> dict[str, str]:
    """``["draft_len=0", "accept_probs=0.8,0.7,0.6"]`` -> a dict for :meth:`ModelParams.with_overrides`."""
    out: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise ValueError(f"expected NAME=VALUE, got {item!r}")
        out[name.strip()] = value.strip()
    return out


def _param_args(params: ModelParams | Mapping[str, Any]) -> list[str]:
    resolved = params if isinstance(params, ModelParams) else DEFAULT_PARAMS.with_overrides(params)
    args: list[str] = []
    for name, value in resolved.overrides().items():
        text = ",".join(repr(v) for v in value) if isinstance(value, tuple) else repr(value)
        args += ["--param", f"{name}={text}"]
    return args


async def _serve_until_stopped(
    host: str,
    port: int,
    params: ModelParams,
    seed: int,
    precise_s: float,
    exit_on_stdin_eof: bool = False,
    per_turn: int = PER_TURN,
    accept_per_turn: int = ACCEPT_PER_TURN,
    unix_path: str | None = None,
) -> None:
    handle = await start_server(
        host,
        port,
        params,
        seed,
        precise_s=precise_s,
        per_turn=per_turn,
        accept_per_turn=accept_per_turn,
        unix_path=unix_path,
    )
    collector.quiet()  # a full GC pass mid-step would make the engine late (core/collector.py)
    print(handle.url, flush=True)  # the first stdout line is the contract with ServerProcess
    print(
        f"tpsbench reference endpoint ({MODEL_NAME}) on {handle.url}; Prometheus metrics at "
        f"{handle.root}/metrics, pace report at {handle.root}/pace"
        + (f"; also on the Unix socket {unix_path}" if unix_path else ""),
        file=sys.stderr,
        flush=True,
    )
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stopped.set)
    if exit_on_stdin_eof:  # the parent holds our stdin: EOF means it is gone

        def watch_stdin() -> None:
            with contextlib.suppress(OSError, ValueError):
                while sys.stdin.buffer.read(4096):
                    pass
            loop.call_soon_threadsafe(stopped.set)

        threading.Thread(target=watch_stdin, name="stdin-watch", daemon=True).start()
    try:
        await stopped.wait()
    finally:
        await handle.stop()


def serve(
    host: str = "127.0.0.1",
    port: int = 8000,
    params: ModelParams = DEFAULT_PARAMS,
    seed: int = 0,
    *,
    precise_s: float = 0.001,
    exit_on_stdin_eof: bool = False,
    per_turn: int = PER_TURN,
    max_events: int = MAX_EVENTS,
    accept_per_turn: int = ACCEPT_PER_TURN,
    unix_path: str | None = None,
) -> None:
    """Serve until SIGINT / SIGTERM (``tpsbench serve``). Prints the base URL on stdout first.
    ``per_turn``, ``max_events``, ``accept_per_turn``: the work the loop takes on per turn
    (:mod:`.admission`); ``unix_path``: also serve on this Unix socket."""
    _raise_fd_limit()
    with asyncio.Runner(loop_factory=lambda: new_event_loop(max_events)) as runner:
        runner.run(
            _serve_until_stopped(
                host, port, params, seed, precise_s, exit_on_stdin_eof, per_turn, accept_per_turn, unix_path
            )
        )


def _raise_fd_limit() -> None:
    """Thousands of streams need thousands of sockets: lift the soft open-files limit to the hard one."""
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft != resource.RLIM_INFINITY and (hard == resource.RLIM_INFINITY or soft < hard):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ImportError, ValueError, OSError):
        pass


class ReferenceServerProcess(ServerProcess):
    """The reference endpoint in a subprocess of its own (never the load generator's loop).

        with ReferenceServerProcess(params={"draft_len": 0}, seed=0, cpus={1}) as server:
            print(server.url)   # http://127.0.0.1:PORT/v1

    ``cpus``: pin the child to these CPUs (``os.sched_setaffinity``), so that it and the client never
    share a core's time slices. ``unix_path``: it also serves on this Unix socket (ready, like the TCP
    port, once the URL is printed). The child watches its stdin and exits when that closes, so it cannot
    outlive its parent. ``extra_args``: more of its command line (e.g. ``["--admit-per-turn", "4"]``).
    """

    name = "reference server"

    def __init__(
        self,
        params: ModelParams | Mapping[str, Any] = DEFAULT_PARAMS,
        *,
        seed: int = 0,
        host: str = "127.0.0.1",
        port: int = 0,
        precise_s: float = 0.001,
        cpus: Iterable[int] | None = None,
        startup_timeout_s: float = 30.0,
        extra_args: Iterable[str] = (),
        unix_path: str | None = None,
    ) -> None:
        self.cpus = sorted(cpus) if cpus is not None else None
        self.unix_path = unix_path
        pin = ["--cpus", ",".join(map(str, self.cpus))] if self.cpus else []
        pin += ["--unix", unix_path] if unix_path else []
        super().__init__(
            [
                "-m", "tpsbench.reference.serve", "--host", host, "--port", str(port), "--seed", str(seed),
                "--precise-ms", repr(precise_s * 1e3), "--exit-on-stdin-eof", *pin, *_param_args(params),
                *extra_args,
            ],
            startup_timeout_s=startup_timeout_s,
        )  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tpsbench.reference.serve", description="The bundled reference endpoint."
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback only)")
    parser.add_argument("--port", type=int, default=8000, help="port; 0 picks a free one")
    parser.add_argument("--seed", type=int, default=0, help="seed of acceptance and output-length draws")
    parser.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override a model parameter (repeatable), e.g. draft_len=0",
    )
    parser.add_argument(
        "--precise-ms",
        type=float,
        default=1.0,
        help="last part of each step wait slept with a precise timer instead of epoll (1 ms granularity)",
    )
    parser.add_argument("--cpus", help="pin this process to these CPUs, e.g. 1 or 0,1")
    parser.add_argument(
        "--admit-per-turn", type=int, default=PER_TURN, help="requests parsed per event-loop turn"
    )
    parser.add_argument(
        "--max-events", type=int, default=MAX_EVENTS, help="ready sockets handled per event-loop turn"
    )
    parser.add_argument(
        "--accept-per-turn", type=int, default=ACCEPT_PER_TURN, help="connections accepted per loop turn"
    )
    parser.add_argument("--unix", metavar="PATH", help="also serve on this Unix socket")
    parser.add_argument(
        "--exit-on-stdin-eof",
        action="store_true",
        help="stop when stdin closes (set by ReferenceServerProcess: dies with its parent)",
    )
    args = parser.parse_args(argv)
    try:
        params = DEFAULT_PARAMS.with_overrides(parse_param_overrides(args.param))
        if args.cpus:
            os.sched_setaffinity(0, {int(c) for c in args.cpus.split(",")})
    except (ValueError, OSError) as exc:
        parser.error(str(exc))
    serve(
        args.host,
        args.port,
        params,
        args.seed,
        precise_s=args.precise_ms / 1e3,
        exit_on_stdin_eof=args.exit_on_stdin_eof,
        per_turn=args.admit_per_turn,
        max_events=args.max_events,
        accept_per_turn=args.accept_per_turn,
        unix_path=args.unix,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
