"""How faithfully tpsbench replays a trace: scheduling lag (t_send - t_scheduled) of a Mooncake-style trace
replayed on the bundled reference endpoint, at rising rates.

    python benchmarks/trace_replay.py                      # 20, 50 and 100 requests/s, 20 s each
    python benchmarks/trace_replay.py --rates 50 --seconds 30

The trace is generated (seeded): Poisson arrivals at the rate, input lengths of 1 to 4 blocks of 512 tokens
whose first blocks come from 8 shared prefixes (Mooncake's hash_ids), short answers. Prints, per rate, the
requests sent, scheduling lag p50 / p99 / max, TTFT p50, the client's CPU share and whether the summary
flagged the run client-bound. Nothing is downloaded; the endpoint is started and stopped here.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
from pathlib import Path

import numpy as np

from tpsbench.config.scenario import Scenario
from tpsbench.load.benchmark import run_benchmark


def write_trace(path: Path, rate: float, seconds: float, seed: int = 0) -> int:
    """A Mooncake-style JSONL trace; returns its number of requests."""
    rng = np.random.default_rng(seed)
    t, n = 0.0, 0
    with path.open("w") as f:
        while t < seconds:
            blocks = int(rng.integers(1, 5))
            prefix = int(rng.integers(0, 8))
            shared = [
                prefix * 10 + k for k in range(min(blocks, 2))
            ]  # up to 2 shared blocks per prefix group
            own = [1000 + n * 4 + k for k in range(blocks - len(shared))]
            inp = 512 * (blocks - 1) + int(rng.integers(1, 512))
            row = {
                "timestamp": round(t * 1000),
                "input_length": inp,
                "output_length": 16,
                "hash_ids": shared + own,
            }
            f.write(json.dumps(row) + "\n")
            n += 1
            t += float(rng.exponential(1 / rate))
    return n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--rates", default="20,50,100", help="comma-separated request rates of the generated traces"
    )
    ap.add_argument("--seconds", type=float, default=20.0, help="trace length per rate")
    args = ap.parse_args()
    rates = [float(x) for x in args.rates.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        levels = []
        for r in rates:
            path = Path(tmp) / f"mooncake-{r:g}.jsonl"
            write_trace(path, r, args.seconds)
            levels.append({"trace": {"path": str(path), "format": "mooncake"}})
        scenario = Scenario.model_validate(
            {"name": "trace-replay", "endpoint": {"continuous_usage": True}, "load": levels}
        )
        outcome = asyncio.run(run_benchmark(scenario, out_root=Path(tmp) / "results"))
        print(
            f"{'rate/s':>7} {'sent':>6} {'lag p50 ms':>10} {'p99 ms':>7} {'max ms':>7} "
            f"{'TTFT p50 ms':>11} {'CPU %':>6} bound"
        )
        for r, p in zip(rates, outcome.summary["points"], strict=True):
            lag, ttft, check = p["sched_lag_s"], p["ttft_s"], p["self_check"]
            print(
                f"{r:>7g} {p['measured']:>6} {lag['p50'] * 1e3:>10.2f} {lag['p99'] * 1e3:>7.2f} "
                f"{lag['max'] * 1e3:>7.2f} {ttft['p50'] * 1e3:>11.1f} {check.get('cpu_percent') or 0:>6.0f} "
                f"{check['client_bound']}"
            )


if __name__ == "__main__":
    main()
