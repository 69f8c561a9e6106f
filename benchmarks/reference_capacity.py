"""How many concurrent streams the reference endpoint holds on this machine, and at what CPU per chunk.

Starts the simulator in its own process pinned to ``--server-cpu`` and runs the client here, pinned to
``--client-cpu`` (as ``tpsbench run`` places them). For each N: opens N streams of ISL 1000 with
``ignore_eos`` and a huge ``max_tokens``, waits until every stream has its first token, resets ``/pace``,
lets them run ``--window-s`` seconds, reads ``/pace`` and both processes' CPU time, and closes the streams.

Clients (``--client``): ``minimal`` is an asyncio.Protocol that counts events and " tok" pieces in the raw
bytes (the cheapest possible reader, so what saturates first is the simulator); ``h11`` is tpsbench's
:class:`H11Transport` (its read path: stamp, h11 framing, keep the read), counting reads.

Reported per N: the engine's step lag (wake-up minus planned step end), the delivery lag (chunk written minus
planned step end), the simulator's busy fraction, the mean modelled step vs the prediction at ISL/OSL
1000/1000, the pace (modelled step time / wall time: 1.00 when the simulator keeps its schedule), the token
rate the engine committed vs the model's server TPS, the chunks/s the client received, and **chunks/s per
core** of each process (chunks/s / that process's CPU fraction: what one core of it would sustain), and
the pace warnings.

    python benchmarks/reference_capacity.py --levels 1,64,256,512,1024,2048 --window-s 4
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from typing import Any

from tpsbench.client.transport.h11 import H11Transport
from tpsbench.core.timeouts import Timeouts
from tpsbench.reference.api import MODEL_NAME
from tpsbench.reference.model import ReferenceModel
from tpsbench.reference.serve import ReferenceServerProcess
from tpsbench.reference.telemetry import pace_warnings


class _Counter:
    """Chunks (events or reads) and tokens received over all streams; set once every stream started."""

    def __init__(self, n: int) -> None:
        self.chunks = 0
        self.tokens = 0
        self.pending = n
        self.all_started = asyncio.Event()

    def started(self) -> None:
        self.pending -= 1
        if not self.pending:
            self.all_started.set()


class _MinimalStream(asyncio.Protocol):
    def __init__(self, counter: _Counter, request: bytes) -> None:
        self.counter, self.request, self.first = counter, request, True
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        transport.write(self.request)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        c = self.counter
        c.chunks += data.count(b"data: {")
        c.tokens += data.count(b" tok")
        if self.first and b" tok" in data:
            self.first = False
            c.started()


def _body(isl: int) -> bytes:
    body = {"model": MODEL_NAME, "prompt": "x" * (4 * isl), "max_tokens": 1_000_000, "ignore_eos": True}
    return json.dumps(body | {"stream": True}).encode()


async def _http(host: str, port: int, method: str, path: str) -> Any:
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(
        f"{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 0\r\n\r\n".encode()
    )
    raw = await reader.read()
    writer.close()
    return json.loads(raw.partition(b"\r\n\r\n")[2])


def _proc_cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class _External:
    """A server started elsewhere (``--url`` and ``--pid``: e.g. an older version, for a before/after)."""

    def __init__(self, url: str, pid: int) -> None:
        self.url, self.root, self.pid = url, url.removesuffix("/v1"), pid

    def __enter__(self) -> _External:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


PACE = "/pace"


async def _level(server: Any, client: str, n: int, isl: int, window_s: float) -> dict[str, Any]:
    host, port = "127.0.0.1", int(server.root.rsplit(":", 1)[1])
    pid = server.pid
    assert pid is not None
    loop = asyncio.get_running_loop()
    counter = _Counter(n)
    body = _body(isl)
    tasks: list[asyncio.Task[Any]] = []
    transports: list[asyncio.BaseTransport] = []
    h11: H11Transport | None = None
    t0 = time.perf_counter()
    if client == "minimal":
        request = (
            b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%b" % (len(body), body)
        )
        for _ in range(n):
            tr, _p = await loop.create_connection(lambda: _MinimalStream(counter, request), host, port)
            transports.append(tr)
    else:
        started: set[int] = set()

        def clock() -> int:  # called once per read, first thing: the read count
            counter.chunks += 1
            return time.perf_counter_ns()

        h11 = H11Transport(clock=clock)
        headers = {"Content-Type": "application/json"}
        timeouts = Timeouts(connect_s=60, first_token_s=600, request_s=3600)
        tasks = [
            asyncio.create_task(h11.stream(server.url + "/completions", headers, body, timeouts))
            for _ in range(n)
        ]

        async def watch() -> None:  # h11 hides the streams: "started" = enough reads for every stream
            while counter.chunks < 2 * n:
                await asyncio.sleep(0.05)
            counter.all_started.set()

        tasks.append(asyncio.create_task(watch()))
        del started
    await asyncio.wait_for(counter.all_started.wait(), 300)
    ramp_s = time.perf_counter() - t0
    await _http(host, port, "POST", PACE + "/reset")
    chunks0, tokens0 = counter.chunks, counter.tokens
    srv0, cli0, t1 = _proc_cpu_s(pid), time.process_time(), time.perf_counter()
    await asyncio.sleep(window_s)
    chunks, tokens = counter.chunks - chunks0, counter.tokens - tokens0
    wall = time.perf_counter() - t1
    srv_cpu, cli_cpu = (_proc_cpu_s(pid) - srv0) / wall, (time.process_time() - cli0) / wall
    pace = await _http(host, port, "GET", PACE)
    for tr in transports:
        tr.close()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    if h11 is not None:
        await h11.aclose()
    await asyncio.sleep(0.5)  # let the server see the disconnects
    rate = chunks / wall
    return {
        "ramp_s": ramp_s,
        "client_chunks_s": rate,
        "client_tps": tokens / wall if client == "minimal" else None,
        "server_cpu": srv_cpu,
        "client_cpu": cli_cpu,
        "server_chunks_s_per_core": rate / srv_cpu if srv_cpu > 0 else None,
        "client_chunks_s_per_core": rate / cli_cpu if cli_cpu > 0 else None,
        "pace": pace,
    }


def _ms(x: float | None) -> str:
    return "-" if x is None else f"{x * 1e3:.2f}"


def _k(x: float | None) -> str:
    return "-" if x is None else f"{x / 1e3:,.1f}k"


async def main_async(args: argparse.Namespace) -> list[dict[str, Any]]:
    model = ReferenceModel()
    rows: list[dict[str, Any]] = []
    os.sched_setaffinity(0, {args.client_cpu})
    server: Any = (
        _External(args.url, args.pid)
        if args.url
        else ReferenceServerProcess(seed=0, precise_s=args.precise_ms / 1e3, cpus={args.server_cpu})
    )
    with server:
        print(
            f"# client {args.client} on CPU {args.client_cpu}, simulator on CPU {args.server_cpu}; "
            f"load average at start {os.getloadavg()[0]:.2f}\n"
            f"{'N':>5} {'lag p50/p99/max ms':>21} {'deliver p50/p99 ms':>19} {'busy':>5} {'step ms':>13} "
            f"{'pace':>5} {'engine tps':>10} {'model tps':>9} {'chunks/s':>9} {'srv cpu':>7} {'cli cpu':>7} "
            f"{'srv/core':>8} {'cli/core':>8} {'ramp s':>6} warn",
            flush=True,
        )
        for n in args.levels:
            res = await _level(server, args.client, n, args.isl, args.window_s)
            eng, dl = res["pace"]["engine"], res["pace"]["delivery_lag_s"]
            pred = model.predict(n, args.isl, args.isl)  # context ~ isl + window tokens; close enough here
            lag = eng["lag_s"]
            pace = eng["model_time_s"] / eng["window_s"]
            warnings = pace_warnings(res["pace"])
            rows.append(res | {"n": n, "model_step_s": pred.step_s, "model_server_tps": pred.server_tps})
            print(
                f"{n:>5} {_ms(lag['p50']):>5}/{_ms(lag['p99']):>6}/{_ms(lag['max']):>7}  "
                f"{_ms(dl['p50']):>8}/{_ms(dl['p99']):>8} {eng['busy_fraction']:>5.2f} "
                f"{_ms(eng['step_s_mean']):>6}/{_ms(pred.step_s):>6} {pace:>5.2f} "
                f"{eng['completion_tps']:>10,.0f} {pred.server_tps:>9,.0f} {res['client_chunks_s']:>9,.0f} "
                f"{res['server_cpu']:>7.0%} {res['client_cpu']:>7.0%} "
                f"{_k(res['server_chunks_s_per_core']):>8} {_k(res['client_chunks_s_per_core']):>8} "
                f"{res['ramp_s']:>6.1f} {len(warnings)}",
                flush=True,
            )
    print(f"# load average at end {os.getloadavg()[0]:.2f}")
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--levels", default="1,64,256,512,1024,2048", type=lambda s: [int(x) for x in s.split(",")]
    )
    parser.add_argument("--window-s", type=float, default=4.0)
    parser.add_argument("--isl", type=int, default=1000)
    parser.add_argument("--client", choices=("minimal", "h11"), default="minimal")
    parser.add_argument("--server-cpu", type=int, default=1)
    parser.add_argument("--client-cpu", type=int, default=0)
    parser.add_argument("--precise-ms", type=float, default=1.0, help="the engine's precise-wait margin")
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio", help="the client's loop")
    parser.add_argument("--json", help="also write the rows here")
    parser.add_argument("--url", help="measure a server already running here (with --pid), not a new one")
    parser.add_argument("--pid", type=int, help="that server's process id (its CPU time is read)")
    parser.add_argument("--pace-path", default="/pace", help="its pace report (before the rewrite: /metrics)")
    args = parser.parse_args()
    global PACE
    PACE = args.pace_path
    if args.loop == "uvloop":
        import uvloop

        rows = uvloop.run(main_async(args))
    else:
        rows = asyncio.run(main_async(args))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
