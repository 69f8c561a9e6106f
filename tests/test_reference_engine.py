"""The continuous-batching engine: slots, queueing, cancellation, output lengths, chunk sizes."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest

from tpsbench.reference.engine import Chunk, Engine, Generation
from tpsbench.reference.model import DEFAULT_PARAMS, ReferenceModel

T = TypeVar("T")


def run(main: Callable[[], Awaitable[T]]) -> T:
    async def bounded() -> T:
        return await asyncio.wait_for(main(), 20)

    return asyncio.run(bounded())


async def drain(gen: Generation) -> list[Chunk]:
    chunks = []
    while True:
        chunk = await gen.queue.get()
        chunks.append(chunk)
        if chunk.finish_reason is not None:
            return chunks


async def started(**overrides: object) -> Engine:
    engine = Engine(ReferenceModel(DEFAULT_PARAMS.with_overrides(overrides)), seed=1)
    await engine.start()
    return engine


def test_chunks_add_up_and_carry_one_to_k_plus_one_tokens() -> None:
    async def main() -> list[Chunk]:
        engine = await started()
        try:
            return await drain(engine.submit(100, 120, ignore_eos=True))
        finally:
            await engine.stop()

    chunks = run(main)
    sizes = [c.tokens for c in chunks]
    assert sum(sizes) == 120 and sizes[0] == 1  # the prefill yields the first token
    assert set(sizes[1:-1]) == {1, 2, 3, 4}
    assert chunks[-1].finish_reason == "length" and all(c.finish_reason is None for c in chunks[:-1])
    times = [c.time for c in chunks]
    assert times == sorted(times)


def test_the_timeline_is_the_models_exactly() -> None:
    """Planned chunk times (no host noise): TTFT = t_pf(n) from idle, then one modelled step per chunk."""
    prompt = 1000
    model = ReferenceModel()

    async def main() -> tuple[float, list[Chunk]]:
        engine = await started()
        try:
            gen = engine.submit(prompt, 60, ignore_eos=True)
            return gen.arrival, await drain(gen)
        finally:
            await engine.stop()

    arrival, chunks = run(main)
    assert chunks[0].time - arrival == pytest.approx(model.prefill_time(prompt), abs=1e-6)
    context = prompt + chunks[0].tokens
    for before, after in itertools.pairwise(chunks):
        assert after.time - before.time == pytest.approx(model.step_time(1, context, 3), abs=1e-9)
        context += after.tokens


def test_no_speculation_above_spec_max_batch() -> None:
    async def main() -> list[list[Chunk]]:
        engine = await started(spec_max_batch=1)
        try:
            gens = [engine.submit(10, 30, ignore_eos=True) for _ in range(2)]
            return list(await asyncio.gather(*(drain(g) for g in gens)))
        finally:
            await engine.stop()

    for chunks in run(main):
        assert [c.tokens for c in chunks] == [1] * 30


def test_requests_beyond_max_batch_queue_and_cancel_frees_the_slot() -> None:
    async def main() -> None:
        engine = await started(max_batch=2)
        try:
            a, b, c = (engine.submit(10, 10_000, ignore_eos=True) for _ in range(3))
            await a.queue.get()
            assert (engine.active, engine.queued) == (2, 1)
            engine.cancel(a)
            assert (engine.active, engine.queued) == (1, 1)
            first = await asyncio.wait_for(c.queue.get(), 1.0)  # admitted into the freed slot
            assert first.tokens == 1
            assert (engine.batch, engine.queued) == (2, 0)
            stats = engine.stats()
            assert stats["requests"] == {"submitted": 3, "finished": 0, "cancelled": 1}
            assert stats["steps"] > 0 and stats["lag_s"]["count"] == stats["steps"]
            engine.cancel(b)
            engine.cancel(c)
            assert engine.active == 0
        finally:
            await engine.stop()

    run(main)


def test_output_lengths_without_ignore_eos_follow_the_distribution() -> None:
    async def main() -> tuple[list[int], list[int]]:
        engine = Engine(ReferenceModel(), seed=3)  # not started: only the length draws matter here
        free = [engine.submit(10, 2000).target_tokens for _ in range(3000)]
        floored = [engine.submit(10, 500, min_tokens=300).target_tokens for _ in range(300)]
        return free, floored

    free, floored = run(main)
    assert min(free) >= 1 and max(free) <= 2000
    assert sum(free) / len(free) == pytest.approx(DEFAULT_PARAMS.eos_mean_tokens, rel=0.1)
    assert len(set(free)) > 100
    assert all(300 <= n <= 500 for n in floored)


def test_stop_aborts_requests_in_flight() -> None:
    async def main() -> Chunk:
        engine = await started()
        gen = engine.submit(10, 10_000, ignore_eos=True)
        await gen.queue.get()
        await engine.stop()
        return (await drain(gen))[-1]

    assert run(main).finish_reason == "abort"


def test_lag_percentiles_cover_every_sample_not_the_last_window() -> None:
    """Exact while the window holds every sample; past it, a 2%-bin histogram of all of them (a window
    of the last samples would describe only a level's drain)."""
    from tpsbench.reference.engine import LagStats

    small = LagStats(window=100)
    for v in [0.004, 0.001, 0.003, 0.002]:
        small.add(v)
    assert (small.quantile(0.5), small.quantile(0.99)) == (0.002, 0.004)
    assert (small.summary()["p50"], small.summary()["p99"]) == (0.002, 0.004)  # exact: one sort for both

    stats = LagStats(window=100)
    for _ in range(990):
        stats.add(0.010)  # the level: 10 ms late
    for _ in range(10_000):
        stats.add(0.0)  # then its quiet drain, ten times as many samples
    s = stats.summary()
    assert s["count"] == 10_990 and s["max"] == 0.010
    # sorted: 10,000 zeros, then 990 at 10 ms; the last 100 samples alone would say p99 = 0
    assert s["p99"] is not None and 0.0098 <= s["p99"] <= 0.010  # rank 10,881: a 10 ms sample, bin edge
    assert 0.0098 <= stats.quantile(0.91) <= 0.010  # rank 10,001: the first 10 ms sample
    assert stats.quantile(0.90) <= 1e-6  # rank 9,891: still the zeros
    assert s["p50"] is not None and s["p50"] <= 1e-6


def test_lag_add_many_is_add_of_each() -> None:
    """A step's samples at once leave the same state as one add each: in the window, across its end, and
    in the histogram (big batches binned by numpy, small ones one at a time)."""
    import random

    from tpsbench.reference.engine import LagStats

    rng = random.Random(1)
    one, many = LagStats(window=1_000), LagStats(window=1_000)
    for size in [0, 5, 300, 600, 2_048, 7, 31, 32, 4_096, 1]:
        values = [rng.choice([0.0, 1e-7, 1e-6, 0.0001, 0.02]) * rng.random() for _ in range(size)]
        values += [1e-6 * 1.02**i for i in range(0, 1_100, 97)][: size // 10]  # on edges; past the last
        for v in values:
            one.add(v)
        many.add_many(values)
        assert vars(one).keys() == vars(many).keys()
        for name, value in vars(one).items():
            other = vars(many)[name]
            assert (list(value) if name == "_bins" and value is not None else value) == (
                list(other) if name == "_bins" and other is not None else other
            ), name
        assert one.summary() == many.summary()
