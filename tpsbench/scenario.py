"""Scenario files: what to load, how hard, against which endpoint.

A scenario is validated completely before any request is sent. See ``scenarios/*.yaml`` for examples and
the README for every field.

    >>> s = Scenario.model_validate({"load": [{"concurrency": 4, "requests": 20}]})
    >>> s.load[0].concurrency
    4
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Timeouts(_Strict):
    connect_s: float = Field(10.0, gt=0)
    first_token_s: float = Field(120.0, gt=0)  # until the first byte of the streamed body
    request_s: float = Field(600.0, gt=0)  # the whole request, first byte of the request to end of stream


class Endpoint(_Strict):
    base_url: str | None = None  # None: the bundled reference endpoint, started and stopped by tpsbench
    api: Literal["chat", "completions"] = "chat"
    model: str | None = None  # None: ask /v1/models for the first model
    api_key_env: str | None = None  # the NAME of the environment variable; its value is never stored
    headers: dict[str, str] = Field(default_factory=dict)
    timeouts: Timeouts = Field(default_factory=Timeouts)
    transport: Literal["aiohttp", "httpx"] = "aiohttp"
    continuous_usage: bool = False  # ask for per-chunk usage (vLLM's stream_options.continuous_usage_stats)
    extra_body: dict[str, Any] = Field(default_factory=dict)  # merged into every request body


class Distribution(_Strict):
    """A token count drawn per request from a normal distribution, rounded and clipped to [min, max]."""

    mean: float = Field(gt=0)
    std: float = Field(0.0, ge=0)
    min: int = Field(1, ge=1)
    max: int | None = None


TokenCount = int | Distribution


class Workload(_Strict):
    input_tokens: TokenCount = 1000
    output_tokens: TokenCount = 1000
    seed: int = 0
    prompts_file: Path | None = None  # JSONL; relative paths are relative to the scenario file
    ignore_eos: bool = True  # send ignore_eos so the server generates exactly max_tokens
    min_tokens: bool = True  # send min_tokens = max_tokens (servers that ignore ignore_eos honour this)
    max_tokens_field: Literal["max_tokens", "max_completion_tokens"] = "max_tokens"
    unique_prompts: bool = True  # a unique prefix per request so prompt caches cannot flatter a run


class Level(_Strict):
    """One load point: closed loop (``concurrency``) or open loop (``rate``)."""

    concurrency: int | None = Field(None, ge=1)
    rate: float | None = Field(None, gt=0)  # requests per second
    arrival: Literal["poisson", "constant", "gamma"] = "poisson"
    burstiness: float = Field(1.0, gt=0)  # gamma shape; 1 = poisson, <1 burstier, >1 smoother
    requests: int | None = Field(None, ge=1)  # measured requests (warmup excluded)
    duration_s: float | None = Field(None, gt=0)  # measured window; the level stops at whichever comes first
    warmup: int | None = Field(None, ge=0)  # unmeasured requests first; None: concurrency (closed) / ceil(rate)

    @model_validator(mode="after")
    def _one_load_kind(self) -> Level:
        if (self.concurrency is None) == (self.rate is None):
            raise ValueError("set exactly one of 'concurrency' (closed loop) or 'rate' (open loop)")
        if self.requests is None and self.duration_s is None:
            raise ValueError("set 'requests', 'duration_s' or both, so the level stops by itself")
        return self

    @property
    def label(self) -> str:
        return f"c={self.concurrency}" if self.concurrency is not None else f"rate={self.rate:g}/s"


SloStat = Literal["mean", "p50", "p90", "p95", "p99"]
SloMetric = Literal["ttft_s", "tps_user", "tpot_s", "e2e_s", "itl_s"]


class Gate(_Strict):
    thresholds: dict[str, float] = Field(default_factory=dict)  # e.g. {"tps_user_p50": 5} percent


class Scenario(_Strict):
    name: str | None = None
    endpoint: Endpoint = Field(default_factory=Endpoint)
    workload: Workload = Field(default_factory=Workload)
    load: list[Level] = Field(min_length=1)
    slo: dict[SloMetric, dict[SloStat, float]] = Field(default_factory=dict)
    gpus: int | None = Field(None, ge=1)
    workers: int = Field(1, ge=1)
    gate: Gate = Field(default_factory=Gate)
    reference: dict[str, Any] = Field(default_factory=dict)  # overrides of the reference model's parameters
