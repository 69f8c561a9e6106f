"""Every TPS/user definition the field publishes, from the same records, each labelled with its source.

Harnesses disagree on "tokens per second per user" by their formula, not by their clocks. tpsbench's own
``tps_user`` is Artificial Analysis's output speed; the others are computed beside it so a number quoted
from another tool can be reproduced and compared. Per-request definitions are functions of one record in
:mod:`tpsbench.results.metrics` (their point value is the median); the point-level ones are here.

- ``tps_user``: Artificial Analysis output speed (tpsbench's default), per request:
  (n - n_first) / (t_last - t_first).
- ``tps_user_aiperf``: AIPerf output token throughput per user, per request: 1 / ITL with
  ITL = (latency - TTFT) / (OSL - 1).
- ``tps_user_inferencex``: InferenceX / TensorRT-LLM interactivity, per request: 1000 / TPOT_ms with
  TPOT = (e2e - TTFT) / (OSL - 1).
- ``tps_user_mlperf``: MLPerf Endpoints tps_per_user, per point: 1000 / TPOT_ms p90 (TPOT as InferenceX).
- ``tps_user_vllm``: vLLM sweep Pareto "per user", per point: output throughput / concurrency.
- ``tps_user_guidellm``: GuideLLM / LLMPerf output tokens per second, per request: OSL / (t_end - t_send).

    >>> tps_user_mlperf(0.02), tps_user_vllm(800.0, 8)
    (50.0, 100.0)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal


@dataclass(frozen=True, slots=True)
class Definition:
    """One published TPS/user definition: its summary key, who publishes it, its grain and formula."""

    key: str
    source: str
    per: Literal["request", "point"]
    formula: str


DEFINITIONS: tuple[Definition, ...] = (
    Definition(
        "tps_user",
        "Artificial Analysis output speed (tpsbench default)",
        "request",
        "(n - n_first) / (t_last - t_first), median",
    ),
    Definition(
        "tps_user_aiperf",
        "AIPerf output token throughput per user",
        "request",
        "1 / ITL, ITL = (latency - TTFT) / (OSL - 1), median",
    ),
    Definition(
        "tps_user_inferencex",
        "InferenceX / TensorRT-LLM interactivity",
        "request",
        "1000 / TPOT_ms, TPOT = (e2e - TTFT) / (OSL - 1), median",
    ),
    Definition(
        "tps_user_mlperf",
        "MLPerf Endpoints tps_per_user",
        "point",
        "1000 / TPOT_ms p90, TPOT = (e2e - TTFT) / (OSL - 1)",
    ),
    Definition(
        "tps_user_vllm",
        "vLLM sweep Pareto per user",
        "point",
        "output throughput / concurrency",
    ),
    Definition(
        "tps_user_guidellm",
        "GuideLLM / LLMPerf output tokens per second",
        "request",
        "OSL / (t_end - t_send), TTFT included, median",
    ),
)
KEYS: tuple[str, ...] = tuple(d.key for d in DEFINITIONS)
POINT_KEYS: tuple[str, ...] = tuple(d.key for d in DEFINITIONS if d.per == "point")


def tps_user_mlperf(tpot_p90_s: float | None) -> float | None:
    """MLPerf Endpoints tps_per_user [tokens/s]: 1000 / TPOT_ms p90 = 1 / p90 of
    :func:`tpsbench.results.metrics.tpot_inferencex_s` over the point's requests. None without a p90."""
    return 1 / tpot_p90_s if tpot_p90_s else None


def tps_user_vllm(output_tps: float | None, concurrency: float | None) -> float | None:
    """vLLM sweep Pareto "per user" [tokens/s]: output throughput / concurrency (``vllm bench sweep
    plot_pareto``: ``output_throughput`` / the run's ``max_concurrency``). Closed loop: the level's
    concurrency. Open loop, which sets none: the requests in flight, on average, over the window
    (``self_check.in_flight_mean``), counted over the same requests as ``output_tps`` counts tokens (warmup
    and cooldown ones inside the window too), so the ratio is one request's share of the throughput (the
    measured requests alone, ``achieved_concurrency``, would divide every request's tokens among fewer).
    vLLM's plot falls back to a result's ``request_rate`` or its peak in flight, neither a mean concurrency.
    None when either is missing or zero."""
    if output_tps is None or not concurrency:
        return None
    return output_tps / concurrency


def table(point: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The point's ``tps_user_definitions`` block: ``{key: {source, per, formula, value}}``, the value
    being the median of a per-request definition's block or the point-level number."""
    out: dict[str, dict[str, Any]] = {}
    for d in DEFINITIONS:
        v = point.get(d.key)
        value = v.get("p50") if isinstance(v, Mapping) else v
        out[d.key] = {"source": d.source, "per": d.per, "formula": d.formula, "value": value}
    return out
