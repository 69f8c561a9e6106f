"""One benchmark run, end to end: scenario -> endpoint -> levels -> run directory -> summary.

This is the orchestration the CLI calls; it owns no measurement logic of its own. Order per run:
resolve the endpoint (start the bundled reference endpoint when the scenario names none), load the
scenario's tokenizer, create the run directory, then for each level (the fixed ones, or a sweep's, generated
one at a time by :class:`.sweep.LevelPlan`): build seeded prompts, drive the level (records stream
to requests.jsonl), summarise it from the file (the contract is the only path from records to numbers) and
rewrite summary.json/csv, so an interrupted run leaves a valid partial result. A sweep's ``capacity`` block
goes into summary.json at the run level.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from tpsbench.client.network import Network
from tpsbench.client.tokens import rescale
from tpsbench.config.dump import dump_scenario
from tpsbench.config.scenario import Level, Scenario
from tpsbench.core.record import Reply, RequestRecord, TokenSource
from tpsbench.core.redact import redact_url
from tpsbench.load import placement
from tpsbench.load.endpoint import Endpoint, endpoint_for
from tpsbench.load.pace_window import PaceWindow
from tpsbench.load.preflight import preflight, resolve_model
from tpsbench.load.runner import LevelResult, run_level
from tpsbench.load.session import LevelSession, RunContext
from tpsbench.load.sweep import LevelPlan
from tpsbench.load.telemetry import Scraper, default_url
from tpsbench.load.worker import ClockAnchor, WorkerJob
from tpsbench.load.workers import run_level_in_workers
from tpsbench.results import repeats
from tpsbench.results.files import read_records, read_samples
from tpsbench.results.rundir import (
    METADATA,
    REQUESTS,
    SCENARIO,
    SUMMARY_CSV,
    SUMMARY_JSON,
    TELEMETRY,
    RecordWriter,
    SampleWriter,
    create_run_dir,
    environment_metadata,
    write_bytes_atomic,
    write_json,
)
from tpsbench.results.summary import summarize_level, summarize_run, to_csv, to_json
from tpsbench.results.telemetry import Sample
from tpsbench.workload.levelwork import check_files
from tpsbench.workload.tokenizer import Tokenizer, TokenizerError

MAX_PROMPTS_PER_LEVEL = 8192  # duration-only closed-loop levels cycle prompts past this many (memory)


class Observer(Protocol):
    """What a user interface is told while a run goes on (the CLI renders it with rich)."""

    def run_started(self, run_dir: Path, base_url: str, model: str) -> None: ...
    def level_started(self, index: int, level: Level, expected: int | None) -> None: ...
    def request_done(self, line: dict[str, Any]) -> None: ...
    def level_done(self, index: int, point: dict[str, Any]) -> None: ...
    def message(self, text: str) -> None: ...


class SilentObserver:
    def run_started(self, run_dir: Path, base_url: str, model: str) -> None: ...
    def level_started(self, index: int, level: Level, expected: int | None) -> None: ...
    def request_done(self, line: dict[str, Any]) -> None: ...
    def level_done(self, index: int, point: dict[str, Any]) -> None: ...
    def message(self, text: str) -> None: ...


@dataclass
class RunOutcome:
    run_dir: Path
    summary: dict[str, Any]
    interrupted: bool = False
    points: list[dict[str, Any]] = field(default_factory=list)


def api_key_for(scenario: Scenario) -> str | None:
    """The API key from the environment variable the scenario names; never stored anywhere."""
    name = scenario.endpoint.api_key_env
    if not name:
        return None
    key = os.environ.get(name)
    if not key:
        raise ValueError(f"endpoint.api_key_env names {name!r} but that environment variable is not set")
    return key


def expected_requests(level: Level, warmup: int) -> int | None:
    if level.measured_requests is not None:
        return warmup + level.measured_requests
    if level.rate is not None and level.duration_s is not None:
        return warmup + round(level.rate * level.duration_s)
    return None


async def run_benchmark(
    scenario: Scenario,
    *,
    out_root: Path,
    observer: Observer | None = None,
    run_name: str | None = None,
    argv: list[str] | None = None,
    cluster: str | None = None,
    preflight: bool = True,
) -> RunOutcome:
    """Run every level of ``scenario`` and return the run directory with its summary.

    Before any level (and before the run directory exists) the model is resolved and, with ``preflight``,
    one unmeasured request shaped like the scenario's is sent (:mod:`.preflight`): an unusable endpoint
    raises :class:`~tpsbench.load.preflight.EndpointUnusable` and leaves nothing behind.

    Ctrl-C (SIGINT) stops the current level: requests in flight are recorded as cancelled, the summary of
    what finished is written, and the remaining levels are skipped. A second Ctrl-C aborts at once.
    """
    obs: Observer = observer or SilentObserver()
    check_files(scenario)  # a bad dataset or trace file stops the run before it starts anything
    api_key = api_key_for(scenario)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_sigint() -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        obs.message("interrupted: stopping this level and writing partial results (Ctrl-C again to abort)")
        stop.set()

    with contextlib.suppress(NotImplementedError, RuntimeError):
        loop.add_signal_handler(signal.SIGINT, on_sigint)
    try:
        with endpoint_for(scenario) as endpoint:
            run = await _start(
                scenario, endpoint, api_key, opts=_Options(out_root, run_name, argv, cluster, preflight)
            )
            return await _run_levels(run, obs, stop)
    finally:
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.remove_signal_handler(signal.SIGINT)


@dataclass(frozen=True)
class _Options:
    """How :func:`run_benchmark` was asked to run (beyond the scenario)."""

    out_root: Path
    run_name: str | None
    argv: list[str] | None
    cluster: str | None
    preflight: bool = True


@dataclass
class _Run:
    """One run once started: its context, session, run directory and the blocks written into it."""

    ctx: RunContext
    session: LevelSession
    source: str | None  # "reference": the bundled reference endpoint
    run_dir: Path
    metadata: dict[str, Any]
    run_info: dict[str, Any]
    cluster: str | None
    repeat: int = 0  # the repeat being driven (records are stamped with it)

    @property
    def pooled(self) -> bool:
        """Whether levels run in worker processes (or Ray tasks) rather than in this event loop."""
        return self.ctx.scenario.workers > 1 or bool(self.cluster)


async def _start(scenario: Scenario, endpoint: Endpoint, api_key: str | None, *, opts: _Options) -> _Run:
    """Resolve the model, load the tokenizer, create the run directory and write its scenario and metadata."""
    ep = scenario.endpoint
    base_url, source = endpoint.base_url, endpoint.source
    model = await resolve_model(scenario, base_url, api_key)
    # a per-run nonce in every prompt: the same scenario run twice must not hit the server's prompt cache
    nonce = time.time_ns() & 0x7FFFFFFF
    ctx = RunContext(scenario, base_url, model, api_key, nonce, endpoint.unix_socket)
    session = LevelSession.open(ctx)
    # A deferred tokenizer counts in this process after each level; worker processes cannot defer.
    if session.deferred and (scenario.workers > 1 or opts.cluster):
        raise TokenizerError(
            "endpoint.tokenizer 'server' counts tokens after each level in the driving process and does not "
            "work with workers; use a tokenizer.json path or 'gguf:PATH' (counted in each worker)"
        )
    tokenizer_name = session.tokenizer.name if session.tokenizer is not None else "estimate"
    checked: dict[str, Any] = {"skipped": True}
    if opts.preflight:
        checked = await preflight(
            scenario,
            base_url,
            model,
            api_key,
            tokenizer=session.tokenizer,
            nonce=ctx.nonce,
            unix_socket=ctx.unix_socket,
        )
    run_dir = create_run_dir(opts.out_root, opts.run_name or scenario.name or "run")
    write_bytes_atomic(run_dir / SCENARIO, dump_scenario(scenario).encode())
    metadata: dict[str, Any] = environment_metadata() | {
        "run_name": run_dir.name,
        "scenario_name": scenario.name,
        "endpoint": {
            "base_url": redact_url(base_url),
            "api": ep.api,
            "model": model,
            "source": source or "user",
            "transport": ep.transport,
            "network": session.network.describe(base_url),  # proxy (redacted) and TLS checks
        },
        "seed": scenario.workload.seed,
        "prompt_nonce": ctx.nonce,
        "tokenizer": tokenizer_name,
        "preflight": checked,
        "error_budget": scenario.error_budget,
        "workers": scenario.workers,
        "placement": (p.as_dict() if (p := placement.current()) else None),
        "event_loop": type(asyncio.get_running_loop()).__module__.split(".")[0],  # uvloop or asyncio
        "cluster": opts.cluster,
        "argv": opts.argv or [],
        "start_wall": time.time(),
        "start_monotonic_ns": time.perf_counter_ns(),
        "end_wall": None,
        "interrupted": False,
    }
    write_json(run_dir / METADATA, metadata)
    run_info = {
        "name": run_dir.name,
        "scenario_name": scenario.name,
        "endpoint": redact_url(base_url),
        "model": model,
        "api": ep.api,
        "gpus": scenario.gpus,
        "workload": _workload_info(scenario),
        "reference_endpoint": source == "reference",
        "tokenizer": tokenizer_name,
    }
    if scenario.sweep is not None:
        run_info["sweep"] = scenario.sweep.model_dump(mode="json")
    return _Run(ctx, session, source, run_dir, metadata, run_info, opts.cluster)


async def _run_levels(run: _Run, obs: Observer, stop: asyncio.Event) -> RunOutcome:
    """Every level of the plan (``repeat.count`` times over, see :func:`_repeat_plan`), the summary
    rewritten after each level; metadata closed whatever happens."""
    scenario, run_dir = run.ctx.scenario, run.run_dir
    obs.run_started(run_dir, redact_url(run.ctx.base_url), run.ctx.model)
    for line in run.session.network.header_lines(run.ctx.base_url):
        obs.message(line)
    plan = LevelPlan(scenario)
    state = _Repeats(scenario.repeat.count, scenario.repeat.cooldown_s)
    summary: dict[str, Any] = summarize_run([], run_info=run.run_info, slo=dict(scenario.slo))
    next_id = 0
    scraper, samples_out = _scraper(scenario, run.ctx.base_url, run_dir, run.session.network)
    try:
        with RecordWriter(run_dir / REQUESTS) as writer:
            for k, levels in _repeat_plan(plan, state):
                if stop.is_set():
                    break
                await state.begin(k, run, obs, stop)
                for index, level in levels:
                    if stop.is_set():
                        break
                    if scraper is not None:
                        await scraper.start(index)  # own task and timeout: a slow /metrics never delays load
                    self_check, sent = await _drive_level(run, index, level, next_id, writer, obs, stop)
                    telemetry_notes = await scraper.stop() if scraper is not None else []
                    next_id += sent
                    records = [r for r in read_records(run_dir / REQUESTS) if r.level == index]
                    mine = [r for r in records if r.repeat == k]
                    point = summarize_level(
                        mine,
                        level_index=index,
                        level=level,
                        slo=dict(scenario.slo),
                        gpus=scenario.gpus,
                        self_check=self_check,
                        seed=scenario.workload.seed,
                        samples=_level_samples(run_dir, index, mine) if scraper is not None else None,
                        telemetry_notes=telemetry_notes,
                    )
                    if k == 0:
                        plan.observe(point)
                    state.add(k, index, level, point, records, scenario)
                    summary = state.summary(run, scenario, plan.capacity())
                    write_bytes_atomic(run_dir / SUMMARY_JSON, to_json(summary))
                    write_bytes_atomic(run_dir / SUMMARY_CSV, to_csv(summary))
                    obs.level_done(index, point)
                state.end(k, run_dir)
        if stop.is_set():
            plan.interrupted()
        if state.points:  # the sweep's verdict, known once its loop has ended; the repeats' differences
            summary = state.summary(run, scenario, plan.capacity())
            write_bytes_atomic(run_dir / SUMMARY_JSON, to_json(summary))
    finally:
        await run.session.aclose()
        if scraper is not None:
            await scraper.aclose()
        if samples_out is not None:
            samples_out.close()
        run.metadata["end_wall"] = time.time()
        run.metadata["interrupted"] = stop.is_set()
        if state.count > 1:
            run.metadata["repeats"] = state.runs
        write_json(run_dir / METADATA, run.metadata)
        if not state.points:  # still leave a valid (empty) summary behind
            write_bytes_atomic(run_dir / SUMMARY_JSON, to_json(summary))
            write_bytes_atomic(run_dir / SUMMARY_CSV, to_csv(summary))
    return RunOutcome(run_dir, summary, stop.is_set(), state.points)


def _level_samples(run_dir: Path, index: int, records: list[RequestRecord]) -> list[Sample]:
    """The telemetry samples of one level of one repeat: the level's scrapes from the last one at or before
    its records' first send to the first one at or after their last end (the scraper brackets each level
    so, and the counters' increase between the two is the level's)."""
    lo = min((r.send_ns for r in records), default=0)
    hi = max((r.end_ns for r in records), default=0)
    samples = [s for s in read_samples(run_dir / TELEMETRY) if s.level == index]
    times = sorted({s.t_ns for s in samples})
    start = max((t for t in times if t <= lo), default=lo)
    end = min((t for t in times if t >= hi), default=hi)
    return [s for s in samples if start <= s.t_ns <= end]


def _repeat_plan(plan: LevelPlan, state: _Repeats) -> Iterator[tuple[int, Iterable[tuple[int, Level]]]]:
    """``(repeat, levels)``: repeat 0 drives the plan (a sweep grows as it observes), every later repeat
    the levels repeat 0 ran, in the same order (a scenario with repeats has fixed levels)."""
    yield 0, plan
    for k in range(1, state.count):
        yield k, list(state.levels.items())


@dataclass
class _Repeats:
    """The repeats of one run: per-repeat points by level, the pooled points the summary shows, and what
    each repeat was (start/end, nonce, requests): :mod:`tpsbench.results.repeats`."""

    count: int
    cooldown_s: float
    levels: dict[int, Level] = field(default_factory=dict)
    per_level: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    pooled: dict[int, dict[str, Any]] = field(default_factory=dict)
    runs: list[dict[str, Any]] = field(default_factory=list)

    @property
    def points(self) -> list[dict[str, Any]]:
        return [self.pooled[i] for i in sorted(self.pooled)]

    async def begin(self, k: int, run: _Run, obs: Observer, stop: asyncio.Event) -> None:
        if k:
            obs.message(f"repeat {k + 1} of {self.count} (after {self.cooldown_s:g} s cool-down)")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.cooldown_s)
            # a nonce of its own: repeat k must not hit a prompt cache warmed by repeat k - 1
            run.ctx = replace(run.ctx, nonce=(run.ctx.nonce + 1) & 0x7FFFFFFF)
            run.session.ctx = run.ctx
        run.repeat = k
        self.runs.append({"repeat": k, "start_wall": time.time(), "prompt_nonce": run.ctx.nonce})

    def add(
        self,
        k: int,
        index: int,
        level: Level,
        point: dict[str, Any],
        records: list[RequestRecord],
        scenario: Scenario,
    ) -> None:
        self.levels.setdefault(index, level)
        if self.count == 1:
            self.pooled[index] = point
            return
        point["repeat"] = k
        per = self.per_level.setdefault(index, [])
        per.append(point)
        whole = summarize_level(
            records,
            level_index=index,
            level=level,
            slo=dict(scenario.slo),
            gpus=scenario.gpus,
            self_check=repeats.merged_self_check(per),
            seed=scenario.workload.seed,
        )
        self.pooled[index] = repeats.pool(whole, per)

    def end(self, k: int, run_dir: Path) -> None:
        mine = [p for per in self.per_level.values() for p in per if p.get("repeat") == k]
        if self.runs:
            self.runs[-1] |= {
                "end_wall": time.time(),
                "requests": sum(int(p.get("measured") or 0) for p in mine),
                "failed": sum(sum((p.get("errors") or {}).values()) for p in mine),
                "loop_lag_p99_s": max(
                    ((p.get("self_check") or {}).get("loop_lag_p99_s") or 0.0 for p in mine), default=None
                ),
                "client_bound": any((p.get("self_check") or {}).get("client_bound") for p in mine),
            }

    def summary(self, run: _Run, scenario: Scenario, capacity: dict[str, Any] | None) -> dict[str, Any]:
        block = (
            repeats.run_block(self.runs, self.points, count=self.count, cooldown_s=self.cooldown_s)
            if self.count > 1
            else None
        )
        return summarize_run(
            self.points, run_info=run.run_info, slo=dict(scenario.slo), capacity=capacity, repeats=block
        )


def _scraper(
    scenario: Scenario, base_url: str, run_dir: Path, net: Network
) -> tuple[Scraper | None, SampleWriter | None]:
    """The run's telemetry scraper and the writer of its samples (both None when telemetry is off): /metrics
    through the run's proxy and TLS context (``endpoint.tls``), as the client's requests."""
    tel = scenario.telemetry
    if not tel.enabled:
        return None, None
    out = SampleWriter(run_dir / TELEMETRY)
    urls = tel.urls or [default_url(base_url)]
    scraper = Scraper(
        urls,
        out.write,
        interval_s=tel.interval_s,
        timeout_s=tel.timeout_s,
        # the endpoint's Unix socket serves the default URL; other URLs (tel.urls) are their own servers
        transport=net.httpx_transport() if not tel.urls else None,
        tls=net.tls,
        proxies=net.proxies,
    )
    return scraper, out


async def _drive_level(
    run: _Run,
    index: int,
    level: Level,
    first_id: int,
    writer: RecordWriter,
    obs: Observer,
    stop: asyncio.Event,
) -> tuple[dict[str, Any], int]:
    """Drive one level (here, or in the workers) with its records streaming to ``writer``; returns the
    level's self-check and how many requests it sent."""
    base_url = run.ctx.base_url
    expected = expected_requests(level, level.resolved_warmup)
    prompt_count = expected or MAX_PROMPTS_PER_LEVEL
    obs.level_started(index, level, expected)
    held: list[Reply] = []  # replies whose count waits for the deferred tokenizer

    def sink(reply: Reply) -> None:
        reply.record.repeat = run.repeat
        estimated = reply.record.token_source is TokenSource.ESTIMATE
        if run.session.deferred and estimated and reply.text is not None:
            held.append(reply)  # written once counted, after the level
            return
        obs.request_done(writer.write(reply.record))

    pace = PaceWindow(base_url, run.session.network) if run.source == "reference" else None
    try:
        if pace is not None:
            await pace.start()
        try:
            self_check, sent = await _drive_share(run, index, level, first_id, prompt_count, sink, stop, pace)
        finally:
            _count_held(held, run.session.tokenizer, writer, obs)  # workers refuse deferred tokenizers
        if pace is not None:
            self_check["simulator"] = await pace.report()
    finally:
        if pace is not None:
            await pace.aclose()
    return self_check, sent


async def _drive_share(
    run: _Run,
    index: int,
    level: Level,
    first_id: int,
    prompt_count: int,
    sink: Callable[[Reply], None],
    stop: asyncio.Event,
    pace: PaceWindow | None,
) -> tuple[dict[str, Any], int]:
    """The level itself: in the workers' processes, or in this one."""
    scenario = run.ctx.scenario
    if run.pooled:
        anchor = ClockAnchor.here()
        n = scenario.workers
        jobs = [WorkerJob(run.ctx, index, level, first_id, prompt_count, k, n, anchor) for k in range(n)]
        return await asyncio.to_thread(run_level_in_workers, jobs, sink, stop.is_set, run.cluster, pace)
    work = run.session.work(index, level, prompt_count)
    result: LevelResult = await run_level(
        run.session.send,
        level,
        index,
        work.prompts,
        sink=sink,
        seed=scenario.workload.seed,
        id_offset=first_id,
        stop=stop,
        schedule_s=work.schedule_s,
        sessions=work.sessions,
        measured_started=pace.opened if pace is not None else None,
        measured_done=pace.closed if pace is not None else None,
    )
    return result.self_check(), result.sent


def _count_held(
    held: list[Reply],
    tokenizer: Tokenizer | None,
    writer: RecordWriter,
    obs: Observer,
) -> None:
    """Count the held records' texts with the deferred tokenizer (after the level, so its calls never
    compete with the load), rescale their per-chunk counts to that total, and write them. A record whose
    count fails keeps its labelled estimate."""
    failed = 0
    for reply in held:
        record, text = reply.record, reply.text or ""
        if tokenizer is not None:
            try:
                n = tokenizer.count(text)
            except TokenizerError:
                failed += 1
            else:
                record.chunk_tokens = rescale(record.chunk_tokens, n)
                record.output_tokens = n
                record.token_source = TokenSource.TOKENIZER
        obs.request_done(writer.write(record))
    if failed:
        obs.message(f"{failed} output token counts stayed estimates: the tokenize endpoint failed")
    held.clear()


def _workload_info(scenario: Scenario) -> dict[str, Any]:
    """Mean ISL/OSL and the workload's identity, for comparability checks and the model curve."""
    w = scenario.workload

    def mean(v: Any) -> float:
        return float(v) if isinstance(v, int) else float(v.mean)

    return {
        "input_tokens": mean(w.input_tokens),
        "output_tokens": mean(w.output_tokens),
        "prompts_file": str(w.prompts_file) if w.prompts_file else None,
        "seed": w.seed,
        "ignore_eos": w.ignore_eos,
        "shared_prefix_tokens": w.shared_prefix_tokens,
        # a dataset run measures other prompts than a synthetic one, sessions other requests than single turns
        "dataset": f"{w.dataset.format}:{w.dataset.path}" if w.dataset is not None else None,
        "sessions": w.sessions.model_dump(mode="json") if w.sessions is not None else None,
    }
