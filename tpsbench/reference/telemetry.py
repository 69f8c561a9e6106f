"""What the reference endpoint says about itself: Prometheus metrics, and its pace report with warnings.

``GET /metrics`` (:func:`prometheus_text`): the Prometheus text exposition (format 0.0.4, as
prometheus_client's ``generate_latest`` writes it) of vLLM's metric families, label ``model_name``:

- ``vllm:num_requests_running`` (gauge): requests in the engine's batch, decoding or prefilling;
- ``vllm:num_requests_waiting`` (gauge): requests queued for a slot, plus connections whose bytes wait in
  the admission queue to be parsed (``pending``: requests the server has but the engine does not know yet);
- ``vllm:kv_cache_usage_perc`` (gauge, 0-1): the simulator has no KV-cache capacity model, so this is the
  fraction of its ``max_batch`` sequence slots in use (running / max_batch), said so in its HELP;
- ``vllm:prompt_tokens_total``, ``vllm:generation_tokens_total`` (counters): tokens prefilled, committed;
- ``vllm:spec_decode_num_draft_tokens_total`` (counter): drafts verified, k per decoding sequence per step;
- ``vllm:spec_decode_num_accepted_tokens_total`` (counter): drafts accepted, the tokens a speculative step
  committed minus its one bonus token;
- ``vllm:request_success_total`` (counter): requests finished.

Counters run from the engine's start (never reset); a scrape formats a dozen numbers: its cost does not grow
with the tokens served.

``GET /pace`` (:func:`pace_report`): the engine's window stats (step lag, work, counters) with the HTTP
side's delivery lag and server-side TTFT, plus :func:`pace_warnings` of that window.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tpsbench.reference.api import MODEL_NAME
from tpsbench.reference.engine import Engine, LagStats

_LABEL = f'{{model_name="{MODEL_NAME}"}}'
_FAMILIES = (
    # (name, type, help)
    ("vllm:num_requests_running", "gauge", "Number of requests in model execution batches."),
    ("vllm:num_requests_waiting", "gauge", "Number of requests waiting to be processed."),
    (
        "vllm:kv_cache_usage_perc",
        "gauge",
        "KV-cache usage. 1 means 100 percent usage. "
        "Simulated: the fraction of max_batch sequence slots in use.",
    ),
    ("vllm:prompt_tokens_total", "counter", "Number of prefill tokens processed."),
    ("vllm:generation_tokens_total", "counter", "Number of generation tokens processed."),
    ("vllm:spec_decode_num_draft_tokens_total", "counter", "Number of draft tokens."),
    ("vllm:spec_decode_num_accepted_tokens_total", "counter", "Number of accepted tokens."),
    ("vllm:request_success_total", "counter", "Count of successfully processed requests."),
)
_TEMPLATE = "".join(
    f"# HELP {name} {help_}\n# TYPE {name} {kind}\n{name}{_LABEL} %s\n" for name, kind, help_ in _FAMILIES
)


def _num(x: float) -> str:
    """Prometheus sample values as prometheus_client writes them (ints as ``12.0``)."""
    return repr(float(x))


def prometheus_text(engine: Engine, pending: int = 0) -> bytes:
    """The ``/metrics`` body (see the module docstring); ``pending``: connections in the admission queue."""
    t = engine.totals
    running = engine.active
    return (
        _TEMPLATE
        % (
            _num(running),
            _num(engine.queued + pending),
            _num(running / engine.params.max_batch),
            _num(t.prompt_tokens),
            _num(t.generation_tokens),
            _num(t.draft_tokens),
            _num(t.accepted_tokens),
            _num(t.requests_finished),
        )
    ).encode()


def pace_report(
    engine: Engine, delivery: LagStats, ttft: LagStats, turns: LagStats | None = None
) -> dict[str, Any]:
    """The ``/pace`` window: ``engine`` (:meth:`Engine.stats`), ``delivery_lag_s`` (each chunk's write
    minus its step's planned end), ``server_ttft_s`` (the request's last byte read to its first token
    written), ``loop_turn_cpu_s`` (thread CPU of each event-loop turn less the step commits in it, see
    :class:`.admission.TurnMonitor`; None where the loop does not time its turns), ``warnings``."""
    report: dict[str, Any] = {
        "model": MODEL_NAME,
        "engine": engine.stats(),
        "delivery_lag_s": delivery.summary(),
        "server_ttft_s": ttft.summary(),
        "loop_turn_cpu_s": turns.summary() if turns is not None else None,
    }
    report["warnings"] = pace_warnings(report)
    return report


def pace_warnings(pace: Mapping[str, Any]) -> list[str]:
    """Warnings for a benchmark point from a ``/pace`` window: did the host, not the model, set the pace?

    - behind: the median step lag exceeds half a modelled step, or the worst exceeds 10 steps: the engine
      fell behind its schedule, so TPS/user and server TPS are understated.
    - jitter: the p99 delivery lag exceeds a modelled step (and 2 ms): ITL and TTFT tails are the host's.

    Either way the simulator needs more CPU than the host gives it (fewer streams, a quieter machine): a
    run's summary says so for the level (``reference_pace``).
    """
    engine = pace.get("engine") or {}
    step = engine.get("step_s_mean")
    lag = engine.get("lag_s") or {}
    delivery = pace.get("delivery_lag_s") or {}
    if not step or not lag.get("count"):
        return []
    out = []
    if lag["p50"] > 0.5 * step or lag["max"] > 10 * step:
        out.append(
            f"reference endpoint fell behind its schedule (step lag p50 {lag['p50'] * 1e3:.1f} ms, max "
            f"{lag['max'] * 1e3:.1f} ms, modelled step {step * 1e3:.2f} ms): TPS here is the host's"
        )
    p99 = delivery.get("p99")
    if p99 is not None and p99 > max(step, 0.002):
        out.append(
            f"reference endpoint delivery lag p99 {p99 * 1e3:.1f} ms exceeds a modelled step "
            f"({step * 1e3:.2f} ms): ITL and TTFT tails reflect the host"
        )
    return out
