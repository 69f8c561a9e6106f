"""inference-perf (kubernetes-sigs/inference-perf) ``per_request_lifecycle_metrics.json``
(``inference_perf/reportgen/base.py``): a list of ``{start_time, end_time, request, response, info,
error}``, times from ``time.perf_counter()`` [s]. For a streamed request ``info.response_metrics`` holds
``chunk_times`` (content-bearing chunks only) and ``response_chunks`` (their raw JSON, one per time),
``output_tokens`` (the client tokenizer's count) and ``server_usage``. With ``per_request_fields:
{computed_metrics: true}`` each successful entry also carries inference-perf's own per-request numbers
(``computed_metrics``: request_latency, time_to_first_token, time_per_output_token, ...); they are not read
(tpsbench recomputes), and tests/test_importers.py checks the recomputed ones against them.

Per request: t_send = ``start_time``, token chunks at ``chunk_times``, t_end = ``end_time``; n = the
server's ``usage.completion_tokens`` when present, else ``output_tokens``. Derived: each chunk's token
count, its share of ceil(chars/4) of its content (from ``response_chunks``), scaled to n. The sibling
``summary_lifecycle_metrics.json`` (inference-perf's aggregates), when present, is kept verbatim.

The load: inference-perf 0.7 writes no stage id into per-request entries, so its file is one level unless
the entries carry ``stage_id``; the level's concurrency (``load.type: concurrent``) or rate comes from the
sibling ``config.yaml`` inference-perf writes beside its reports, when it has one stage per level read.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tpsbench.client.tokens import rescale
from tpsbench.core.estimate import estimate_tokens
from tpsbench.core.record import ErrorKind, RequestRecord, TokenSource
from tpsbench.importers.imported import Imported, ImportedLevel, ImportFormatError, level_of

PER_REQUEST = "per_request_lifecycle_metrics.json"
SUMMARY = "summary_lifecycle_metrics.json"
CONFIG = "config.yaml"  # inference-perf's dump of the run's configuration, beside its reports
S = 1_000_000_000


def detect(path: Path) -> bool:
    """A ``per_request_lifecycle_metrics.json`` (or a directory holding one)."""
    return (path / PER_REQUEST).is_file() if path.is_dir() else path.name == PER_REQUEST


def _chunk_text(raw: object) -> str:
    try:
        event = json.loads(raw) if isinstance(raw, str) else None
    except json.JSONDecodeError:
        return ""
    if not isinstance(event, dict):
        return ""
    text = ""
    for choice in event.get("choices") or []:
        delta = choice.get("delta") or {}
        text += str(delta.get("content") or delta.get("reasoning_content") or "") + str(
            choice.get("text") or ""
        )
    return text


def _record(e: dict[str, Any], where: str) -> RequestRecord:
    try:
        send, end = round(float(e["start_time"]) * S), round(float(e["end_time"]) * S)
    except (KeyError, TypeError, ValueError):
        raise ImportFormatError(f"{where}: expected numeric 'start_time' and 'end_time'") from None
    info = e.get("info") or {}
    rm = info.get("response_metrics") or {}
    times = [round(float(t) * S) for t in rm.get("chunk_times") or []]
    usage = (rm.get("server_usage") or {}).get("completion_tokens")
    n = usage if isinstance(usage, int) else rm.get("output_tokens")
    if e.get("error") or not times or not n:
        detail = json.dumps(e.get("error"))[:200] if e.get("error") else "no streamed chunks"
        return RequestRecord(0, 0, send, end, error=ErrorKind.OTHER, error_detail=detail)
    texts = rm.get("response_chunks") or []
    shares = (
        [float(max(estimate_tokens(_chunk_text(t)), 0)) for t in texts] if len(texts) == len(times) else []
    )
    if not shares or sum(shares) == 0:
        shares = [1.0] * len(times)
    return RequestRecord(
        request_id=0,
        level=int(e.get("stage_id") or 0),
        send_ns=send,
        end_ns=end,
        status=200,
        chunk_ns=times,
        chunk_tokens=rescale(shares, int(n)),
        output_tokens=int(n),
        token_source=TokenSource.USAGE if isinstance(usage, int) else TokenSource.TOKENIZER,
        input_tokens=info.get("input_tokens"),
    )


def _stage_loads(config: Path) -> list[tuple[int | None, float | None]]:
    """(concurrency, rate) of each stage of inference-perf's ``config.yaml``; [] when absent or unreadable."""
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    try:
        doc = YAML(typ="safe").load(config.read_text(encoding="utf-8")) if config.is_file() else None
    except (YAMLError, OSError, UnicodeDecodeError):
        return []
    load = doc.get("load") if isinstance(doc, dict) else None
    if not isinstance(load, dict):
        return []
    stages = load.get("stages")
    if not isinstance(stages, list) or not all(isinstance(st, dict) for st in stages):
        return []
    if load.get("type") == "concurrent":
        return [(c if isinstance(c := st.get("concurrency_level"), int) else None, None) for st in stages]
    return [(None, float(r) if isinstance(r := st.get("rate"), int | float) else None) for st in stages]


def read(path: Path) -> Imported:
    """inference-perf per-request lifecycle metrics as an :class:`Imported` (one level per stage)."""
    file = path / PER_REQUEST if path.is_dir() else path
    try:
        doc = json.loads(file.read_text(encoding="utf-8"))
    except (ValueError, OSError) as exc:
        raise ImportFormatError(f"{file}: not a readable JSON file ({exc})") from None
    if not isinstance(doc, list):
        raise ImportFormatError(f"{file}: expected a list of per-request lifecycle metrics")
    by_stage: dict[int, list[RequestRecord]] = {}
    for i, e in enumerate(doc):
        if not isinstance(e, dict):
            raise ImportFormatError(f"{file}: item {i} is not an object")
        r = _record(e, f"{file}: item {i}")
        by_stage.setdefault(int(e.get("stage_id") or 0), []).append(r)
    summary = file.parent / SUMMARY
    aggregates = json.loads(summary.read_text(encoding="utf-8")) if summary.is_file() else {}
    loads = _stage_loads(file.parent / CONFIG)
    levels = []
    for stage, recs in sorted(by_stage.items()):
        recs.sort(key=lambda r: r.send_ns)
        known = len(loads) == len(by_stage) and 0 <= stage < len(loads)
        concurrency, rate = loads[stage] if known else (None, None)
        level = level_of(concurrency, rate, len(recs))
        levels.append(ImportedLevel(level, recs, [str(j) for j in range(len(recs))]))
    osl = [r.output_tokens for lv in levels for r in lv.records if r.output_tokens]
    isl = [r.input_tokens for lv in levels for r in lv.records if r.input_tokens]
    return Imported(
        tool="inference-perf",
        format="inference-perf per_request_lifecycle_metrics.json",
        files=[file.name] + [f for f in (SUMMARY, CONFIG) if (file.parent / f).is_file()],
        levels=levels,
        derived=[
            "chunk_tokens: each chunk's share of ceil(chars/4) of its content, scaled to the request's count",
            f"load: from inference-perf's {CONFIG}"
            if len(loads) == len(by_stage)
            else "load: inference-perf's per-request file does not say the stage's rate or concurrency",
        ],
        aggregates=aggregates,
        isl=sum(isl) / len(isl) if isl else None,
        osl=sum(osl) / len(osl) if osl else None,
        clock="inference-perf time.perf_counter() (seconds)",
    )
