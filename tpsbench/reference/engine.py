"""A continuous-batching engine that runs the reference model in real time on one asyncio loop.

One task runs step after step. At the start of a step it admits queued requests while fewer than
``max_batch`` are active, and fixes the step's work:

- the decode batch: every sequence that has its first token verifies k = draft_len(B) drafts;
- prefill chunks: prompts of admitted requests, first come first served, at most ``prefill_chunk_tokens``
  tokens per step while anybody decodes (chunked prefill keeps the decoders' inter-token time bounded);
  with nobody decoding there is nobody to protect, so a pure prefill step takes every admitted prompt whole
  (so a lone request's TTFT is t_pf(isl), as in the model).

The step lasts ``ReferenceModel.step_time_sum`` of exactly that work (sums of attended positions over the
batch, not a mean). When it ends, each decoding sequence commits 1..k+1 tokens drawn from the acceptance
distribution (seeded), capped at what it still may generate, and that becomes ONE chunk; a prompt whose
last chunk was prefilled commits its first token (1 token). The step's chunks go together to
``Engine.step_sink`` (the server's: one write loop), by default each as a :class:`Chunk` on its request's
``asyncio.Queue`` or to its ``sink``. A cancelled request leaves at once, freeing its
slot for the next step.

Time keeping: steps are scheduled on absolute deadlines, ``end_i = end_{i-1} + duration_i``, on
``loop.time()``; a late wake-up shortens the next sleep instead of shifting every later step, so token rates
stay exact while the host keeps up. The lag, wake-up time minus planned end, is recorded per step: if it
grows, the host (not the modelled system) sets the pace. epoll sleeps have 1 ms granularity, so the loop
sleeps in epoll until ``precise_s`` before the deadline and the rest in ``time.sleep`` (a high-resolution
timer that holds no CPU; it spun with ``sleep(0)`` before, which cost up to a core's millisecond per step).
Bytes that arrive meanwhile wait at most ``precise_s``; the engine yields to the loop once after each
commit, so a late engine still lets the loop read. The server parses requests a slice per loop turn
(:mod:`.admission`), between the steps: a request is admitted at the first step that starts after its submit.

Lifetime totals (never reset, for the Prometheus counters): :attr:`Engine.totals`.

Output length: ``max_tokens`` with ``ignore_eos``; otherwise a lognormal with mean ``eos_mean_tokens``,
at least ``min_tokens`` and at most ``max_tokens``. ``finish_reason`` is "length" when the answer stopped at
max_tokens, else "stop".
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import functools
import itertools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from tpsbench.reference.model import ReferenceModel


class Chunk(NamedTuple):
    """What one step committed for one request."""

    tokens: int  # 1..k+1; 0 only on an abort
    finish_reason: str | None  # "length" / "stop" on the last chunk, "abort" if the engine stopped
    time: float  # the step's planned end on the engine clock (loop.time()): when it should reach the wire


@dataclass(eq=False)
class Generation:
    """One request inside the engine; its chunks go to ``queue`` until one has a finish_reason.

    A consumer may set ``sink`` instead: the engine then calls it with each chunk synchronously at the end
    of the step (the server's streaming fast path: no task wake-up per chunk). It must not raise.
    """

    id: int
    prompt_tokens: int
    max_tokens: int
    target_tokens: int  # where it stops: max_tokens with ignore_eos, else a draw
    arrival: float  # engine clock (loop.time()): when the request arrived (the server's stamp), else submit
    prefilled: int = 0
    generated: int = 0
    attended: int = 0  # a(prompt + generated) while decoding: its share of the batch's KV reads
    done: bool = False
    sink: Callable[[Chunk], None] | None = None

    @functools.cached_property
    def queue(self) -> asyncio.Queue[Chunk]:
        """Made on first use: a request with a ``sink`` never pays for one."""
        return asyncio.Queue()

    def deliver(self, chunk: Chunk) -> None:
        if self.sink is not None:
            self.sink(chunk)
        else:
            self.queue.put_nowait(chunk)


Delivery = tuple[Generation, int, str | None]  # a request's chunk of a step: (it, tokens, finish_reason)

_EDGES: list[float] = [1e-6 * 1.02**i for i in range(1_050)]  # 1 us to 1,000 s, bins 2% apart
_EDGES_ARRAY = np.array(_EDGES)


class LagStats:
    """Count, mean, p50, p99 and max of lag samples (seconds), over every sample since the last reset.

    Percentiles are exact (nearest rank) up to ``window`` samples; past that, every sample goes into a
    histogram with bins 2% apart and a percentile is its bin's upper edge (at most 2% high, never above
    the max). A level of 2,048 streams writes ~70k chunks a second: a window of the last 65,536 would
    describe only its last second, the drain. :meth:`add_many` takes a step's chunks at once.
    """

    def __init__(self, window: int = 65_536) -> None:
        self._recent: list[float] = []
        self._window = window
        self._bins: np.ndarray[Any, np.dtype[np.int64]] | None = None  # count per bin, once past the window
        self.count = 0
        self.total = 0.0
        self.max = 0.0
        self.last = 0.0

    def add(self, value: float) -> None:
        bins = self._bins
        if bins is None:
            self._recent.append(value)
            if len(self._recent) > self._window:
                self._bins = _binned(self._recent)
                self._recent = []
        else:
            bins[bisect.bisect_left(_EDGES, value)] += 1
        self.count += 1
        self.total += value
        self.last = value
        if value > self.max:
            self.max = value

    def add_many(self, values: list[float]) -> None:
        """:meth:`add` of each value in order (the same state after), one call for a step's chunks."""
        if not values:
            return
        bins = self._bins
        if bins is None and len(self._recent) + len(values) <= self._window:
            self._recent += values
        elif bins is not None and len(values) >= 32:  # fewer: numpy's fixed cost is more than the bisects
            bins += _binned(values)
        else:
            for v in values:
                self.add(v)
            return
        total = self.total
        for v in values:  # one add at a time, as add does: the same float sum
            total += v
        self.total = total
        self.count += len(values)
        self.last = values[-1]
        top = max(values)
        if top > self.max:
            self.max = top

    def quantile(self, q: float) -> float:
        """The q-quantile of the samples so far (see the class); call with at least one sample."""
        if self._bins is None:
            return _quantile(sorted(self._recent), q)
        rank = max(1, math.ceil(q * self.count))
        i = int(np.searchsorted(np.cumsum(self._bins), rank, side="left"))  # first bin where seen >= rank
        return min(_EDGES[i] if i < len(_EDGES) else self.max, self.max)

    def summary(self) -> dict[str, float | int | None]:
        if not self.count:
            return {"count": 0, "mean": None, "p50": None, "p99": None, "max": None, "last": None}
        if self._bins is None:  # one sort for both (a /pace read is a loop turn: tens of thousands here)
            ordered = sorted(self._recent)
            p50, p99 = _quantile(ordered, 0.50), _quantile(ordered, 0.99)
        else:
            p50, p99 = self.quantile(0.50), self.quantile(0.99)
        return {
            "count": self.count,
            "mean": self.total / self.count,
            "p50": p50,
            "p99": p99,
            "max": self.max,
            "last": self.last,
        }


def _binned(values: list[float]) -> np.ndarray[Any, np.dtype[np.int64]]:
    """Counts of ``values`` per histogram bin: bin i holds (_EDGES[i-1], _EDGES[i]] (bisect_left's i)."""
    index = np.searchsorted(_EDGES_ARRAY, values, side="left")
    return np.bincount(index, minlength=len(_EDGES) + 1).astype(np.int64, copy=False)


def _quantile(ordered: list[float], q: float) -> float:
    """Nearest-rank quantile of sorted values."""
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


@dataclass
class Totals:
    """Counters since the engine started (never reset): what ``/metrics`` exposes, read in O(1)."""

    prompt_tokens: int = 0  # prefilled
    generation_tokens: int = 0  # committed
    draft_tokens: int = 0  # speculative drafts verified: k per decoding sequence per step
    accepted_tokens: int = 0  # drafts accepted: tokens committed by a decode step minus its one bonus token
    requests_finished: int = 0


@dataclass
class _Counters:
    started: float
    steps: int = 0
    step_time: float = 0.0  # modelled seconds of all steps
    batch_steps: int = 0  # sum of B over steps (mean batch)
    submitted: int = 0
    finished: int = 0
    cancelled: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    lag: LagStats = field(default_factory=LagStats)
    work: LagStats = field(default_factory=LagStats)  # CPU seconds of a step's bookkeeping and queue pushes


class _Prefill(NamedTuple):
    gen: Generation
    end: int  # prompt position prefilled up to after this step


class Engine:
    """The reference system, in real time.

    engine = Engine(ReferenceModel(), seed=0)
    await engine.start()
    gen = engine.submit(prompt_tokens=1000, max_tokens=200, ignore_eos=True)
    while (chunk := await gen.queue.get()).finish_reason is None: ...
    await engine.stop()
    """

    def __init__(self, model: ReferenceModel, *, seed: int = 0, precise_s: float = 0.001) -> None:
        self.model = model
        self.params = model.params
        self.precise_s = precise_s
        self.totals = Totals()
        self._rng = np.random.default_rng(seed)
        self._ids = itertools.count()
        self._waiting: dict[int, Generation] = {}  # queued for a slot, in arrival order
        self._prefilling: dict[int, Generation] = {}  # admitted, prompt not done
        self._decoding: dict[int, Generation] = {}  # admitted, generating
        self._attended = 0  # sum of a(c) over _decoding
        self._wake = asyncio.Event()
        self._wake_time: float | None = None  # when the first request reached an idle engine
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._cdf: dict[int, list[float]] = {}
        self._counters = _Counters(started=0.0)
        self.work_cpu = 0.0  # thread CPU seconds of every step's commit since the start (never reset)
        # Takes each step's chunks at once, in commit order, with the step's planned end; it must deliver
        # every one (as deliver_each does) and must not raise. The server's writes them in one loop.
        self.step_sink: Callable[[list[Delivery], float], None] | None = None

    # --- lifecycle ---------------------------------------------------------------------------------------
    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._counters = _Counters(started=loop.time())
        self._task = asyncio.create_task(self._run(), name="reference-engine")

    async def stop(self) -> None:
        """Stop stepping; every request still in the engine gets an "abort" chunk."""
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        now = asyncio.get_running_loop().time()
        for gen in [*self._waiting.values(), *self._prefilling.values(), *self._decoding.values()]:
            gen.done = True
            gen.deliver(Chunk(0, "abort", now))
        self._waiting.clear()
        self._prefilling.clear()
        self._decoding.clear()
        self._attended = 0

    # --- requests ----------------------------------------------------------------------------------------
    def submit(
        self,
        prompt_tokens: int,
        max_tokens: int,
        *,
        min_tokens: int = 0,
        ignore_eos: bool = False,
        arrival: float | None = None,
        sink: Callable[[Chunk], None] | None = None,
    ) -> Generation:
        """Queue a request; it is admitted at the start of the next step that has a free slot.

        ``arrival``: when the request arrived (the server stamps its last byte; default: now). It is the
        request's own stamp (the server's TTFT counts from it); an idle engine's timeline starts at the
        submit, when the engine learns of the request. ``sink``: see :class:`Generation` (set it here or
        before the next step ends)."""
        if self._closed:
            raise RuntimeError("the engine is stopped")
        if prompt_tokens < 1 or max_tokens < 1:
            raise ValueError("prompt_tokens and max_tokens must be >= 1")
        now = asyncio.get_running_loop().time()
        target = self._target(max_tokens, min_tokens, ignore_eos)
        gen = Generation(
            next(self._ids), prompt_tokens, max_tokens, target, now if arrival is None else arrival, sink=sink
        )
        self._waiting[gen.id] = gen
        self._counters.submitted += 1
        if not self._wake.is_set():
            self._wake_time = now
            self._wake.set()
        return gen

    def cancel(self, gen: Generation) -> None:
        """Drop a request (its client went away): frees its slot at once. A no-op once it finished."""
        if gen.done:
            return
        gen.done = True
        self._counters.cancelled += 1
        self._waiting.pop(gen.id, None)
        self._prefilling.pop(gen.id, None)
        if self._decoding.pop(gen.id, None) is not None:
            self._attended -= gen.attended

    def _target(self, max_tokens: int, min_tokens: int, ignore_eos: bool) -> int:
        if ignore_eos:
            return max_tokens
        p = self.params
        mu = math.log(p.eos_mean_tokens) - p.eos_sigma**2 / 2  # so that the mean is eos_mean_tokens
        drawn = round(float(self._rng.lognormal(mu, p.eos_sigma)))
        return max(1, min(max_tokens, max(min_tokens, drawn)))

    # --- stats -------------------------------------------------------------------------------------------
    @property
    def batch(self) -> int:
        """Sequences decoding now."""
        return len(self._decoding)

    @property
    def active(self) -> int:
        """Slots in use: decoding plus prefilling."""
        return len(self._decoding) + len(self._prefilling)

    @property
    def queued(self) -> int:
        return len(self._waiting)

    def stats(self) -> dict[str, Any]:
        """Lag, bookkeeping time and counters since start or the last reset (JSON-ready).

        ``lag_s``: wake-up minus planned end of each step (>= 0; growing means the host is too slow).
        ``work_s``: time to commit a step (draws, bookkeeping, and the streaming sinks' socket writes);
        ``busy_fraction`` = its sum / window: near 1, the simulator cannot keep up.
        """
        c = self._counters
        window = max(1e-9, asyncio.get_running_loop().time() - c.started)
        return {
            "window_s": window,
            "steps": c.steps,
            "lag_s": c.lag.summary(),
            "work_s": c.work.summary(),
            "busy_fraction": c.work.total / window,
            "step_s_mean": c.step_time / c.steps if c.steps else None,
            "model_time_s": c.step_time,  # / window_s: 1 while busy and on schedule, < 1 when behind or idle
            "batch_mean": c.batch_steps / c.steps if c.steps else None,
            "batch": self.batch,
            "active": self.active,
            "prefilling": len(self._prefilling),
            "queued": self.queued,
            "max_batch": self.params.max_batch,
            "requests": {"submitted": c.submitted, "finished": c.finished, "cancelled": c.cancelled},
            "tokens": {"prompt": c.prompt_tokens, "completion": c.completion_tokens},
            "completion_tps": c.completion_tokens / window,
        }

    def reset_stats(self) -> dict[str, Any]:
        """Start a new stats window; returns the stats of the one that ended."""
        before = self.stats()
        self._counters = _Counters(started=asyncio.get_running_loop().time())
        return before

    # --- the loop ----------------------------------------------------------------------------------------
    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        # requests submitted before this task first ran set the wake time: the timeline starts there
        planned_start = self._wake_time if self._wake_time is not None else loop.time()
        while True:
            if not (self._waiting or self._prefilling or self._decoding):
                self._wake.clear()
                await self._wake.wait()
                # Start the timeline at the arrival: the wake-up latency is caught up like any lag.
                planned_start = self._wake_time if self._wake_time is not None else loop.time()
            self._admit()
            decoders = list(self._decoding.values())
            batch = len(decoders)
            k = self.model.draft_len(batch) if batch else 0
            prefills, prefill_tokens, prefill_flops = self._plan_prefill(batch)
            duration = self.model.step_time_sum(batch, self._attended, k, prefill_tokens, prefill_flops)
            planned_end = planned_start + duration
            await self._sleep_until(loop, planned_end)
            woke = loop.time()
            cpu = time.thread_time()
            self._commit(decoders, k, prefills, planned_end)
            self.work_cpu += time.thread_time() - cpu
            self.totals.prompt_tokens += prefill_tokens
            c = self._counters
            c.lag.add(max(0.0, woke - planned_end))
            c.work.add(loop.time() - woke)
            c.steps += 1
            c.step_time += duration
            c.batch_steps += batch
            c.prompt_tokens += prefill_tokens
            planned_start = planned_end
            # Always yield once between steps, so a late engine still lets queue consumers run and the
            # loop read requests that came during the step (the next step admits them).
            await asyncio.sleep(0)

    async def _sleep_until(self, loop: asyncio.AbstractEventLoop, deadline: float) -> None:
        precise = self.precise_s
        while (remaining := deadline - loop.time()) > precise:
            await asyncio.sleep(remaining - precise)  # epoll: wakes up to 1 ms late, hence the margin
        if remaining > 0:
            time.sleep(remaining)  # the last sub-millisecond: a precise timer, no spinning

    def _admit(self) -> None:
        free = self.params.max_batch - len(self._prefilling) - len(self._decoding)
        while free > 0 and self._waiting:
            gen = self._waiting.pop(next(iter(self._waiting)))
            self._prefilling[gen.id] = gen
            free -= 1

    def _plan_prefill(self, batch: int) -> tuple[list[_Prefill], int, float]:
        """Prompt chunks of this step: FIFO within the chunk budget (no budget when nobody decodes)."""
        budget = self.params.prefill_chunk_tokens if batch else math.inf
        plan: list[_Prefill] = []
        tokens = 0
        flops = 0.0
        for gen in self._prefilling.values():
            if budget <= 0:
                break
            take = int(min(gen.prompt_tokens - gen.prefilled, budget))
            plan.append(_Prefill(gen, gen.prefilled + take))
            flops += self.model.prefill_flops(gen.prefilled, gen.prefilled + take)
            tokens += take
            budget -= take
        return plan, tokens, flops

    def _draws(self, k: int, n: int) -> list[int]:
        """Tokens committed by each of n sequences verifying k drafts: 1..k+1 from P(1..k+1)."""
        if k == 0:
            return [1] * n
        cdf = self._cdf.get(k)
        if cdf is None:
            cdf = list(itertools.accumulate(self.model.token_distribution(k)))
            cdf[-1] = 1.0
            self._cdf[k] = cdf
        return [bisect.bisect_right(cdf, u) + 1 for u in self._rng.random(n).tolist()]

    def _commit(self, decoders: list[Generation], k: int, prefills: list[_Prefill], now: float) -> None:
        """Commit the step's tokens, then hand its chunks over at once (:attr:`step_sink`)."""
        out: list[Delivery] = []
        append = out.append
        attended_of = self.model.attended_positions
        decoded = tokens = 0
        for gen, n in zip(decoders, self._draws(k, len(decoders)), strict=True):
            if gen.done:  # cancelled during the step
                continue
            decoded += 1
            generated = gen.generated + n
            if generated < gen.target_tokens:  # a middle chunk (the common case): no finish bookkeeping
                gen.generated = generated
                attended = int(attended_of(gen.prompt_tokens + generated))
                self._attended += attended - gen.attended
                gen.attended = attended
                append((gen, n, None))
                tokens += n
            else:
                tokens += self._emit(gen, n, append)
        if k:
            self.totals.draft_tokens += k * decoded
            self.totals.accepted_tokens += tokens - decoded  # each sequence's bonus token is no draft
        self._counters.completion_tokens += tokens
        self.totals.generation_tokens += tokens
        for gen, end in prefills:
            if gen.done:
                continue
            gen.prefilled = end
            if end == gen.prompt_tokens:  # the prefill's last position yields the first token
                del self._prefilling[gen.id]
                self._decoding[gen.id] = gen
                first = self._emit(gen, 1, append)
                self._counters.completion_tokens += first
                self.totals.generation_tokens += first
        (self.step_sink or deliver_each)(out, now)

    def _emit(self, gen: Generation, n: int, append: Callable[[Delivery], None]) -> int:
        """Commit up to ``n`` tokens of ``gen`` (its chunk goes to ``append``); returns how many."""
        n = min(n, gen.target_tokens - gen.generated)
        gen.generated += n
        if gen.generated >= gen.target_tokens:
            gen.done = True
            self._counters.finished += 1
            self.totals.requests_finished += 1
            del self._decoding[gen.id]
            self._attended -= gen.attended
            append((gen, n, "length" if gen.generated >= gen.max_tokens else "stop"))
            return n
        attended = int(self.model.attended_positions(gen.prompt_tokens + gen.generated))
        self._attended += attended - gen.attended
        gen.attended = attended
        append((gen, n, None))
        return n


def deliver_each(chunks: list[Delivery], end: float) -> None:
    """The default :attr:`Engine.step_sink`: each chunk to its request's sink or queue."""
    for gen, tokens, reason in chunks:
        gen.deliver(Chunk(tokens, reason, end))
