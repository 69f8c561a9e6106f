"""AIPerf (ai-dynamo/aiperf) artifacts: ``profile_export_raw.jsonl`` (``--export-level raw``: every SSE
response of every request with its ``perf_ns``), else ``profile_export.jsonl`` (per-request metrics), with
``profile_export_aiperf.json`` (the aggregates, kept verbatim) beside them.

From the raw file (preferred): t_send = ``start_perf_ns``; each response carrying generated text is a
token chunk at its ``perf_ns`` (AIPerf's own chunk); t_end = the last response's ``perf_ns`` (the
usage event or ``[DONE]``; AIPerf's request latency ends at the last response with content, t_last);
n = ``usage.completion_tokens`` of the stream, else AIPerf's ``output_token_count``. Derived: each
chunk's token count, its share of ceil(chars/4) scaled to n.
The times are AIPerf's ``time.perf_counter_ns`` (CLOCK_MONOTONIC on Linux), the pace server's clock too.

From the records file alone: t_send = ``request_start_ns``; the first chunk at TTFT, the next ones at the
cumulative ``inter_chunk_latency``; t_end = t_send + ``request_latency``. Derived: the chunk times are
rebuilt from those durations, and every chunk carries n / chunks tokens (AIPerf does not export per-chunk
counts).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tpsbench.client.tokens import rescale
from tpsbench.core.estimate import estimate_tokens
from tpsbench.core.record import ErrorKind, RequestRecord, TokenSource
from tpsbench.importers.imported import Imported, ImportedLevel, ImportFormatError, level_of

RAW = "profile_export_raw.jsonl"
RECORDS = "profile_export.jsonl"
AGGREGATE = "profile_export_aiperf.json"
MS = 1_000_000


def detect(path: Path) -> bool:
    """An AIPerf artifact directory, or one of its export files."""
    if path.is_dir():
        return any((path / f).is_file() for f in (RAW, RECORDS))
    return path.name in (RAW, RECORDS, AGGREGATE)


def _lines(path: Path) -> list[dict[str, Any]]:
    out = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            d = json.loads(line)
        except json.JSONDecodeError as e:
            raise ImportFormatError(f"{path}:{lineno}: not JSON ({e.msg})") from None
        if not isinstance(d, dict):
            raise ImportFormatError(f"{path}:{lineno}: expected a JSON object per line")
        out.append(d)
    return out


def _text_and_usage(response: dict[str, Any]) -> tuple[str, int | None]:
    """Generated text and usage.completion_tokens in one AIPerf response (its SSE packets)."""
    text, usage = "", None
    for packet in response.get("packets") or []:
        value = packet.get("value") if isinstance(packet, dict) else None
        if not isinstance(value, str) or value.strip() == "[DONE]":
            continue
        try:
            event = json.loads(value)
        except json.JSONDecodeError:
            continue
        if not isinstance(event, dict):
            continue
        for choice in event.get("choices") or []:
            delta = choice.get("delta") or {}
            for key in ("content", "reasoning_content", "reasoning"):
                if isinstance(delta.get(key), str):
                    text += delta[key]
            if isinstance(choice.get("text"), str):
                text += choice["text"]
        u = event.get("usage")
        if isinstance(u, dict) and isinstance(u.get("completion_tokens"), int):
            usage = u["completion_tokens"]
    return text, usage


def _metric(m: dict[str, Any], name: str) -> Any:
    v = m.get(name)
    return v.get("value") if isinstance(v, dict) else None


def _from_raw(line: dict[str, Any], counts: dict[str, int], where: str) -> tuple[RequestRecord, str]:
    meta = line.get("metadata") or {}
    rid = str(meta.get("x_request_id") or "")
    try:
        send = int(line["start_perf_ns"])
        responses = list(line.get("responses") or [])
    except (KeyError, TypeError, ValueError):
        raise ImportFormatError(f"{where}: expected 'start_perf_ns' and 'responses'") from None
    times, texts, usage = [], [], None
    for resp in responses:
        text, u = _text_and_usage(resp)
        usage = u if u is not None else usage
        if text:
            times.append(int(resp["perf_ns"]))
            texts.append(text)
    end = int(responses[-1]["perf_ns"]) if responses else send
    n = usage if usage is not None else counts.get(rid)
    status = line.get("status")
    error = None
    if status is not None and status != 200:
        error = (
            ErrorKind.HTTP_5XX
            if status >= 500
            else ErrorKind.HTTP_429
            if status == 429
            else ErrorKind.HTTP_4XX
        )
    elif line.get("error") or meta.get("was_cancelled"):
        error = ErrorKind.OTHER
    elif not times:
        error = ErrorKind.NO_TOKENS
    shares = [float(estimate_tokens(t)) for t in texts]
    record = RequestRecord(
        request_id=0,
        level=0,
        send_ns=send,
        end_ns=end,
        status=status,
        error=error,
        error_detail=str(line.get("error"))[:200] if line.get("error") else None,
        chunk_ns=times,
        chunk_tokens=rescale(shares, n) if n is not None and error is None else shares,
        output_tokens=n if error is None else None,
        token_source=TokenSource.USAGE if usage is not None else TokenSource.ESTIMATE,
        requested_output_tokens=(line.get("payload") or {}).get("max_completion_tokens"),
    )
    return record, rid


def _from_record(line: dict[str, Any], where: str) -> tuple[RequestRecord, str]:
    meta, m = line.get("metadata") or {}, line.get("metrics") or {}
    rid = str(meta.get("x_request_id") or "")
    ttft, latency, n = (
        _metric(m, "time_to_first_token"),
        _metric(m, "request_latency"),
        _metric(m, "output_token_count"),
    )
    gaps = _metric(m, "inter_chunk_latency") or []
    try:
        send = int(meta["request_start_ns"])
    except (KeyError, TypeError, ValueError):
        raise ImportFormatError(f"{where}: expected metadata.request_start_ns") from None
    if line.get("error") or ttft is None or latency is None or n is None:
        return RequestRecord(0, 0, send, send + int((latency or 0) * MS), error=ErrorKind.OTHER), rid
    times = [send + round(ttft * MS)]
    for g in gaps:
        times.append(times[-1] + round(g * MS))
    record = RequestRecord(
        request_id=0,
        level=0,
        send_ns=send,
        end_ns=send + round(latency * MS),
        status=200,
        chunk_ns=times,
        chunk_tokens=[n / len(times)] * len(times),
        output_tokens=int(n),
        token_source=TokenSource.USAGE,
    )
    return record, rid


def read(path: Path) -> Imported:
    """An AIPerf artifact directory (or one of its files) as an :class:`Imported`."""
    d = path if path.is_dir() else path.parent
    agg_path = d / AGGREGATE
    aggregates: dict[str, Any] = (
        json.loads(agg_path.read_text(encoding="utf-8")) if agg_path.is_file() else {}
    )
    records_lines = _lines(d / RECORDS) if (d / RECORDS).is_file() else []
    counts = {
        str((x.get("metadata") or {}).get("x_request_id")): int(c)
        for x in records_lines
        if (c := _metric(x.get("metrics") or {}, "output_token_count")) is not None
    }
    files: list[str] = []
    if (d / RAW).is_file():
        built = [_from_raw(x, counts, f"{d / RAW}:{i}") for i, x in enumerate(_lines(d / RAW), 1)]
        kind, files = "aiperf raw records (profile_export_raw.jsonl)", [RAW]
        derived = ["chunk_tokens: each chunk's share of ceil(chars/4), scaled to the request's usage"]
        clock = "aiperf time.perf_counter_ns (CLOCK_MONOTONIC)"
    elif records_lines:
        built = [_from_record(x, f"{d / RECORDS}:{i}") for i, x in enumerate(records_lines, 1)]
        kind, files = "aiperf per-request metrics (profile_export.jsonl)", [RECORDS]
        derived = [
            "chunk_ns: rebuilt from time_to_first_token and inter_chunk_latency",
            "chunk_tokens: n / chunks for every chunk (aiperf exports no per-chunk counts)",
        ]
        clock = "aiperf request_start_ns (wall clock) plus its durations"
    else:
        raise ImportFormatError(f"{d}: no {RAW} or {RECORDS}: not an aiperf artifact directory")
    if agg_path.is_file():
        files.append(AGGREGATE)
    cfg = aggregates.get("input_config") or {}
    phase: dict[str, Any] = next((p for p in cfg.get("phases") or [] if p.get("kind") == "profiling"), {})
    rate = phase.get("request_rate") or phase.get("rate")
    level = level_of(phase.get("concurrency"), float(rate) if rate else None, len(built))
    prompts = (cfg.get("datasets") or [{}])[0].get("prompts") or {}
    models = (cfg.get("models") or {}).get("items") or [{}]
    urls = (cfg.get("endpoint") or {}).get("urls") or [None]
    return Imported(
        tool="aiperf",
        format=kind,
        files=files,
        levels=[ImportedLevel(level, [r for r, _ in built], [rid for _, rid in built])],
        derived=derived,
        aggregates=aggregates,
        model=models[0].get("name"),
        endpoint=urls[0],
        isl=(prompts.get("isl") or {}).get("mean"),
        osl=(prompts.get("osl") or {}).get("mean"),
        clock=clock,
    )
