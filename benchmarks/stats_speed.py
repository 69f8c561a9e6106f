"""How long the per-level statistics take: describe() with 1,000 seeded bootstrap resamples, by sample size.

python benchmarks/stats_speed.py
"""

from __future__ import annotations

import time

import numpy as np

from tpsbench.results.stats import describe


def main() -> None:
    print(f"{'values':>8} {'seconds':>8}")
    for n in (100, 1_000, 10_000, 100_000):
        x = np.random.default_rng(0).lognormal(size=n)
        t = time.perf_counter()
        describe(x, n_boot=1000)
        print(f"{n:>8,} {time.perf_counter() - t:>8.3f}")


if __name__ == "__main__":
    main()
