"""GuideLLM (vllm-project/guidellm) ``benchmarks.json``: one tpsbench level per ``benchmarks[]`` entry,
one record per ``requests.successful[]`` (and ``errored[]``, ``incomplete[]``) request, the benchmark's
``metrics`` kept verbatim as the source aggregates.

Per request, from ``info.timings`` (GuideLLM's wall clock, ``time.time()`` seconds): t_send =
``request_start``, t_first = ``first_token_iteration``, t_last = ``last_token_iteration``, t_end =
``request_end``; n = ``output_tokens``; chunks = ``token_iterations``. GuideLLM keeps no time or size of
the chunks in between, so both are derived: the middle chunks are spread evenly between t_first and
t_last and every chunk carries n / chunks tokens. What that leaves exact: TTFT, e2e, the
GuideLLM/LLMPerf, AIPerf and InferenceX TPS/user definitions (they need only n, t_first, t_last, t_end);
the Artificial Analysis one needs n_first, here n / chunks.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tpsbench.core.record import ErrorKind, RequestRecord, TokenSource
from tpsbench.importers.imported import Imported, ImportedLevel, ImportFormatError, level_of

S = 1_000_000_000


def detect(path: Path) -> bool:
    """A JSON file with ``benchmarks[].requests.successful``."""
    if not path.is_file() or path.suffix != ".json":
        return False
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, OSError):
        return False
    benches = doc.get("benchmarks") if isinstance(doc, dict) else None
    if not isinstance(benches, list) or not benches or not isinstance(benches[0], dict):
        return False
    return "successful" in (benches[0].get("requests") or {})


def _ns(t: Any) -> int:
    return round(float(t) * S)


def _record(req: dict[str, Any], status: str, where: str) -> RequestRecord:
    timings = (req.get("info") or {}).get("timings") or {}
    try:
        send = _ns(timings.get("request_start") or req["request_start_time"])
        end = _ns(timings.get("request_end") or req["request_end_time"])
    except (KeyError, TypeError, ValueError):
        raise ImportFormatError(f"{where}: expected info.timings.request_start and request_end") from None
    first, last = timings.get("first_token_iteration"), timings.get("last_token_iteration")
    n, k = req.get("output_tokens"), int(timings.get("token_iterations") or 0)
    if status != "successful" or first is None or last is None or not n or k < 1:
        kind = ErrorKind.CANCELLED if status == "incomplete" else ErrorKind.OTHER
        detail = str((req.get("info") or {}).get("error") or status)[:200]
        return RequestRecord(0, 0, send, end, error=kind, error_detail=detail)
    t0, t1 = _ns(first), _ns(last)
    times = [t0] if k == 1 else [t0 + round((t1 - t0) * i / (k - 1)) for i in range(k)]
    return RequestRecord(
        request_id=0,
        level=0,
        send_ns=send,
        end_ns=end,
        status=200,
        chunk_ns=times,
        chunk_tokens=[n / k] * k,
        output_tokens=int(n),
        token_source=TokenSource.USAGE,
        input_tokens=req.get("prompt_tokens"),
    )


def read(path: Path) -> Imported:
    """A GuideLLM ``benchmarks.json`` as an :class:`Imported`."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, OSError) as e:
        raise ImportFormatError(f"{path}: not a readable JSON file ({e})") from None
    levels, aggregates = [], {}
    model = endpoint = None
    for i, b in enumerate(doc.get("benchmarks") or []):
        reqs = b.get("requests") or {}
        built: list[tuple[RequestRecord, str]] = []
        for status in ("successful", "errored", "incomplete"):
            for j, req in enumerate(reqs.get(status) or []):
                built.append(
                    (
                        _record(req, status, f"{path}: benchmarks[{i}].requests.{status}[{j}]"),
                        str(req.get("request_id")),
                    )
                )
        built.sort(key=lambda x: x[0].send_ns)
        cfg = b.get("config") or {}
        strategy = cfg.get("strategy") or {}
        backend = cfg.get("backend") or {}
        model, endpoint = backend.get("model") or model, backend.get("target") or endpoint
        level = level_of(
            strategy.get("streams") or strategy.get("max_concurrency"), strategy.get("rate"), len(built)
        )
        levels.append(ImportedLevel(level, [r for r, _ in built], [sid for _, sid in built]))
        aggregates[f"benchmarks[{i}]"] = {
            "strategy": strategy,
            "metrics": b.get("metrics"),
            "duration": b.get("duration"),
        }
    if not levels:
        raise ImportFormatError(f"{path}: no benchmarks[]: not a GuideLLM benchmarks.json")
    osl = [r.output_tokens for lv in levels for r in lv.records if r.output_tokens]
    isl = [r.input_tokens for lv in levels for r in lv.records if r.input_tokens]
    return Imported(
        tool="guidellm",
        format="guidellm benchmarks.json",
        files=[path.name],
        levels=levels,
        derived=[
            "chunk_ns: the chunks between first_token_iteration and last_token_iteration spread evenly",
            "chunk_tokens: output_tokens / token_iterations for every chunk",
        ],
        aggregates={"metadata": doc.get("metadata"), **aggregates},
        model=model,
        endpoint=endpoint,
        isl=sum(isl) / len(isl) if isl else None,
        osl=sum(osl) / len(osl) if osl else None,
        clock="guidellm time.time() (wall clock, seconds)",
    )
