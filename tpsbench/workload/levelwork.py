"""What one level sends: its prompts, and for a trace level the schedule they go out on.

    >>> from tpsbench.config.scenario import Level, Workload
    >>> w = level_work(Workload(input_tokens=8, output_tokens=4), Level(rate=1, requests=2), "chat", 3)
    >>> (len(w.prompts), w.schedule_s)
    (3, None)

The single-process driver and every worker call :func:`level_work` with the same arguments, so they send
the same requests: synthetic, prompts-file or dataset prompts (:func:`.prompts.build_prompts`), or a
replayed trace's (:mod:`.traces`), and for multi-turn workloads the sessions (:mod:`.sessions`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tpsbench.config.scenario import Api, Level, Scenario, Workload
from tpsbench.core.estimate import estimate_tokens
from tpsbench.workload.datasets import read_dataset, select_conversations
from tpsbench.workload.prompts import PromptSpec, build_prompts
from tpsbench.workload.sessions import SessionSpec, build_sessions
from tpsbench.workload.tokenizer import Tokenizer
from tpsbench.workload.traces import read_trace, trace_prompts

__all__ = ["LevelWork", "check_files", "level_work"]


@dataclass(frozen=True)
class LevelWork:
    prompts: list[PromptSpec]  # empty for a multi-turn workload (the sessions build each turn's prompt)
    schedule_s: list[float] | None = None  # a trace level: request g goes out at schedule_s[g]
    sessions: list[SessionSpec] | None = None  # a multi-turn workload: the sessions to play, cycled


def level_work(
    workload: Workload,
    level: Level,
    api: Api,
    count: int,
    *,
    stream_id: int = 0,
    nonce: int = 0,
    tokenizer: Tokenizer | None = None,
    base_dir: Path | None = None,
) -> LevelWork:
    """The prompts (``count`` of them, cycled by the runner) of one level, seeded by ``stream_id`` (the
    level's index). A trace level ignores ``count``: one prompt per request of the trace's window, at
    most ``level.requests``. A multi-turn workload gives ``count`` sessions (each plays at least one of
    the level's requests)."""
    if workload.sessions is not None and level.trace is None:
        sessions = build_sessions(workload, api, count, stream_id=stream_id, nonce=nonce, tokenizer=tokenizer)
        return LevelWork([], None, sessions)
    if level.trace is not None:
        reqs = read_trace(level.trace)
        if level.requests is not None:
            reqs = reqs[: level.resolved_warmup + level.requests]
        prompts = trace_prompts(
            reqs, workload, api, block_tokens=level.trace.block_tokens, nonce=nonce, tokenizer=tokenizer
        )
        return LevelWork(prompts, [r.offset_s for r in reqs])
    prompts = build_prompts(
        workload, api, count, stream_id=stream_id, nonce=nonce, tokenizer=tokenizer, base_dir=base_dir
    )
    return LevelWork(prompts)


def check_files(scenario: Scenario) -> None:
    """Read every data file the scenario names (prompts file, dataset, traces) and raise the first
    file's :class:`~tpsbench.config.errors.ScenarioError` (``file:line: field: message`` per bad row), so a
    bad file stops the run before any request. Dataset length filters are applied when they count with
    the estimate (a real tokenizer is loaded by the run, which applies them before its first request)."""
    w = scenario.workload
    if w.prompts_file is not None:
        build_prompts(w, scenario.endpoint.api, 1)
    if w.dataset is not None:
        if scenario.endpoint.tokenizer in (None, "estimate"):
            select_conversations(w.dataset, estimate_tokens, w.seed)
        else:
            read_dataset(
                w.dataset.path,
                w.dataset.format,
                prompt_column=w.dataset.prompt_column,
                answer_column=w.dataset.answer_column,
            )
    for level in scenario.fixed_levels:
        if level.trace is not None:
            read_trace(level.trace)
