"""Per-level summaries of request records, and the ``summary.json`` / ``summary.csv`` serializers.

Everything here is a pure function of records (plus the scenario's level, SLO and GPU count); file writing
is left to the caller, hyperfine style: ``path.write_bytes(to_json(summary))``. The layout is the contract
in ``docs/architecture.md``.

    >>> from tpsbench.config.scenario import Level
    >>> from tpsbench.core.record import RequestRecord, TokenSource
    >>> r = RequestRecord(request_id=0, level=0, send_ns=0, end_ns=2_000_000_000,
    ...                   chunk_ns=[1_000_000_000, 2_000_000_000], chunk_tokens=[1, 9], output_tokens=10,
    ...                   token_source=TokenSource.USAGE)
    >>> p = summarize_level([r], level_index=0, level=Level(concurrency=1, requests=1), slo={}, gpus=2)
    >>> p["output_tps"], p["output_tps_per_gpu"], p["tps_user"]["p50"]
    (5.0, 2.5, 9.0)
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

import tpsbench
from tpsbench.config.scenario import Level
from tpsbench.core.loadlabel import trace_label
from tpsbench.core.record import NS_PER_S, ErrorKind, RequestRecord, TokenSource
from tpsbench.results import definitions, files, metrics
from tpsbench.results.slo import Slo, check_slo, meets, request_meets_slo
from tpsbench.results.stats import describe, statistic
from tpsbench.results.telemetry import Sample, server_block

SCHEMA = files.SUMMARY_SCHEMA  # the version history is in results/files.py

# The metric blocks of a point, in output order. Each is stats.describe() over the measured requests.
POINT_METRICS: tuple[str, ...] = (
    "ttft_s",
    "tps_user",
    "tpot_s",
    "itl_s",
    "e2e_s",
    "tps_user_aiperf",
    "tpot_inferencex_s",
    "tps_user_inferencex",
    "tps_user_guidellm",
    "tokens_per_chunk",
    "output_tokens",
    "sched_lag_s",
    "queue_s",
)
# Blocks pooled from many values per request. Those values are correlated within a request, so a bootstrap
# that treats them as independent would give falsely narrow intervals: these blocks get no CI.
POOLED_METRICS: frozenset[str] = frozenset({"itl_s", "tokens_per_chunk"})

# Warning thresholds.
MIN_SAMPLES_P99 = 100  # below this p99 sits among the few largest values
UNSTABLE_CI_FRACTION = 0.10  # p50 CI wider than this fraction of p50
LATE_S = 0.010  # scheduling lag or event-loop lag p99 above this: the client fell behind
CPU_BOUND_PERCENT = 90.0  # client CPU, % of one core (the asyncio client is single-threaded)
STABILITY_METRICS: tuple[str, ...] = ("ttft_s", "tps_user")
SERVER_TOKENS_TOLERANCE = 0.02  # server-counted vs client-received generated tokens

_ANY_LEVEL = Level.model_validate({"concurrency": 1, "requests": 1})  # for the header of an empty CSV


def _values(rows: Sequence[Mapping[str, metrics.MetricValue]], key: str) -> list[float]:
    """The defined values of ``key`` over rows, list-valued metrics flattened."""
    out: list[float] = []
    for row in rows:
        v = row[key]
        if isinstance(v, list):
            out.extend(v)
        elif v is not None:
            out.append(v)
    return out


def _with_lists(
    m: Mapping[str, metrics.MetricValue], r: RequestRecord, names: Sequence[str]
) -> Mapping[str, metrics.MetricValue]:
    """``m`` (scalar metrics of ``r``) with the list metrics ``names`` added."""
    return {**m, **{k: metrics.list_metric(r, k) for k in names}} if names else m


def _pct(x: float) -> str:
    return f"{100 * x:.0f}%"


TURN_METRICS = ("ttft_s", "tps_user", "e2e_s")


def turn_breakdown(
    ok: Sequence[RequestRecord], rows: Sequence[Mapping[str, Any]], *, seed: int = 0
) -> list[dict[str, Any]] | None:
    """Multi-turn levels: one entry per turn index (0-based), in order, with ``turn``, ``n`` (successful
    measured requests of that turn), ``input_tokens`` (their mean prompt tokens) and a
    :func:`~tpsbench.results.stats.describe` block (with CIs) of each of :data:`TURN_METRICS` over them,
    so a prefix cache's effect on later turns is visible. None when no record has a turn.
    ``ok`` and ``rows`` are the level's successful measured records and their request metrics."""
    by: dict[int, list[int]] = {}
    for i, r in enumerate(ok):
        if r.turn is not None:
            by.setdefault(r.turn, []).append(i)
    if not by:
        return None
    out = []
    for turn in sorted(by):
        idx = by[turn]
        inputs = [n for i in idx if (n := ok[i].input_tokens) is not None]
        entry: dict[str, Any] = {
            "turn": turn,
            "n": len(idx),
            "input_tokens": sum(inputs) / len(inputs) if inputs else None,
        }
        for name in TURN_METRICS:
            entry[name] = describe(_values([rows[i] for i in idx], name), seed=seed)
        out.append(entry)
    return out


def client_bound_reasons(self_check: Mapping[str, Any] | None) -> list[str]:
    """Why the client looks saturated, from a point's ``self_check`` (empty list: it kept up).

    Client-side evidence only: scheduling lag p99 or event-loop lag p99 over 10 ms, or the CPU spent on
    successful streams (``cpu_percent_ok``: client CPU x the share of the level's requests that succeeded)
    >= 90% of one core. A closed loop re-sending failed requests at once burns CPU too; that says the
    server failed, not that the client cannot keep up, so it is not evidence.
    """
    check = self_check or {}
    reasons = []
    for key, label in (("sched_lag_p99_s", "scheduling lag"), ("loop_lag_p99_s", "event-loop lag")):
        v = check.get(key)
        if isinstance(v, int | float) and v > LATE_S:
            reasons.append(f"{label} p99 {1000 * v:.1f} ms > {1000 * LATE_S:.0f} ms")
    cpu = check.get("cpu_percent_ok", check.get("cpu_percent"))
    if isinstance(cpu, int | float) and cpu >= CPU_BOUND_PERCENT:
        reasons.append(f"client CPU on successful streams {cpu:.0f}% of a core")
    own = check.get("cpu_percent")
    if reasons and isinstance(own, int | float) and own < CPU_BOUND_PERCENT / 2:
        # a late loop that used little CPU was not busy: other processes had its core
        reasons.append(
            f"the client itself used only {own:.0f}% of a core: other processes took its time slices"
        )
    return reasons


# One general sentence per warning cause: the terminal prints each cause once, with the levels it applies
# to and each level's detail; summary.json keeps a full sentence per level in ``warnings`` and the causes
# with their details in ``warning_causes``.
WARNING_CAUSES: dict[str, str] = {
    "nothing_measured": "no measured requests: nothing to summarise. Hint: raise `requests` or "
    "`duration_s`, or let the run finish",
    "stopped": "the level stopped early because every request failed the same way. Hint: see the error "
    "below and the server's logs",
    "errors": "requests failed; latencies and token rates cover only the ones that succeeded. Hint: see "
    "`error_detail` in requests.jsonl and the server's logs, or lower the load",
    "interrupted": "interrupted: the level is incomplete, do not compare it. Hint: rerun it to completion",
    "short_outputs": "answers shorter than max_tokens: the workload's length was not honoured or, where a "
    "tokenizer counts the text, the text re-tokenizes into fewer tokens than were generated. Hint: the "
    "server may ignore `ignore_eos`/`min_tokens`; see `finish_reason` and the chunk count in requests.jsonl",
    "estimated_tokens": "token counts estimated from characters (the server reported no usage): token "
    "rates are approximate. Hint: `stream_options.include_usage`, or configure `endpoint.tokenizer`",
    "single_chunk": "answers in a single chunk have no TPS/user or TPOT. Hint: check that the endpoint "
    "streams, and that output_tokens is well above 1",
    "few_samples": f"under {MIN_SAMPLES_P99} successful requests: p99 is among the few largest values, not "
    f"a reliable tail. Hint: measure >= {MIN_SAMPLES_P99} requests per level (1,000 for a stable p99)",
    "unstable": f"the median's 95% CI is wider than {_pct(UNSTABLE_CI_FRACTION)} of the median. Hint: "
    "measure more requests, and check for other load on the client or the server",
    "low_concurrency": "requests in flight over the measured window under 90% of the concurrency on "
    "average: the level did not hold its load (without cooldown a closed loop drains at its end: nobody "
    "refills the batch after the last measured send). Hint: set `cooldown: true` on the level, or measure "
    "more requests per level",
    "server_tokens": "the server's token count and the client's differ: token rates may be off. Hint: "
    "check the token source (usage vs estimate), and whether other clients used the server",
    "client_bound": "the client could not keep up: timestamps are late (TTFT and inter-token latency "
    "inflated) and the offered load was lower than asked. Hint: more `workers`, or a lower load per worker",
    "reference_pace": "the bundled reference endpoint could not keep its model's schedule on this host over "
    "the measured window (its own pace report): these figures are partly the host's, not the model's. Hint: "
    "fewer streams, or a quieter machine (the simulator needs a core to itself)",
}
LOW_CONCURRENCY_FRACTION = 0.90  # achieved / target concurrency below this: the level did not hold its load


def _show_stat(name: str, value: float) -> str:
    """A statistic as people read it: times in ms, rates with no decimals."""
    return f"{1000 * value:,.1f} ms" if name.endswith("_s") else f"{value:,.0f}"


def _warnings(
    point: Mapping[str, Any],
    *,
    n_ok: int,
    n_cancelled: int,
    n_estimated: int,
    target_concurrency: int | None,
) -> list[tuple[str, str, str]]:
    """``(cause, detail, sentence)`` per warning: the cause (a key of :data:`WARNING_CAUSES`), this level's
    figures, and a sentence saying what is wrong, what it does to the numbers, and a hint."""
    out: list[tuple[str, str, str]] = []

    def add(cause: str, detail: str) -> None:
        general = WARNING_CAUSES[cause]
        out.append((cause, detail, f"{detail}: {general[0].upper()}{general[1:]}."))

    measured, check = point["measured"], point["self_check"]
    if check.get("stopped"):
        add("stopped", str(check["stopped"]))
    if measured == 0:
        add("nothing_measured", f"{point['requests']} sent, {point['warmup']} of them warmup")
        return out
    n_err = measured - n_ok
    if n_err:
        kinds = ", ".join(f"{k} {v}" for k, v in point["errors"].items())
        add("errors", f"{n_err} of {measured} failed: {kinds}")
    if n_cancelled or check.get("interrupted"):
        add("interrupted", f"{n_cancelled} requests cancelled")
    if point["short_outputs"]:
        add("short_outputs", f"{point['short_outputs']} of {n_ok} short")
    if n_estimated:
        add("estimated_tokens", f"{n_estimated} of {n_ok} estimated")
    no_speed = n_ok - point["tps_user"]["n"]
    if n_ok and no_speed:
        add("single_chunk", f"{no_speed} of {n_ok} in one chunk")
    if 0 < n_ok < MIN_SAMPLES_P99:
        add("few_samples", f"{n_ok} ok")
    unstable = []
    for name in STABILITY_METRICS:
        block = point[name]
        p50, ci = block["p50"], block["p50_ci"]
        if ci is not None and p50 and (width := (ci[1] - ci[0]) / abs(p50)) > UNSTABLE_CI_FRACTION:
            lo, hi = _show_stat(name, ci[0]), _show_stat(name, ci[1])
            unstable.append(f"{name} p50 {_show_stat(name, p50)}, CI {lo} to {hi}, {_pct(width)}")
    if unstable:
        add("unstable", "; ".join(unstable))
    in_flight = check.get("in_flight_mean")
    if (
        target_concurrency
        and isinstance(in_flight, int | float)
        and n_ok
        and in_flight < LOW_CONCURRENCY_FRACTION * target_concurrency
    ):
        add("low_concurrency", f"{in_flight:.1f} of {target_concurrency}")
    reasons = client_bound_reasons(check) or (
        ["the runner's self-check says so"] if check["client_bound"] else []
    )
    if reasons:
        add("client_bound", "; ".join(reasons))
    pace = check.get("simulator")
    if isinstance(pace, Mapping) and (notes := [str(w) for w in pace.get("warnings") or []]):
        add("reference_pace", "; ".join(notes))
    return out


def first_error(records: Sequence[RequestRecord], limit: int = 300) -> dict[str, Any] | None:
    """The level's first failure in send order (warmup included, cancellations not): its kind, HTTP status
    and the server's own words (``error_detail``, redacted by the client), cut to ``limit`` characters."""
    failed = [r for r in records if r.error is not None and r.error is not ErrorKind.CANCELLED]
    if not failed:
        return None
    r = min(failed, key=lambda r: (r.send_ns, r.request_id))
    detail = r.error_detail or ""
    assert r.error is not None
    return {
        "kind": r.error.value,
        "status": r.status,
        "detail": detail if len(detail) <= limit else detail[:limit] + "...",
    }


def summarize_level(
    records: Sequence[RequestRecord],
    *,
    level_index: int,
    level: Level,
    slo: Slo,
    gpus: int | None,
    self_check: dict[str, Any] | None = None,
    seed: int = 0,
    samples: Sequence[Sample] | None = None,
    telemetry_notes: Sequence[str] = (),
) -> dict[str, Any]:
    """One ``points[]`` entry of summary.json from the records of one level.

    Measured requests are the records neither warmup nor cooldown (:attr:`RequestRecord.measured`); ok
    ones are those without error. With ``window_s = (max(end_ns) - min(send_ns)) / 1e9`` over the measured
    requests (failed ones included; with the level's ``cooldown`` its load holds to the window's end):

    - ``output_tps`` = tokens the server delivered inside the window / window_s [tokens/s]: the sum of
      ``chunk_tokens[i]`` over every chunk with ``window start <= chunk_ns[i] <= window end`` of every ok
      record of the level, warmup and cooldown included. Counting by arrival time keeps the measure honest
      at the window's edges: tokens of a warmup or cooldown request streamed inside the window were served
      in it, and a server that works through queued warmup requests is not charged time for tokens it is
      not credited.
      ``output_tps_per_gpu`` = output_tps / gpus (None without gpus).
    - ``request_rate`` = ok measured requests / window_s [1/s]; ``error_rate`` = failed / measured.
    - ``goodput`` = ok measured requests meeting every SLO threshold (:func:`request_meets_slo`) /
      window_s [1/s]; ``slo_met`` = every ``slo[metric][stat]`` met by the level's distribution (tps_user:
      >=, latencies: <=). Both None when ``slo`` is empty.
    - metric blocks (:data:`POINT_METRICS`) = :func:`stats.describe` over the ok measured requests; ``itl_s``
      and ``tokens_per_chunk`` pool every gap/chunk of every request and carry no CI; ``sched_lag_s`` covers
      failed requests too (it measures the client).
    - the other TPS/user definitions (:mod:`.definitions`): per-request ones are blocks like ``tps_user``;
      ``tps_user_mlperf`` = 1 / ``tpot_inferencex_s`` p90 and ``tps_user_vllm`` = output_tps / concurrency
      (the level's, else ``in_flight_mean``); ``tps_user_definitions`` labels each with source and formula.
    - ``server`` = what the endpoint's Prometheus metrics said over the level
      (:func:`.telemetry.server_block`: generated tokens and their ratio to the client's, generated TPS
      beside ``output_tps``, running/waiting, KV-cache use, speculative acceptance), from the level's
      telemetry ``samples`` and the scraper's notes; None when telemetry was off.
    - ``errors`` = failed measured requests by :class:`ErrorKind`; ``token_sources`` = ok measured requests by
      :class:`TokenSource`; ``short_outputs`` = ok requests with fewer output tokens than requested;
      ``warmup`` / ``cooldown`` = the level's warmup and cooldown records; ``resent`` = measured requests
      sent a second time because their reused connection closed unanswered
      (``RequestRecord.resent``).
    - ``self_check`` = the runner's ``self_check`` dict (event-loop lag, CPU, ...) plus ``sched_lag_p99_s``
      (p99 of :func:`.metrics.dispatch_lag_s`: queue waits under ``max_concurrency`` left out),
      ``achieved_concurrency`` = sum(end_ns - send_ns) of the measured requests / 1e9 / window_s (mean
      measured requests in flight, Little's law: it ramps with them at both edges, cooldown or not),
      ``in_flight_mean`` = sum over every record (warmup, cooldown) of its time in flight inside the window
      / window_s (what the server was held at, counted as ``output_tps`` counts tokens; the warning reads
      it), ``cpu_percent_ok`` = ``cpu_percent`` x ok records / records of the level (CPU spent on successful
      streams) and ``client_bound`` (see :func:`client_bound_reasons`); caller values win.
    - ``first_error`` = the level's first failure: kind, status and the server's words (:func:`first_error`).
    - ``warnings`` = sentences with a reason and a hint (a level stopped for failing, errors, interruption,
      short outputs, estimated token counts, one-chunk answers, n < 100, median CI wider than 10%, requests
      in flight under 90% of the concurrency, client falling behind); ``warning_causes`` = the same as
      ``{cause, detail}`` (causes: :data:`WARNING_CAUSES`).

    Raises ValueError when a record belongs to another level or the SLO names an unknown metric/statistic.
    """
    check_slo(slo)
    other = sorted({r.level for r in records} - {level_index})
    if other:
        raise ValueError(f"summarize_level(level_index={level_index}) got records of level(s) {other}")
    measured = [r for r in records if r.measured]
    ok = [r for r in measured if r.ok]
    # scalars per request; the list metrics (per gap, per chunk) are pooled one at a time below
    rows = [metrics.request_metrics(r, lists=False) for r in ok]

    window_s: float | None = None
    if measured:
        window_s = (max(r.end_ns for r in measured) - min(r.send_ns for r in measured)) / NS_PER_S
        window_s = window_s if window_s > 0 else None

    def per_s(count: float) -> float | None:
        return count / window_s if window_s else None

    blocks = {
        name: describe(
            metrics.pooled(ok, name) if name in metrics.LIST_KEYS else _values(rows, name),
            ci=name not in POOLED_METRICS,
            seed=seed,
        )
        for name in POINT_METRICS
        if name not in ("sched_lag_s", "queue_s")
    }
    # facts of every measured request, failed ones included (how late the client sent it)
    lags = [lag for r in measured if (lag := metrics.sched_lag_s(r)) is not None]
    blocks["sched_lag_s"] = describe(lags, seed=seed)
    blocks["queue_s"] = describe([q for r in measured if (q := metrics.queue_s(r)) is not None], seed=seed)

    output_tps: float | None = None
    if measured:
        t_start = min(r.send_ns for r in measured)
        t_end = max(r.end_ns for r in measured)
        delivered = sum(
            k
            for r in records
            if r.ok
            for t, k in zip(r.chunk_ns, r.chunk_tokens, strict=False)
            if t_start <= t <= t_end
        )
        output_tps = per_s(delivered)
    goodput: float | None = None
    slo_met: bool | None = None
    if slo:
        listed = [k for k in slo if k in metrics.LIST_KEYS]  # itl_s: judged on each request's own gaps
        goodput = per_s(
            sum(request_meets_slo(_with_lists(m, r, listed), slo) for r, m in zip(ok, rows, strict=True))
        )
        slo_met = all(
            meets(metric, blocks[metric][stat], threshold)
            for metric, stats in slo.items()
            for stat, threshold in stats.items()
        )
    errors = Counter(r.error.value for r in measured if r.error is not None)
    sources = Counter(r.token_source.value for r in ok)
    short = sum(
        1
        for r, m in zip(ok, rows, strict=True)
        if r.requested_output_tokens is not None
        and isinstance(n := m["output_tokens"], int | float)
        and n < r.requested_output_tokens
    )

    point: dict[str, Any] = {
        "level": level_index,
        "concurrency": level.concurrency,
        "rate": level.rate,
        "arrival": level.arrival if level.rate is not None else None,
        "trace": trace_label(level.trace.path.name, level.trace.speedup) if level.trace is not None else None,
        "ramp_s": level.ramp_s or None,
        "max_concurrency": level.max_concurrency,
        "requests": len(records),
        "measured": len(measured),
        "warmup": sum(1 for r in records if r.warmup),
        "cooldown": sum(1 for r in records if r.cooldown),
        "ok": len(ok),
        "errors": dict(sorted(errors.items())),
        "window_s": window_s,
        **{name: blocks[name] for name in POINT_METRICS},
        "output_tps": output_tps,
        "output_tps_per_gpu": output_tps / gpus if output_tps is not None and gpus else None,
        "request_rate": per_s(len(ok)),
        "error_rate": (len(measured) - len(ok)) / len(measured) if measured else None,
        "goodput": goodput,
        "slo_met": slo_met,
        "token_sources": dict(sorted(sources.items())),
        "short_outputs": short,
        "resent": sum(1 for r in measured if r.resent),
        "self_check": None,
    }
    # The runner reports what only it can see (event-loop lag, CPU); the record-derived health figures and
    # the verdict are added here so every point carries the contract's self_check fields.
    check: dict[str, Any] = dict(self_check or {})
    # the client's own lateness, queue waits under max_concurrency left out (metrics.dispatch_lag_s)
    dispatch = [lag for r in measured if (lag := metrics.dispatch_lag_s(r)) is not None]
    check.setdefault("sched_lag_p99_s", statistic(dispatch, "p99") if dispatch else None)
    busy_s = sum(r.end_ns - r.send_ns for r in measured) / NS_PER_S
    check.setdefault("achieved_concurrency", busy_s / window_s if window_s else None)
    t0, t1 = (min(r.send_ns for r in measured), max(r.end_ns for r in measured)) if window_s else (0, 0)
    inside_s = sum(max(0, min(r.end_ns, t1) - max(r.send_ns, t0)) for r in records) / NS_PER_S
    check.setdefault("in_flight_mean", inside_s / window_s if window_s else None)
    cpu = check.get("cpu_percent")
    if isinstance(cpu, int | float) and "cpu_percent_ok" not in check:
        check["cpu_percent_ok"] = cpu * sum(r.ok for r in records) / len(records) if records else None
    # With no successful stream there are no timestamps to be late: the flag needs one (see above).
    check["client_bound"] = bool(ok) and (
        bool(check.get("client_bound")) or bool(client_bound_reasons(check))
    )
    point["self_check"] = check
    point["first_error"] = first_error(records)
    point["tps_user_mlperf"] = definitions.tps_user_mlperf(blocks["tpot_inferencex_s"]["p90"])
    # open loop: what the server held, over the requests output_tps counts (definitions.tps_user_vllm)
    point["tps_user_vllm"] = definitions.tps_user_vllm(
        output_tps, level.concurrency or check["in_flight_mean"]
    )
    point["tps_user_definitions"] = definitions.table(point)
    point["by_turn"] = turn_breakdown(ok, rows, seed=seed)
    point["server"] = (
        server_block(samples or [], records, client_output_tps=output_tps, notes=telemetry_notes)
        if samples is not None or telemetry_notes
        else None
    )
    coded = _warnings(
        point,
        n_ok=len(ok),
        n_cancelled=errors.get(ErrorKind.CANCELLED.value, 0),
        n_estimated=sources.get(TokenSource.ESTIMATE.value, 0),
        target_concurrency=level.concurrency,
    )
    ratio = point["server"]["tokens_ratio"] if point["server"] else None
    if ratio is not None and abs(ratio - 1) > SERVER_TOKENS_TOLERANCE:
        srv = point["server"]
        detail = (
            f"server counted {srv['generated_tokens']:,.0f} generated tokens, client received "
            f"{srv['client_tokens']:,.0f} ({_pct(ratio - 1)} apart)"
        )
        coded.append(("server_tokens", detail, f"{detail}: {WARNING_CAUSES['server_tokens']}."))
    point["warnings"] = [sentence for _, _, sentence in coded]
    point["warning_causes"] = [{"cause": cause, "detail": detail} for cause, detail, _ in coded]
    return point


def summarize_run(
    points: list[dict[str, Any]],
    *,
    run_info: dict[str, Any],
    slo: Slo,
    capacity: dict[str, Any] | None = None,
    repeats: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The whole summary.json document: ``{schema, tool, run, slo, points}``, plus ``capacity`` (a sweep's
    knee, see :func:`tpsbench.load.sweep.capacity`) and ``repeats`` (a run of several repeats, see
    :mod:`tpsbench.results.repeats`) when given. Without repeats the document is schema 1 (history in
    results/files.py), so every earlier reader still reads a single run."""
    check_slo(slo)
    doc: dict[str, Any] = {
        "schema": SCHEMA if repeats is not None else 1,
        "tool": {"name": "tpsbench", "version": tpsbench.__version__},
        "run": run_info,
        "slo": {metric: dict(stats) for metric, stats in slo.items()},
        "points": points,
    }
    if capacity is not None:
        doc["capacity"] = capacity
    if repeats is not None:
        doc["repeats"] = repeats
    return doc


def _finite(value: Any) -> Any:
    """``value`` with every non-finite float replaced by None (strict JSON has no NaN or Infinity)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def to_json(summary: Mapping[str, Any]) -> bytes:
    """summary.json bytes: UTF-8, indented, strict JSON.

    A NaN or infinity (say, in a self-check figure) is written as null rather than failing at the end of a
    long run or producing a file that strict JSON readers reject.
    """
    doc = _finite(summary)
    return (
        json.dumps(doc, indent=2, ensure_ascii=False, allow_nan=False, default=_json_default).encode() + b"\n"
    )


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):  # a numpy scalar in a caller-supplied dict (self_check, run_info)
        return _finite(o.item())
    raise TypeError(f"summary value of type {type(o).__name__} is not JSON serializable: {o!r}")


def _flatten(prefix: str, value: Any, out: dict[str, Any]) -> None:
    if isinstance(value, Mapping):
        for k, v in value.items():
            _flatten(f"{prefix}_{k}", v, out)
    elif prefix.endswith("_ci"):
        lo, hi = value if value is not None else (None, None)
        out[f"{prefix}_lo"], out[f"{prefix}_hi"] = lo, hi
    elif prefix == "warnings":
        out[prefix] = " | ".join(value)
    elif isinstance(value, list):
        out[prefix] = json.dumps(value)
    else:
        out[prefix] = value


def _flat_point(point: Mapping[str, Any]) -> dict[str, Any]:
    """One CSV row: nested blocks become ``<metric>_<stat>``, CIs ``<metric>_<stat>_ci_lo/hi``."""
    # Every error kind and token source gets a column, so CSVs of different runs have the same columns.
    fixed: dict[str, Any] = {
        "errors": {k.value: 0 for k in ErrorKind} | dict(point.get("errors") or {}),
        "token_sources": {s.value: 0 for s in TokenSource} | dict(point.get("token_sources") or {}),
    }
    out: dict[str, Any] = {}
    for key, value in point.items():
        _flatten(key, fixed.get(key, value), out)
    return out


def to_csv(summary: Mapping[str, Any]) -> bytes:
    """summary.csv bytes: one row per point, flat columns (``ttft_s_p50``, ``tps_user_mean_ci_lo``, ...).

    None is written as an empty cell and lists (warnings aside, joined with `` | ``) as JSON.
    """
    rows = [_flat_point(p) for p in summary["points"]]
    if not rows:  # still write the header, so an interrupted run's CSV loads as an empty table
        empty = summarize_level([], level_index=0, level=_ANY_LEVEL, slo={}, gpus=None)
        rows, columns = [], list(_flat_point(empty))
    else:
        columns = list(dict.fromkeys(k for row in rows for k in row))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if row.get(k) is None else row[k] for k in columns})
    return buf.getvalue().encode()
