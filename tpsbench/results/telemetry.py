"""What the server said about itself: raw Prometheus samples, and per-level figures derived from them.

A :class:`Sample` is one line of one scrape (``load/telemetry.py`` takes them), on the run's monotonic clock
(the records' clock), so server series line up with the load timeline. The derivations are pure functions
of samples. Known families, by engine (unknown ones stay raw in ``telemetry.jsonl``):

- generated tokens (a counter): vLLM ``vllm:generation_tokens_total``, SGLang
  ``sglang:generation_tokens_total``, llama.cpp ``llamacpp:tokens_predicted_total``, TGI
  ``tgi_request_generated_tokens_sum`` (a histogram's sum);
- requests running / waiting (gauges): ``vllm:num_requests_running|waiting``, ``sglang:num_running_reqs``,
  ``sglang:num_queue_reqs``, ``llamacpp:requests_processing|deferred``, ``tgi_batch_current_size``,
  ``tgi_queue_size``;
- KV-cache use, a fraction 0-1 (gauge): ``vllm:kv_cache_usage_perc`` (older ``vllm:gpu_cache_usage_perc``),
  ``sglang:token_usage``, ``llamacpp:kv_cache_usage_ratio``;
- speculative decoding (counters): ``*:spec_decode_num_draft_tokens_total`` and
  ``*:spec_decode_num_accepted_tokens_total`` (vLLM, llama.cpp).

TensorRT-LLM (``trtllm:``/``trtllm_``) and DCGM (``DCGM_FI_*``) families are recognised as such and kept raw.

Formulas, over the level's samples (scraped from before its first request to after its last):

- a counter's increase = the sum of its non-negative steps (a drop is a reset: the next value counts from 0),
  summed over label sets;
- ``generated_tokens`` = increase over the level (a scrape just before its first request and one just after
  its last bracket it); ``generated_tps`` = generated_tokens / the level's active time (first t_send to last
  t_end), beside the client's tokens over the same time and the client's ``output_tps``;
- ``running`` / ``waiting`` / ``kv_cache_use`` = mean and max over the level's scrapes (summed over
  label sets);
- ``spec_acceptance`` = accepted draft tokens / draft tokens over the level.

    >>> s = [Sample(0, 0, "u", "vllm:generation_tokens_total", {}, 100.0),
    ...      Sample(2_000_000_000, 0, "u", "vllm:generation_tokens_total", {}, 300.0)]
    >>> counter_increase(s, "vllm:generation_tokens_total")
    200.0
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

from tpsbench.core.record import NS_PER_S, RequestRecord
from tpsbench.core.redact import redact_url

GENERATED = (
    "vllm:generation_tokens_total",
    "sglang:generation_tokens_total",
    "llamacpp:tokens_predicted_total",
    "tgi_request_generated_tokens_sum",
)
RUNNING = (
    "vllm:num_requests_running",
    "sglang:num_running_reqs",
    "llamacpp:requests_processing",
    "tgi_batch_current_size",
)
WAITING = (
    "vllm:num_requests_waiting",
    "sglang:num_queue_reqs",
    "llamacpp:requests_deferred",
    "tgi_queue_size",
)
KV_CACHE = (
    "vllm:kv_cache_usage_perc",
    "vllm:gpu_cache_usage_perc",
    "sglang:token_usage",
    "llamacpp:kv_cache_usage_ratio",
)
SPEC_DRAFT = ("vllm:spec_decode_num_draft_tokens_total", "llamacpp:spec_decode_num_draft_tokens_total")
SPEC_ACCEPTED = (
    "vllm:spec_decode_num_accepted_tokens_total",
    "llamacpp:spec_decode_num_accepted_tokens_total",
)
ENGINES: tuple[tuple[str, str], ...] = (
    ("vllm:", "vLLM"),
    ("sglang:", "SGLang"),
    ("llamacpp:", "llama.cpp"),
    ("tgi_", "TGI"),
    ("trtllm:", "TensorRT-LLM"),
    ("trtllm_", "TensorRT-LLM"),
    ("DCGM_", "DCGM"),
)
KNOWN: frozenset[str] = frozenset(GENERATED + RUNNING + WAITING + KV_CACHE + SPEC_DRAFT + SPEC_ACCEPTED)


@dataclass(frozen=True, slots=True)
class Sample:
    """One sample of one scrape: when (run clock ns), which level, from which URL, name, labels, value."""

    t_ns: int
    level: int
    url: str
    name: str
    labels: Mapping[str, str]
    value: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "t_ns": self.t_ns,
            "level": self.level,
            "url": redact_url(self.url),  # written to telemetry.jsonl: never with credentials
            "name": self.name,
            "labels": dict(self.labels),
            "value": self.value,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Sample:
        return cls(
            int(d["t_ns"]),
            int(d["level"]),
            str(d["url"]),
            str(d["name"]),
            dict(d["labels"]),
            float(d["value"]),
        )


def _series(
    samples: Iterable[Sample], name: str
) -> dict[tuple[tuple[str, str], ...], list[tuple[int, float]]]:
    out: dict[tuple[tuple[str, str], ...], list[tuple[int, float]]] = defaultdict(list)
    for s in samples:
        if s.name == name:
            out[(("url", s.url), *sorted(s.labels.items()))].append((s.t_ns, s.value))
    for points in out.values():
        points.sort()
    return out


def counter_increase(samples: Iterable[Sample], name: str) -> float | None:
    """How much counter ``name`` grew over the scrapes (summed over label sets and URLs): the sum of its
    non-negative steps, a drop counting as a reset (the new value is the growth since). None when the
    counter has fewer than two samples in any series."""
    series = _series(samples, name)
    if not series or any(len(p) < 2 for p in series.values()):
        return None
    return sum(
        vb - va if vb >= va else vb for points in series.values() for (_, va), (_, vb) in pairwise(points)
    )


def _first_counter(
    samples: Sequence[Sample], names: Sequence[str], *args: int | None
) -> tuple[str, float] | None:
    for name in names:
        v = counter_increase(samples, name, *args)
        if v is not None:
            return name, v
    return None


def gauge_stats(samples: Iterable[Sample], names: Sequence[str]) -> dict[str, Any] | None:
    """``{name, mean, max, n}`` of the first gauge of ``names`` present: per scrape time, summed over label
    sets; then mean and max over scrapes. None when no gauge is present."""
    for name in names:
        by_t: dict[int, float] = defaultdict(float)
        for s in samples:
            if s.name == name:
                by_t[s.t_ns] += s.value
        if by_t:
            values = list(by_t.values())
            return {"name": name, "mean": sum(values) / len(values), "max": max(values), "n": len(values)}
    return None


def engines(samples: Iterable[Sample]) -> list[str]:
    """The engines (and exporters) whose families appear, by name prefix."""
    seen = {label for s in samples for prefix, label in ENGINES if s.name.startswith(prefix)}
    return sorted(seen)


def server_block(
    samples: Sequence[Sample],
    records: Sequence[RequestRecord],
    *,
    client_output_tps: float | None,
    notes: Sequence[str] = (),
) -> dict[str, Any]:
    """A point's ``server`` block from the level's samples and records (formulas: the module docstring).

    ``client_tokens`` = every token the client received at this level (every chunk of every record, warmup
    and failed ones included), the count the server's counter should match; ``tokens_ratio`` = server /
    client tokens. The level's ``active_s`` = max(t_end) - min(t_send) over all its records;
    ``generated_tps`` = server tokens / active_s and ``client_tps`` = client tokens / active_s (their ratio
    is ``tokens_ratio``); ``output_tps`` (the client's, over the measured window, warmup and ramp-down left
    out) is shown beside them with ``output_tps_ratio`` = generated_tps / output_tps.
    """
    active_s = (max(r.end_ns for r in records) - min(r.send_ns for r in records)) / NS_PER_S if records else 0
    client_tokens = float(sum(sum(r.chunk_tokens) for r in records))
    gen = _first_counter(samples, GENERATED)
    generated_tps = gen[1] / active_s if gen and active_s > 0 else None
    draft = _first_counter(samples, SPEC_DRAFT)
    accepted = _first_counter(samples, SPEC_ACCEPTED)
    times = sorted({s.t_ns for s in samples})
    return {
        "engines": engines(samples),
        "scrapes": len(times),
        "samples": len(samples),
        "span_s": (times[-1] - times[0]) / NS_PER_S if len(times) > 1 else None,
        "generated_tokens_metric": gen[0] if gen else None,
        "generated_tokens": gen[1] if gen else None,
        "client_tokens": client_tokens,
        "tokens_ratio": gen[1] / client_tokens if gen and client_tokens else None,
        "active_s": active_s or None,
        "generated_tps": generated_tps,
        "client_tps": client_tokens / active_s if active_s > 0 else None,
        "output_tps": client_output_tps,
        "output_tps_ratio": generated_tps / client_output_tps
        if generated_tps and client_output_tps
        else None,
        "running": gauge_stats(samples, RUNNING),
        "waiting": gauge_stats(samples, WAITING),
        "kv_cache_use": gauge_stats(samples, KV_CACHE),
        "spec_draft_tokens": draft[1] if draft else None,
        "spec_accepted_tokens": accepted[1] if accepted else None,
        "spec_acceptance": accepted[1] / draft[1] if draft and accepted and draft[1] else None,
        "unknown_families": sorted({s.name for s in samples} - KNOWN)[:50],
        "notes": list(notes),
    }


def series(
    samples: Iterable[Sample], names: Sequence[str], *, rate: bool
) -> tuple[str, list[tuple[int, float]]] | None:
    """A chart series of the first of ``names`` present: (name, [(t_ns, value)]) summed over label sets;
    with ``rate``, a counter's per-second increase between consecutive scrapes (resets as in
    :func:`counter_increase`), stamped at the later scrape."""
    samples = list(samples)
    for name in names:
        by_t: dict[int, float] = defaultdict(float)
        for s in samples:
            if s.name == name:
                by_t[s.t_ns] += s.value
        if not by_t:
            continue
        points = sorted(by_t.items())
        if not rate:
            return name, points
        out = []
        for (ta, va), (tb, vb) in pairwise(points):
            step = vb - va if vb >= va else vb
            out.append((tb, step * NS_PER_S / (tb - ta)))
        return name, out
    return None
