"""How many concurrent streams the reference endpoint holds on this machine before its lag grows.

Starts the simulator in its own process (as ``tpsbench run`` does), then for each N: opens N streams of
ISL 1000 with ``ignore_eos`` and a huge ``max_tokens``, waits until every stream has its first token, resets
``/metrics``, lets them run ``--window-s`` seconds, reads ``/metrics`` and closes the streams. The client here
is minimal (it counts " tok" pieces in raw bytes), so what saturates first is the simulator.

Reported per N: the engine's step lag (wake-up minus planned step end), the delivery lag (chunk written minus
planned step end), the simulator's busy fraction, the mean modelled step vs the prediction at ISL/OSL
1000/1000, the pace (modelled step time / wall time: 1.00 when the simulator keeps its schedule), the token
rate the engine committed and the client received vs the model's server TPS (the window's contexts are
shorter than the 1k/1k mean, so a keeping-up simulator runs a little above it), and pace warnings.

    python benchmarks/reference_capacity.py --levels 1,8,64,128,192,256,512 --window-s 4
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Any

import aiohttp

from tpsbench.reference.api import MODEL_NAME
from tpsbench.reference.model import ReferenceModel
from tpsbench.reference.serve import ReferenceServerProcess
from tpsbench.reference.telemetry import pace_warnings


class _Streams:
    """Token counts per stream, and an event set once every stream has its first token."""

    def __init__(self, n: int) -> None:
        self.counts = [0] * n
        self.pending = n
        self.all_started = asyncio.Event()

    async def run(self, http: aiohttp.ClientSession, url: str, isl: int, i: int) -> None:
        body = {"model": MODEL_NAME, "prompt": "x" * (4 * isl), "max_tokens": 1_000_000, "ignore_eos": True}
        async with http.post(url + "/completions", json=body | {"stream": True}) as resp:
            async for data in resp.content.iter_any():
                was_zero = self.counts[i] == 0
                self.counts[i] += data.count(b" tok")
                if was_zero and self.counts[i]:
                    self.pending -= 1
                    if not self.pending:
                        self.all_started.set()


async def _level(root: str, n: int, isl: int, window_s: float) -> dict[str, Any]:
    streams = _Streams(n)
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=None)) as http:
        tasks = [asyncio.create_task(streams.run(http, root + "/v1", isl, i)) for i in range(n)]
        t0 = time.perf_counter()
        await asyncio.wait_for(streams.all_started.wait(), 120)
        ramp_s = time.perf_counter() - t0
        async with http.post(root + "/pace/reset"):
            pass
        before = sum(streams.counts)
        t1 = time.perf_counter()
        await asyncio.sleep(window_s)
        async with http.get(root + "/pace") as r:
            metrics = await r.json()
        received = (sum(streams.counts) - before) / (time.perf_counter() - t1)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return {"ramp_s": ramp_s, "client_tps": received, "metrics": metrics}


def _ms(x: float | None) -> str:
    return "-" if x is None else f"{x * 1e3:.2f}"


async def main_async(args: argparse.Namespace) -> list[dict[str, Any]]:
    model = ReferenceModel()
    rows: list[dict[str, Any]] = []
    with ReferenceServerProcess(seed=0, precise_s=args.spin_ms / 1e3) as server:
        print(
            f"{'N':>5} {'lag p50/p99/max ms':>22} {'deliver p50/p99/max ms':>24} {'busy':>5} {'step ms':>13} "
            f"{'pace':>5} {'engine tps':>11} {'client tps':>11} {'model tps':>10} {'ramp s':>6} warnings"
        )
        for n in args.levels:
            res = await _level(server.root, n, args.isl, args.window_s)
            eng, dl = res["metrics"]["engine"], res["metrics"]["delivery_lag_s"]
            pred = model.predict(n, args.isl, args.isl)  # context ~ isl + window tokens; close enough here
            lag = eng["lag_s"]
            pace = eng["model_time_s"] / eng["window_s"]
            row = {
                "n": n,
                "ramp_s": res["ramp_s"],
                "engine": eng,
                "delivery_lag_s": dl,
                "client_tps": res["client_tps"],
                "model_step_s": pred.step_s,
                "model_server_tps": pred.server_tps,
                "warnings": pace_warnings(res["metrics"]),
            }
            rows.append(row)
            print(
                f"{n:>5} {_ms(lag['p50']):>6}/{_ms(lag['p99']):>6}/{_ms(lag['max']):>7}  "
                f"{_ms(dl['p50']):>7}/{_ms(dl['p99']):>7}/{_ms(dl['max']):>7} {eng['busy_fraction']:>5.2f} "
                f"{_ms(eng['step_s_mean']):>6}/{_ms(pred.step_s):>6} {pace:>5.2f} "
                f"{eng['completion_tps']:>11,.0f} "
                f"{res['client_tps']:>11,.0f} {pred.server_tps:>10,.0f} {res['ramp_s']:>6.1f} "
                f"{len(pace_warnings(res['metrics']))}",
                flush=True,
            )
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--levels", default="1,8,64,128,192,256,512", type=lambda s: [int(x) for x in s.split(",")]
    )
    parser.add_argument("--window-s", type=float, default=4.0)
    parser.add_argument("--isl", type=int, default=1000)
    parser.add_argument("--spin-ms", type=float, default=1.0)
    parser.add_argument("--json", help="also write the rows here")
    args = parser.parse_args()
    rows = asyncio.run(main_async(args))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
