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
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import httpx

from tpsbench.client.client import Client, list_models
from tpsbench.client.tokens import rescale
from tpsbench.client.transport import make_transport
from tpsbench.config.dump import dump_scenario
from tpsbench.config.scenario import Level, Scenario
from tpsbench.core.record import RequestRecord, TokenSource
from tpsbench.core.redact import redact_url
from tpsbench.load import placement
from tpsbench.load.placement import plan_cores
from tpsbench.load.runner import LevelResult, run_level
from tpsbench.load.sweep import LevelPlan
from tpsbench.load.workers import WorkerJob, run_level_in_workers
from tpsbench.results.files import read_records
from tpsbench.results.rundir import (
    METADATA,
    REQUESTS,
    SCENARIO,
    SUMMARY_CSV,
    SUMMARY_JSON,
    RecordWriter,
    create_run_dir,
    environment_metadata,
    write_bytes_atomic,
    write_json,
)
from tpsbench.results.summary import summarize_level, summarize_run, to_csv, to_json
from tpsbench.workload.prompts import build_prompts
from tpsbench.workload.tokenizer import Tokenizer, TokenizerError, load_tokenizer

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


@contextlib.contextmanager
def endpoint_for(scenario: Scenario) -> Iterator[tuple[str, str | None]]:
    """Yield (base_url, how it was obtained). With no base_url, start the bundled reference endpoint in
    its own process (so the simulator and the load generator never share an event loop), on a core of its
    own where the host has two or more (:mod:`.placement`), and stop it."""
    if scenario.endpoint.base_url:
        yield scenario.endpoint.base_url, None
        return
    from tpsbench.reference.serve import ReferenceServerProcess

    cores = plan_cores(workers=scenario.workers)
    server = ReferenceServerProcess(scenario.reference, seed=scenario.workload.seed, cpus=cores.simulator)
    with cores.applied(), server:
        yield server.url, "reference"


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


async def _simulator_metrics(base_url: str, reset: bool) -> dict[str, Any] | None:
    """The reference endpoint's pace report, ``/pace``: it knows when the host could not keep its schedule."""
    root = base_url.rstrip("/").removesuffix("/v1")
    try:
        async with httpx.AsyncClient(timeout=5.0) as http:
            if reset:
                await http.post(root + "/pace/reset")
                return None
            resp = await http.get(root + "/pace")
            data: dict[str, Any] = resp.json()
            return data
    except (httpx.HTTPError, ValueError):
        return None


async def run_benchmark(
    scenario: Scenario,
    *,
    out_root: Path,
    observer: Observer | None = None,
    run_name: str | None = None,
    argv: list[str] | None = None,
    cluster: str | None = None,
) -> RunOutcome:
    """Run every level of ``scenario`` and return the run directory with its summary.

    Ctrl-C (SIGINT) stops the current level: requests in flight are recorded as cancelled, the summary of
    what finished is written, and the remaining levels are skipped. A second Ctrl-C aborts at once.
    """
    obs: Observer = observer or SilentObserver()
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
        with endpoint_for(scenario) as (base_url, source):
            return await _run(
                scenario, base_url, source, api_key, out_root, obs, run_name, argv, stop, cluster
            )
    finally:
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.remove_signal_handler(signal.SIGINT)


async def _run(
    scenario: Scenario,
    base_url: str,
    source: str | None,
    api_key: str | None,
    out_root: Path,
    obs: Observer,
    run_name: str | None,
    argv: list[str] | None,
    stop: asyncio.Event,
    cluster: str | None = None,
) -> RunOutcome:
    ep = scenario.endpoint
    model = ep.model or (await list_models(base_url, api_key, ep.timeouts.connect_s))[0]
    tokenizer = load_tokenizer(ep.tokenizer, base_url=base_url, model=model, api_key=api_key)
    # A deferred tokenizer counts in this process after each level; worker processes cannot defer.
    deferred = tokenizer is not None and tokenizer.deferred
    if deferred and (scenario.workers > 1 or cluster):
        raise TokenizerError(
            "endpoint.tokenizer 'server' counts tokens after each level in the driving process and does not "
            "work with workers; use a tokenizer.json path or 'gguf:PATH' (counted in each worker)"
        )
    run_dir = create_run_dir(out_root, run_name or scenario.name or "run")
    write_bytes_atomic(run_dir / SCENARIO, dump_scenario(scenario).encode())
    started = time.time()
    # a per-run nonce in every prompt: the same scenario run twice must not hit the server's prompt cache
    nonce = time.time_ns() & 0x7FFFFFFF
    metadata: dict[str, Any] = environment_metadata() | {
        "run_name": run_dir.name,
        "scenario_name": scenario.name,
        "endpoint": {
            "base_url": redact_url(base_url),
            "api": ep.api,
            "model": model,
            "source": source or "user",
            "transport": ep.transport,
        },
        "seed": scenario.workload.seed,
        "prompt_nonce": nonce,
        "tokenizer": tokenizer.name if tokenizer is not None else "estimate",
        "workers": scenario.workers,
        "placement": (p.as_dict() if (p := placement.current()) else None),
        "cluster": cluster,
        "argv": argv or [],
        "start_wall": started,
        "start_monotonic_ns": time.perf_counter_ns(),
        "end_wall": None,
        "interrupted": False,
    }
    write_json(run_dir / METADATA, metadata)
    obs.run_started(run_dir, redact_url(base_url), model)

    transport = make_transport(ep.transport)
    client = Client(
        ep,
        base_url,
        model,
        transport,
        api_key=api_key,
        count_tokens=tokenizer.count if tokenizer is not None and not deferred else None,
        keep_text=deferred,
    )
    run_info = {
        "name": run_dir.name,
        "scenario_name": scenario.name,
        "endpoint": redact_url(base_url),
        "model": model,
        "api": ep.api,
        "gpus": scenario.gpus,
        "workload": _workload_info(scenario),
        "reference_endpoint": source == "reference",
        "tokenizer": metadata["tokenizer"],
    }
    if scenario.sweep is not None:
        run_info["sweep"] = scenario.sweep.model_dump(mode="json")
    plan = LevelPlan(scenario)
    points: list[dict[str, Any]] = []
    summary: dict[str, Any] = summarize_run(points, run_info=run_info, slo=dict(scenario.slo))
    held: list[tuple[RequestRecord, str]] = []  # records whose count waits for the deferred tokenizer
    next_id = 0
    try:
        with RecordWriter(run_dir / REQUESTS) as writer:
            for index, level in plan:
                if stop.is_set():
                    break
                warmup = level.resolved_warmup
                expected = expected_requests(level, warmup)
                prompts = build_prompts(
                    scenario.workload,
                    ep.api,
                    expected or MAX_PROMPTS_PER_LEVEL,
                    stream_id=index,
                    nonce=nonce,
                    tokenizer=tokenizer,
                )
                obs.level_started(index, level, expected)
                if source == "reference":
                    await _simulator_metrics(base_url, reset=True)

                def sink(record: RequestRecord) -> None:
                    text = client.texts.pop(record.request_id, None)
                    if text is not None:
                        held.append((record, text))  # written once counted, after the level
                        return
                    obs.request_done(writer.write(record))

                async def send(prompt: Any, **kw: Any) -> RequestRecord:
                    return await client.send(prompt, workload=scenario.workload, **kw)

                if scenario.workers > 1 or cluster:
                    anchor = (time.time_ns(), time.perf_counter_ns())
                    jobs = [
                        WorkerJob(
                            scenario,
                            index,
                            base_url,
                            model,
                            api_key,
                            k,
                            scenario.workers,
                            next_id,
                            len(prompts),
                            nonce,
                            socket.gethostname(),
                            anchor,
                            level=level,
                        )
                        for k in range(scenario.workers)
                    ]
                    self_check, sent = await asyncio.to_thread(
                        run_level_in_workers, jobs, sink, stop.is_set, cluster
                    )
                else:
                    try:
                        result: LevelResult = await run_level(
                            send,
                            level,
                            index,
                            prompts,
                            sink=sink,
                            seed=scenario.workload.seed,
                            id_offset=next_id,
                            stop=stop,
                        )
                    finally:
                        _count_held(held, tokenizer, writer, obs)
                    self_check, sent = result.self_check(), result.sent
                next_id += sent
                if source == "reference":
                    self_check["simulator"] = await _simulator_metrics(base_url, reset=False)
                records = [r for r in read_records(run_dir / REQUESTS) if r.level == index]
                point = summarize_level(
                    records,
                    level_index=index,
                    level=level,
                    slo=dict(scenario.slo),
                    gpus=scenario.gpus,
                    self_check=self_check,
                    seed=scenario.workload.seed,
                )
                points.append(point)
                plan.observe(point)
                summary = summarize_run(
                    points, run_info=run_info, slo=dict(scenario.slo), capacity=plan.capacity()
                )
                write_bytes_atomic(run_dir / SUMMARY_JSON, to_json(summary))
                write_bytes_atomic(run_dir / SUMMARY_CSV, to_csv(summary))
                obs.level_done(index, point)
        if stop.is_set():
            plan.interrupted()
        if plan.sweep is not None and points:  # the sweep's verdict, known once its loop has ended
            summary = summarize_run(
                points, run_info=run_info, slo=dict(scenario.slo), capacity=plan.capacity()
            )
            write_bytes_atomic(run_dir / SUMMARY_JSON, to_json(summary))
    finally:
        await transport.aclose()
        metadata["end_wall"] = time.time()
        metadata["interrupted"] = stop.is_set()
        write_json(run_dir / METADATA, metadata)
        if not points:  # still leave a valid (empty) summary behind
            write_bytes_atomic(run_dir / SUMMARY_JSON, to_json(summary))
            write_bytes_atomic(run_dir / SUMMARY_CSV, to_csv(summary))
    return RunOutcome(run_dir, summary, stop.is_set(), points)


def _count_held(
    held: list[tuple[RequestRecord, str]],
    tokenizer: Tokenizer | None,
    writer: RecordWriter,
    obs: Observer,
) -> None:
    """Count the held records' texts with the deferred tokenizer (after the level, so its calls never
    compete with the load), rescale their per-chunk counts to that total, and write them. A record whose
    count fails keeps its labelled estimate."""
    failed = 0
    for record, text in held:
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
    }
