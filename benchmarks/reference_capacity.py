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

Burst mode (``--burst B``): what a client that starts requests late and in bursts does to the engine. Of a
level's N streams, N - B are the long ones above; B more connections are opened and kept alive idle, and
every ``--burst-every-s`` all B send a streamed chat request at once (in one loop turn, ~4.3 KB bodies with
a 1,000-token prompt as ``tpsbench run`` sends them, ``max_tokens`` ``--burst-tokens``), so the engine holds
N streams at the peak of each burst. Reported besides: bursts fired, the burst requests' client-side TTFT
(write to first token, p50/p99) and the server-side TTFT of the window (only burst requests start in it).

Where the simulator times its loop turns (``/pace`` ``loop_turn_cpu_s``), their thread CPU less the step
commits is reported too: the longest is what HTTP-side work can add to a step's lag on a core of its own, and
CPU time holds while other jobs share the host (wall-clock lag does not). ``--server-args`` passes its
per-turn limits, e.g. ``"--admit-per-turn 100000 --max-events 100000 --accept-per-turn 4096"``: the server
as it was before they existed.

``--unix``: the streams go through the simulator's Unix socket, as ``tpsbench run`` sends them (TCP
loopback costs both sides the kernel's TCP stack per chunk: ``benchmarks/loopback_cost.py``).

    python benchmarks/reference_capacity.py --levels 1,64,256,512,1024,2048 --window-s 4
    python benchmarks/reference_capacity.py --levels 2048 --window-s 10 --burst 512 --burst-every-s 2
    python benchmarks/reference_capacity.py --levels 1024,2048 --client h11 --unix
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import sys
import tempfile
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


class _BurstStream(asyncio.Protocol):
    """One idle keep-alive connection that sends a streamed request when fired and reads it to its end."""

    def __init__(self, request: bytes, ttfts: list[float]) -> None:
        self.request, self.ttfts = request, ttfts
        self.transport: asyncio.Transport | None = None
        self.busy = True  # until the warm-up answer came
        self.fired = 0.0
        self.first = False
        self.ready = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        transport.write(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")  # type: ignore[attr-defined]

    def fire(self) -> bool:
        if self.busy or self.transport is None:
            return False
        self.busy, self.first, self.fired = True, True, time.perf_counter()
        self.transport.write(self.request)
        return True

    def data_received(self, data: bytes) -> None:
        if not self.ready.done():  # the warm-up answer
            self.busy = False
            self.ready.set_result(None)
            return
        if self.first and b" tok" in data:
            self.first = False
            self.ttfts.append(time.perf_counter() - self.fired)
        if data.endswith(b"\r\n0\r\n\r\n"):  # the chunked body's end: the connection is free again
            self.busy = False


def _chat_request(isl: int, max_tokens: int) -> bytes:
    """A streamed chat request as ``tpsbench run`` sends it (prompt of " xyz" pieces, include_usage)."""
    letters = [chr(97 + i) for i in range(26)]
    text = "".join(f" {letters[i % 26]}{letters[i // 26 % 26]}{letters[i // 676 % 26]}" for i in range(isl))
    body = json.dumps(
        {
            "model": MODEL_NAME,
            "messages": [{"role": "user", "content": text}],
            "stream": True,
            "stream_options": {"include_usage": True},
            "max_tokens": max_tokens,
            "ignore_eos": True,
        }
    ).encode()
    return (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: tpsbench\r\n"
        b"Content-Type: application/json\r\nX-Request-Id: 00000000-0000-4000-8000-000000000000\r\n"
        b"Content-Length: %d\r\n\r\n%b" % (len(body), body)
    )


async def _bursts(streams: list[_BurstStream], every_s: float, window_s: float, fired: list[int]) -> None:
    """Fire every idle burst connection at once, every ``every_s``, for ``window_s``."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    k = 0
    while (due := start + k * every_s) < start + window_s:
        await asyncio.sleep(max(0.0, due - loop.time()))
        fired.append(sum(s.fire() for s in streams))
        k += 1


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


async def _level(
    server: Any, client: str, n: int, isl: int, window_s: float, args: argparse.Namespace
) -> dict[str, Any]:
    host, port = "127.0.0.1", int(server.root.rsplit(":", 1)[1])
    pid = server.pid
    assert pid is not None
    loop = asyncio.get_running_loop()
    burst = args.burst
    if burst and not 0 < burst < n:
        raise SystemExit(f"--burst {burst} needs levels above it (got {n})")
    n_long = n - burst
    counter = _Counter(n_long)
    body = _body(isl)
    burst_streams: list[_BurstStream] = []
    burst_ttfts: list[float] = []
    fired: list[int] = []
    tasks: list[asyncio.Task[Any]] = []
    transports: list[asyncio.BaseTransport] = []
    h11: H11Transport | None = None
    t0 = time.perf_counter()
    if client == "minimal":
        request = (
            b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%b" % (len(body), body)
        )
        for _ in range(n_long):
            tr, _p = await _connect(loop, lambda: _MinimalStream(counter, request), host, port, args.unix)
            transports.append(tr)
    else:
        started: set[int] = set()

        def clock() -> int:  # called once per read, first thing: the read count
            counter.chunks += 1
            return time.perf_counter_ns()

        h11 = H11Transport(clock=clock, unix_socket=args.unix)
        headers = {"Content-Type": "application/json"}
        timeouts = Timeouts(connect_s=60, first_token_s=600, request_s=3600)
        tasks = [
            asyncio.create_task(h11.stream(server.url + "/completions", headers, body, timeouts))
            for _ in range(n_long)
        ]

        async def watch() -> None:  # h11 hides the streams: "started" = enough reads for every stream
            while counter.chunks < 2 * n_long:
                await asyncio.sleep(0.05)
            counter.all_started.set()

        tasks.append(asyncio.create_task(watch()))
        del started
    await asyncio.wait_for(counter.all_started.wait(), 300)
    if burst:
        burst_request = _chat_request(isl, args.burst_tokens)
        for _ in range(burst):
            btr, proto = await _connect(
                loop, lambda: _BurstStream(burst_request, burst_ttfts), host, port, args.unix
            )
            transports.append(btr)
            burst_streams.append(proto)
        await asyncio.wait_for(asyncio.gather(*(s.ready for s in burst_streams)), 60)
    ramp_s = time.perf_counter() - t0
    await _http(host, port, "POST", PACE + "/reset")
    chunks0, tokens0 = counter.chunks, counter.tokens
    srv0, cli0, t1 = _proc_cpu_s(pid), time.process_time(), time.perf_counter()
    if burst:
        await _bursts(burst_streams, args.burst_every_s, window_s, fired)
        await asyncio.sleep(max(0.0, t1 + window_s - time.perf_counter()))
    else:
        await asyncio.sleep(window_s)
    chunks, tokens = counter.chunks - chunks0, counter.tokens - tokens0
    wall = time.perf_counter() - t1
    srv_cpu, cli_cpu = (_proc_cpu_s(pid) - srv0) / wall, (time.process_time() - cli0) / wall
    pace = await _http(host, port, "GET", PACE)
    for open_transport in transports:
        open_transport.close()
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
        "bursts": fired,
        "burst_ttft_s": sorted(burst_ttfts),
    }


async def _connect(
    loop: asyncio.AbstractEventLoop, factory: Any, host: str, port: int, unix: str | None
) -> tuple[asyncio.BaseTransport, Any]:
    """A client connection over TCP, or through the simulator's Unix socket (``--unix``)."""
    if unix:
        return await loop.create_unix_connection(factory, unix)
    return await loop.create_connection(factory, host, port)


def _ms(x: float | None) -> str:
    return "-" if x is None else f"{x * 1e3:.2f}"


def _nearest(ordered: list[float], q: float) -> float | None:
    """Nearest-rank quantile of sorted values (None when there are none)."""
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)] if ordered else None


def _k(x: float | None) -> str:
    return "-" if x is None else f"{x / 1e3:,.1f}k"


async def main_async(args: argparse.Namespace) -> list[dict[str, Any]]:
    model = ReferenceModel()
    rows: list[dict[str, Any]] = []
    os.sched_setaffinity(0, {args.client_cpu})
    server: Any = (
        _External(args.url, args.pid)
        if args.url
        else ReferenceServerProcess(
            seed=0,
            precise_s=args.precise_ms / 1e3,
            cpus={args.server_cpu},
            extra_args=args.server_args.split(),
            unix_path=args.unix,
        )
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
            res = await _level(server, args.client, n, args.isl, args.window_s, args)
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
            turns = res["pace"].get("loop_turn_cpu_s")
            if turns:
                print(
                    f"      loop turns (thread CPU less step commits): p50/p99/max {_ms(turns['p50'])}/"
                    f"{_ms(turns['p99'])}/{_ms(turns['max'])} ms over {turns['count']:,}",
                    flush=True,
                )
            if args.burst:
                ttft, srv = res["burst_ttft_s"], res["pace"]["server_ttft_s"]
                print(
                    f"      bursts of {args.burst} (fired {res['bursts']}): client TTFT p50/p99 "
                    f"{_ms(_nearest(ttft, 0.5))}/{_ms(_nearest(ttft, 0.99))} ms over {len(ttft)}; "
                    f"server TTFT p50/p99 {_ms(srv['p50'])}/{_ms(srv['p99'])} ms; "
                    f"step work p99 {_ms(eng['work_s']['p99'])} ms",
                    flush=True,
                )
            for w in warnings:
                print(f"      warning: {w}", flush=True)
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
    parser.add_argument(
        "--burst", type=int, default=0, help="of each level's streams, this many come in bursts"
    )
    parser.add_argument("--burst-every-s", type=float, default=1.0, help="time between two bursts")
    parser.add_argument("--burst-tokens", type=int, default=32, help="max_tokens of a burst request")
    parser.add_argument(
        "--server-args",
        default="",
        help='more of the simulator\'s command line, e.g. "--admit-per-turn 100000" (its per-turn limits)',
    )
    parser.add_argument("--json", help="also write the rows here")
    parser.add_argument("--url", help="measure a server already running here (with --pid), not a new one")
    parser.add_argument("--pid", type=int, help="that server's process id (its CPU time is read)")
    parser.add_argument("--pace-path", default="/pace", help="its pace report (before the rewrite: /metrics)")
    parser.add_argument(
        "--unix",
        action="store_true",
        help="streams go through the simulator's Unix socket, as in tpsbench run (default: TCP loopback)",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tpsbench-capacity-") as folder:
        args.unix = os.path.join(folder, "reference.sock") if args.unix else None
        if args.unix and args.url:
            parser.error("--unix starts its own simulator: not with --url")
        return _main(args)


def _main(args: argparse.Namespace) -> int:
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
