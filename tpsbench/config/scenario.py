"""The scenario schema: what to load, how hard, against which endpoint.

A scenario is validated completely before any request is sent. See ``scenarios/*.yaml`` for examples and
the README for every field. Files are read by :func:`tpsbench.config.loader.load_scenario` (errors as
``file:line: field: message``, mapped by :mod:`tpsbench.config.errors`) and written by
:func:`tpsbench.config.dump.dump_scenario`.

    >>> s = Scenario.model_validate({"load": [{"concurrency": 4, "requests": 20}]})
    >>> s.load[0].concurrency
    4
    >>> s.load[0].resolved_warmup
    4
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from tpsbench.config.base import Distribution, TokenCount
from tpsbench.config.base import Strict as _Strict
from tpsbench.config.endpoint import Api, Endpoint, Timeouts, Tls
from tpsbench.config.errors import (
    COMMAND_LINE,
    ScenarioError,
    ScenarioIssue,
    SchemaHints,
    SourceLines,
    issues_from_validation,
)
from tpsbench.config.report import Mark, Report
from tpsbench.config.workloads import Dataset, Sessions, ThinkTime, Trace
from tpsbench.core.loadlabel import load_label, trace_label
from tpsbench.core.metricspec import check_thresholds

__all__ = [
    "SCHEMA",
    "Api",
    "Dataset",
    "Distribution",
    "Endpoint",
    "Gate",
    "Level",
    "Mark",
    "Report",
    "Scenario",
    "ScenarioError",
    "ScenarioIssue",
    "Sessions",
    "SloMetric",
    "SloStat",
    "Steps",
    "Sweep",
    "Telemetry",
    "ThinkTime",
    "Timeouts",
    "Tls",
    "TokenCount",
    "Trace",
    "Workload",
]


class Workload(_Strict):
    """What each request asks for. Unique prompt prefixes, when on, are applied to file prompts too."""

    input_tokens: TokenCount = 1000
    output_tokens: TokenCount = 1000
    seed: int = Field(default=0, ge=0)  # numpy seeds must be non-negative
    prompts_file: Path | None = None  # JSONL; relative paths are relative to the scenario file
    ignore_eos: bool = True  # send ignore_eos so the server generates exactly max_tokens
    min_tokens: bool = True  # send min_tokens = max_tokens (servers that ignore ignore_eos honour this)
    max_tokens_field: Literal["max_tokens", "max_completion_tokens"] = "max_tokens"
    unique_prompts: bool = True  # a unique prefix per request so prompt caches cannot flatter a run
    # The first N input tokens of every prompt are the same (seeded), so a server's prefix cache can reuse
    # them: compare TTFT with 0. Counted in input_tokens, which must therefore be >= N.
    shared_prefix_tokens: int = Field(default=0, ge=0)
    dataset: Dataset | None = None  # prompts from a local dataset file (instead of prompts_file)
    sessions: Sessions | None = None  # multi-turn conversations instead of independent requests

    @model_validator(mode="after")
    def _prefix_fits(self) -> Workload:
        if self.dataset is not None and self.prompts_file is not None:
            raise ValueError("set 'dataset' or 'prompts_file', not both")
        if self.sessions is not None and self.prompts_file is not None:
            raise ValueError("'sessions' come from a 'dataset' or are synthetic; 'prompts_file' has no turns")
        if self.sessions is not None and self.sessions.max_turns is not None and self.dataset is None:
            raise ValueError(
                "'sessions.max_turns' caps a dataset's conversations; synthetic sessions use 'turns'"
            )
        n = self.shared_prefix_tokens
        if n and self.prompts_file is None and self.dataset is None:
            fixed = isinstance(self.input_tokens, int)
            low = self.input_tokens if isinstance(self.input_tokens, int) else self.input_tokens.min
            if low < n:
                raise ValueError(
                    f"'shared_prefix_tokens' ({n}) is part of every prompt, so input_tokens must be >= {n}, "
                    f"got {'' if fixed else 'min '}{low}"
                )
        return self


class Level(_Strict):
    """One load point: closed loop (``concurrency``), open loop (``rate``) or a replayed ``trace``.

    Closed loop keeps ``concurrency`` requests in flight (users, with sessions: sessions in flight); open
    loop sends at ``rate`` requests per second (with sessions: starts sessions) with gaps drawn from
    ``arrival`` (load/arrivals.py); a trace sends its requests on its own clock. ``requests`` counts
    measured requests only; ``warmup`` unmeasured ones go first (default: :attr:`resolved_warmup`).

    ``cooldown`` (closed and open loop; off by default): after the measured requests, the level goes on
    sending unmeasured *cooldown* requests, as it sent the measured ones (users re-sending, or the arrival
    schedule continued), until the last measured request has ended; then it sends no more and lets those
    in flight finish (their tokens that arrived inside the measured window are part of ``output_tps``).
    The measured window, first measured send to last measured end, is then at the level's load at its
    end as warmup makes it at its start, instead of holding the drain of a batch nobody refills.

    ``ramp_s``: closed loop starts its users evenly over that many seconds (user k at ``k * ramp_s /
    concurrency``); open loop raises the rate linearly from 0 to ``rate`` over it. ``max_concurrency``
    (open loop and traces) caps the requests in flight: a request due while the cap is reached waits for a
    free slot and records that wait (``queue_ns``) and its lateness (scheduling lag), so the cap never
    hides coordinated omission.
    """

    concurrency: int | None = Field(default=None, ge=1)
    rate: float | None = Field(default=None, gt=0)  # requests per second
    trace: Trace | None = None
    ramp_s: float = Field(default=0.0, ge=0)
    max_concurrency: int | None = Field(default=None, ge=1)
    arrival: Literal["poisson", "constant", "gamma"] = "poisson"
    burstiness: float = Field(default=1.0, gt=0)  # gamma shape; 1 = poisson, <1 burstier, >1 smoother
    requests: int | None = Field(default=None, ge=1)  # measured requests (warmup excluded)
    # measured window; the level stops at whichever of requests / duration_s comes first
    duration_s: float | None = Field(default=None, gt=0)
    warmup: int | None = Field(default=None, ge=0)  # unmeasured first; None: see resolved_warmup
    cooldown: bool = False  # unmeasured requests after the measured ones, until the last measured ends

    @model_validator(mode="after")
    def _one_load_kind(self) -> Level:
        kinds = [self.concurrency is not None, self.rate is not None, self.trace is not None]
        if sum(kinds) != 1:
            raise ValueError(
                "set exactly one of 'concurrency' (closed loop), 'rate' (open loop) or 'trace' (replay)"
            )
        if self.requests is None and self.duration_s is None and self.trace is None:
            raise ValueError("set 'requests', 'duration_s' or both, so the level stops by itself")
        if self.trace is not None and (self.arrival != "poisson" or self.burstiness != 1.0 or self.ramp_s):
            raise ValueError(
                "a trace brings its own arrival times: 'arrival', 'burstiness' and 'ramp_s' do not apply"
            )
        if self.trace is not None and self.cooldown:
            raise ValueError(
                "'cooldown' does not apply to a trace: a replay sends the trace's requests as recorded, and "
                "there is nothing to send after them. Hint: remove 'cooldown'"
            )
        if self.concurrency is not None and self.max_concurrency is not None:
            raise ValueError(
                "'max_concurrency' caps open-loop levels ('rate', 'trace'); 'concurrency' is the cap"
            )
        # Checked by value (not by which keys were written) so a dumped scenario loads back unchanged.
        if self.concurrency is not None and (self.arrival != "poisson" or self.burstiness != 1.0):
            raise ValueError("'arrival' and 'burstiness' apply to open-loop levels ('rate') only")
        if self.arrival != "gamma" and self.burstiness != 1.0:
            raise ValueError("'burstiness' applies to 'arrival: gamma' only")
        return self

    @property
    def label(self) -> str:
        trace = trace_label(self.trace.path.name, self.trace.speedup) if self.trace is not None else None
        return load_label(self.concurrency, self.rate, self.arrival, trace=trace)

    @property
    def open_loop(self) -> bool:
        """True for a ``rate`` or ``trace`` level, False for a ``concurrency`` level."""
        return self.concurrency is None

    @property
    def measured_requests(self) -> int | None:
        """Measured requests the level aims for: ``requests``, raised to ``concurrency`` in closed loop (a
        level never measures fewer requests than it has users: with fewer, the measured requests all start
        in the first wave and the level never holds its concurrency). None: the level ends by duration only.

        >>> Level(concurrency=64, requests=4).measured_requests
        64
        """
        if self.requests is None:
            return None
        return max(self.requests, self.concurrency or 0)

    @property
    def resolved_warmup(self) -> int:
        """Warmup requests: ``warmup`` if set, else ``concurrency`` (one wave, closed loop) or
        ``ceil(rate)`` (about one second of arrivals, open loop); 0 for a trace."""
        if self.warmup is not None:
            return self.warmup
        if self.trace is not None:
            return 0  # a replay sends the trace as recorded
        if self.concurrency is not None:
            return self.concurrency
        assert self.rate is not None  # guaranteed by _one_load_kind
        return math.ceil(self.rate)


class Steps(_Strict):
    """Load values of a sweep: ``start``, then ``x * factor`` (or ``x + step``) while ``<= max``.
    Concurrency steps are rounded to integers and always grow by at least 1."""

    start: float = Field(gt=0)
    factor: float | None = Field(default=None, gt=1)
    step: float | None = Field(default=None, gt=0)
    max: float = Field(gt=0)

    @model_validator(mode="after")
    def _one_progression(self) -> Steps:
        if self.factor is not None and self.step is not None:
            raise ValueError("set 'factor' (geometric) or 'step' (arithmetic), not both")
        if self.max < self.start:
            raise ValueError(f"'max' ({self.max:g}) must be >= 'start' ({self.start:g})")
        return self

    def values(self, *, integer: bool) -> list[float]:
        """Every value of the progression (the factor defaults to 2).

        >>> Steps(start=1, max=10).values(integer=True)
        [1, 2, 4, 8]
        >>> Steps(start=1.5, factor=1.5, max=4).values(integer=True)
        [2, 3]
        """
        out: list[float] = []
        x = self.start
        while x <= self.max * (1 + 1e-9):
            v: float = max(round(x), 1) if integer else x
            if integer and v > self.max:
                break
            if not out or v > out[-1]:
                out.append(v)
            x = x + self.step if self.step is not None else x * (self.factor or 2.0)
        return out


class Sweep(_Strict):
    """Levels generated one at a time until the knee (see :mod:`tpsbench.load.sweep`): ``concurrency`` (closed
    loop) or ``rate`` (open loop) grows along its :class:`Steps` until a level breaks the scenario's SLO,
    fails more than ``max_error_rate`` of its measured requests, or raises output TPS by less than
    ``min_gain`` (a fraction) over the best level so far. ``requests`` per level defaults to
    ``max(20, 4 x concurrency)`` or ``max(20, ceil(10 x rate))`` unless ``duration_s`` is set."""

    concurrency: Steps | None = None
    rate: Steps | None = None
    arrival: Literal["poisson", "constant", "gamma"] = "poisson"
    requests: int | None = Field(default=None, ge=1)
    duration_s: float | None = Field(default=None, gt=0)
    warmup: int | None = Field(default=None, ge=0)
    cooldown: bool = False  # every level's (see Level)
    min_gain: float = Field(default=0.05, ge=0)
    max_error_rate: float = Field(default=0.0, ge=0, le=1)

    @model_validator(mode="after")
    def _one_axis(self) -> Sweep:
        if (self.concurrency is None) == (self.rate is None):
            raise ValueError("set exactly one of 'concurrency' (closed loop) or 'rate' (open loop) to sweep")
        if self.concurrency is not None and self.arrival != "poisson":
            raise ValueError("'arrival' applies to rate sweeps only")
        return self

    def level(self, value: float) -> Level:
        """The load level of one step of the sweep."""
        closed = self.concurrency is not None
        requests = self.requests
        if requests is None and self.duration_s is None:
            requests = max(20, 4 * int(value)) if closed else max(20, math.ceil(10 * value))
        load: dict[str, Any] = (
            {"concurrency": int(value)} if closed else {"rate": value, "arrival": self.arrival}
        )
        return Level.model_validate(
            load
            | {
                "requests": requests,
                "duration_s": self.duration_s,
                "warmup": self.warmup,
                "cooldown": self.cooldown,
            }
        )

    def values(self) -> list[float]:
        """The loads this sweep may visit, in order (it usually stops earlier)."""
        steps = self.concurrency or self.rate
        assert steps is not None  # guaranteed by _one_axis
        return steps.values(integer=self.concurrency is not None)


SloStat = Literal["mean", "p50", "p90", "p95", "p99"]
SloMetric = Literal["ttft_s", "tps_user", "tpot_s", "e2e_s", "itl_s"]


class Telemetry(_Strict):
    """Scrape Prometheus text metrics while each level runs (tpsbench/load/telemetry.py)."""

    enabled: bool = True
    # None: the endpoint's origin + /metrics. Several URLs (say the server and a DCGM exporter) are scraped
    # side by side; each sample keeps the URL it came from.
    urls: list[str] | None = None
    interval_s: float = Field(default=1.0, gt=0)
    timeout_s: float = Field(default=2.0, gt=0)  # one scrape; a slow /metrics never delays the load


class Gate(_Strict):
    thresholds: dict[str, float] = Field(default_factory=dict)  # e.g. {"tps_user_p50": 5} percent

    @field_validator("thresholds")
    @classmethod
    def _known_metrics(cls, v: dict[str, float]) -> dict[str, float]:
        """The gate's own rule (core/metricspec.py), so `validate` rejects what `gate` rejects."""
        return check_thresholds(v, "gate.thresholds")


class Repeat(_Strict):
    """Run the whole plan ``count`` times (``--repeat N``): repeat 0 runs every level in order, then
    ``cooldown_s`` of idle, then repeat 1, and so on; each repeat gets its own prompt nonce (no prompt
    cache between repeats) and the gate judges significance from the run-to-run variance."""

    count: int = Field(default=1, ge=1, le=100)
    cooldown_s: float = Field(default=0.0, ge=0, le=3600)

    @model_validator(mode="before")
    @classmethod
    def _count_alone(cls, v: Any) -> Any:
        return {"count": v} if isinstance(v, int) and not isinstance(v, bool) else v


class Scenario(_Strict):
    name: str | None = None
    endpoint: Endpoint = Field(default_factory=Endpoint)
    workload: Workload = Field(default_factory=Workload)
    # Fixed levels, or a sweep that generates them until the knee: exactly one of the two.
    load: Annotated[list[Level], Field(min_length=1)] | None = None
    sweep: Sweep | None = None
    slo: dict[SloMetric, dict[SloStat, float]] = Field(default_factory=dict)
    gpus: int | None = Field(default=None, ge=1)
    workers: int = Field(default=1, ge=1)
    gate: Gate = Field(default_factory=Gate)
    telemetry: Telemetry = Field(default_factory=Telemetry)
    reference: dict[str, Any] = Field(default_factory=dict)  # overrides of the reference model's parameters
    repeat: Repeat = Field(default_factory=Repeat)  # `repeat: 3` or `repeat: {count: 3, cooldown_s: 5}`
    report: Report = Field(default_factory=Report)  # marks to read the run against (config/report.py)
    # The fraction of a level's measured requests that may fail before `tpsbench run` exits 1.
    error_budget: float = Field(default_factory=lambda: DEFAULT_ERROR_BUDGET, ge=0, le=1)
    _source: SourceLines | None = PrivateAttr(default=None)  # see `source`

    @model_validator(mode="after")
    def _load_or_sweep(self) -> Scenario:
        if self.load is None and self.sweep is None:
            raise ValueError("set 'load' (a list of load levels) or 'sweep' (levels grown until the knee)")
        if self.sweep is not None and self.repeat.count > 1:
            raise ValueError(
                "repeat works on fixed load levels; a sweep picks its levels as it goes. Hint: run the sweep "
                "once, then repeat its levels with 'load'"
            )
        if self.load is not None and self.sweep is not None:
            raise ValueError("set 'load' (fixed levels) or 'sweep' (levels grown until the knee), not both")
        return self

    @model_validator(mode="after")
    def _cooldown_fits(self) -> Scenario:
        if self.workload.sessions is None:
            return self
        open_cooldown = any(lv.cooldown and lv.open_loop for lv in self.fixed_levels) or (
            self.sweep is not None and self.sweep.cooldown and self.sweep.rate is not None
        )
        if open_cooldown:
            raise ValueError(
                "'cooldown' with 'workload.sessions' applies to closed-loop levels ('concurrency') only: an "
                "open loop's sessions end on their own clock, so none marks the end of the measured ones"
            )
        return self

    @model_validator(mode="after")
    def _api_options(self) -> Scenario:
        api = self.endpoint.api
        if api not in ("messages", "responses"):
            return self
        sent = "max_tokens" if api == "messages" else "max_output_tokens"
        if self.workload.max_tokens_field != "max_tokens":
            raise ValueError(
                f"workload.max_tokens_field applies to the chat and completions APIs; api '{api}' always "
                f"sends '{sent}'"
            )
        if self.endpoint.continuous_usage:
            raise ValueError(
                f"endpoint.continuous_usage (vLLM's stream_options) applies to the chat and completions APIs "
                f"only, not to api '{api}'"
            )
        return self

    @property
    def fixed_levels(self) -> list[Level]:
        """The ``load`` levels; empty for a sweep, whose levels are generated while it runs."""
        return self.load or []

    @property
    def source(self) -> SourceLines:
        """Where the scenario's keys were written (:func:`tpsbench.config.loader.load_scenario` records it;
        a scenario built in code has no file or lines). Warnings use it:
        :func:`tpsbench.config.caveats.scenario_warnings`."""
        return self._source if self._source is not None else SourceLines("", {})

    def located(self, source: SourceLines) -> Scenario:
        """This scenario, recording where its keys were written (see :attr:`source`)."""
        self._source = source
        return self

    def __eq__(self, other: object) -> bool:  # where it was written is not part of a scenario's value
        if not isinstance(other, Scenario):
            return NotImplemented
        return type(self) is type(other) and self.__dict__ == other.__dict__

    def with_overrides(
        self,
        *,
        base_url: str | None = None,
        model: str | None = None,
        concurrency: list[int] | None = None,
        error_budget: float | None = None,
        repeat: int | None = None,
        unix_socket: str | None = None,
    ) -> Scenario:
        """A validated copy with command-line overrides applied (None leaves a value alone).

        ``concurrency`` replaces the whole ``load`` list (or the sweep) by closed-loop levels sized by one
        rule: level ``c`` measures ``requests = max(R, 4 x c)``, where R is the first level's (or the
        sweep's) ``requests`` (20 when it had none), keeps its ``duration_s`` (the level stops at whichever
        comes first) and ``cooldown``, and warms up with the default one wave of ``c`` requests. Raises
        :class:`ScenarioError` (file ``command line``) for invalid values.
        """
        data = self.model_dump()
        if base_url is not None:
            data["endpoint"]["base_url"] = base_url
        if model is not None:
            data["endpoint"]["model"] = model
        if unix_socket is not None:
            data["endpoint"]["unix_socket"] = unix_socket
        if error_budget is not None:
            data["error_budget"] = error_budget
        if repeat is not None:
            data["repeat"]["count"] = repeat
        if concurrency is not None:
            if not concurrency:
                raise ScenarioError(_CLI, None, "concurrency", "expected at least one concurrency level")
            first: Level | Sweep = self.load[0] if self.load else _some(self.sweep)
            data["sweep"] = None
            data["load"] = [
                {
                    "concurrency": c,
                    "requests": max(first.requests or OVERRIDE_MIN_REQUESTS, 4 * c),
                    "duration_s": first.duration_s,
                    "cooldown": first.cooldown,
                }
                for c in concurrency
            ]
        try:
            out = Scenario.model_validate(data)
        except ValidationError as e:
            raise ScenarioError.from_issues(issues_from_validation(e, None, _CLI, SCHEMA)) from None
        given: dict[tuple[str, ...], object] = {
            ("endpoint", "base_url"): base_url,
            ("endpoint", "model"): model,
            ("endpoint", "unix_socket"): unix_socket,
            ("error_budget",): error_budget,
            ("repeat", "count"): repeat,
            ("load",): concurrency,
            ("sweep",): concurrency,
        }
        return out.located(self.source.overriding([k for k, v in given.items() if v is not None]))


_CLI = COMMAND_LINE
OVERRIDE_MIN_REQUESTS = 20  # --concurrency levels measure max(first level's requests or this, 4 x c)
DEFAULT_ERROR_BUDGET = 0.01  # a level may fail this fraction of its measured requests (exit 0); see README


def _some(sweep: Sweep | None) -> Sweep:
    assert sweep is not None  # a scenario has load levels or a sweep
    return sweep


SCHEMA = SchemaHints(
    root=Scenario,
    # Sections of the file, to point at the right place when a key is written at the wrong level.
    sections={
        "endpoint": Endpoint,
        "workload": Workload,
        "endpoint.timeouts": Timeouts,
        "workload.dataset": Dataset,
        "workload.sessions": Sessions,
        "repeat": Repeat,
        "report": Report,
    },
    items={"load": Level, "report.marks": Mark},
)
