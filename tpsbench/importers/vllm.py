"""``vllm bench serve --save-result --save-detailed`` JSON (vllm-project/vllm ``vllm/benchmarks/serve.py``):
the aggregates (``mean_ttft_ms``, ``output_throughput``, ...) plus, per request, ``ttfts`` [s], ``itls``
(the gaps between streamed chunks [s]), ``input_lens``, ``output_lens``, ``errors`` and, in recent
versions (0.33 writes both), ``start_times`` (``time.perf_counter()`` [s]) and ``latencies`` [s].

Per request: t_send = ``start_times[i]`` (else the previous request's send, 0 for the first: derived);
t_first = t_send + ttft; each later chunk at the cumulative ``itls``; t_end = t_send + ``latencies[i]``
(vLLM's latency ends at the last chunk with choices, so t_end = t_last; without ``latencies``: t_last,
derived); n = ``output_lens[i]``. Derived: every chunk carries n / chunks tokens (vLLM saves only the
whole ``generated_texts``). Concurrency is ``max_concurrency``; a finite ``request_rate`` makes an
open-loop level.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from tpsbench.core.record import ErrorKind, RequestRecord, TokenSource
from tpsbench.importers.imported import Imported, ImportedLevel, ImportFormatError, level_of

S = 1_000_000_000
PER_REQUEST = (
    "input_lens", "output_lens", "ttfts", "itls", "generated_texts", "errors", "start_times", "latencies",
    "queue_times", "server_queue_times", "server_ttfts",
)  # fmt: skip


def detect(path: Path) -> bool:
    """A JSON file with per-request ``ttfts`` and ``itls`` lists."""
    if not path.is_file() or path.suffix != ".json":
        return False
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, OSError):
        return False
    return isinstance(doc, dict) and isinstance(doc.get("ttfts"), list) and isinstance(doc.get("itls"), list)


def read(path: Path) -> Imported:
    """A vLLM ``bench serve`` detailed result as an :class:`Imported`."""
    try:
        doc: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, OSError) as e:
        raise ImportFormatError(f"{path}: not a readable JSON file ({e})") from None
    ttfts, itls, outs = doc.get("ttfts"), doc.get("itls"), doc.get("output_lens")
    if not isinstance(ttfts, list) or not isinstance(itls, list) or not isinstance(outs, list):
        raise ImportFormatError(
            f"{path}: expected per-request 'ttfts', 'itls' and 'output_lens' (--save-detailed)"
        )
    if not len(ttfts) == len(itls) == len(outs):
        raise ImportFormatError(f"{path}: 'ttfts', 'itls' and 'output_lens' differ in length")
    starts = doc.get("start_times") if isinstance(doc.get("start_times"), list) else None
    lats = doc.get("latencies")
    lats = lats if isinstance(lats, list) and len(lats) == len(ttfts) else None
    errors = doc.get("errors") or [""] * len(ttfts)
    ins = doc.get("input_lens") or [None] * len(ttfts)
    records: list[RequestRecord] = []
    t = 0
    for i, (ttft, gaps, n) in enumerate(zip(ttfts, itls, outs, strict=True)):
        send = round(float(starts[i]) * S) if starts else t
        if errors[i] or not ttft or not n:
            records.append(
                RequestRecord(0, 0, send, send, error=ErrorKind.OTHER, error_detail=str(errors[i])[:200])
            )
            continue
        times = [send + round(float(ttft) * S)]
        for g in gaps or []:
            times.append(times[-1] + round(float(g) * S))
        lat = lats[i] if lats else None
        end = send + round(float(lat) * S) if isinstance(lat, int | float) and lat > 0 else times[-1]
        records.append(
            RequestRecord(
                request_id=0,
                level=0,
                send_ns=send,
                end_ns=max(end, times[-1]),
                status=200,
                chunk_ns=times,
                chunk_tokens=[n / len(times)] * len(times),
                output_tokens=int(n),
                token_source=TokenSource.USAGE,
                input_tokens=ins[i],
            )
        )
        t = send
    rate = doc.get("request_rate")
    rate_f = (
        float(rate) if isinstance(rate, int | float) or (isinstance(rate, str) and rate != "inf") else None
    )
    rate_f = rate_f if rate_f is not None and math.isfinite(rate_f) else None
    level = level_of(
        doc.get("max_concurrency"), rate_f if not doc.get("max_concurrency") else None, len(records)
    )
    ok_in = [x for x in ins if isinstance(x, int)]
    ok_out = [x for x in outs if isinstance(x, int) and x]
    derived = ["chunk_tokens: output_lens / chunks for every chunk"]
    if not lats:
        derived.append("end_ns: the last chunk (no per-request latencies in this file)")
    if not starts:
        derived.append("send_ns: no start_times in this file; requests laid end to end from 0")
    return Imported(
        tool="vllm",
        format="vllm bench serve --save-detailed",
        files=[path.name],
        levels=[ImportedLevel(level, records, [str(i) for i in range(len(records))])],
        derived=derived,
        aggregates={k: v for k, v in doc.items() if k not in PER_REQUEST},
        model=doc.get("model_id"),
        endpoint=None,
        isl=sum(ok_in) / len(ok_in) if ok_in else None,
        osl=sum(ok_out) / len(ok_out) if ok_out else None,
        clock="vllm time.perf_counter() (seconds)" if starts else "relative (no start_times)",
    )
