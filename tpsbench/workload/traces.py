"""Recorded traces to replay: when each request was sent, and how long its prompt and answer were.

    >>> import pathlib, tempfile
    >>> f = pathlib.Path(tempfile.mkdtemp()) / "t.csv"
    >>> _ = f.write_text("time_s,input_tokens,output_tokens\\n0.5,10,4\\n1.5,20,8\\n")
    >>> from tpsbench.config.scenario import Trace
    >>> [(r.offset_s, r.input_tokens) for r in read_trace(Trace(path=f, format="plain", speedup=2))]
    [(0.0, 10), (0.5, 20)]

Formats (``load[i].trace.format``):

- ``mooncake``: JSONL of ``{"timestamp": ms, "input_length", "output_length", "hash_ids": [...]}``. Each
  hash id names one ``block_tokens`` block of the prompt (512 in Mooncake's traces); equal ids are equal
  blocks, so requests whose ids start alike share exactly that prefix.
- ``azure``: the Azure LLM inference trace CSV: ``TIMESTAMP`` (``2023-11-16 18:15:46.6805900``),
  ``ContextTokens``, ``GeneratedTokens``.
- ``plain``: a CSV with a header, or JSONL, of ``time_s``, ``input_tokens``, ``output_tokens``.

Time is the trace's: ``t = timestamp - first timestamp`` (seconds). Rows are sorted by ``t`` (stable); the
window keeps ``start_s <= t < start_s + duration_s``; the replay offset of a kept row is
``(t - start_s) / speedup``, so the first kept request goes out at the level's start if ``t == start_s``.

Prompts (:func:`trace_prompts`) are made of blocks: block ``h`` is the same random text wherever it
occurs (seeded by ``workload.seed``, the run's nonce with ``unique_prompts``, and ``h``), so a server's
prefix cache can reuse exactly the blocks the trace says are shared; the last block of a prompt is cut to
the row's input length. Rows without hash ids (azure, plain) get blocks of their own (nothing shared).
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from tpsbench.config.scenario import Api, ScenarioError, ScenarioIssue, Trace, Workload
from tpsbench.workload.prompts import PromptSpec, random_text
from tpsbench.workload.tokenizer import Tokenizer

__all__ = ["TraceError", "TraceRequest", "read_trace", "trace_prompts"]

_MAX_REPORTED = 20
_COLUMNS = {
    "mooncake": ("timestamp", "input_length", "output_length"),
    "azure": ("TIMESTAMP", "ContextTokens", "GeneratedTokens"),
    "plain": ("time_s", "input_tokens", "output_tokens"),
}
_BLOCK, _OWN = 8, 9  # seed purposes (prompts.py uses 1-6, datasets.py 7)


class TraceError(ScenarioError):
    """A trace file that cannot be replayed: ``file:line: field: message`` per bad row."""


@dataclass(frozen=True, slots=True)
class TraceRequest:
    index: int  # 0-based data row of the file
    offset_s: float  # when to send it, seconds after the level's start (window and speedup applied)
    input_tokens: int
    output_tokens: int
    hash_ids: tuple[int, ...] | None  # mooncake: one id per block of the prompt


def read_trace(trace: Trace) -> list[TraceRequest]:
    """The requests of the trace's window, in time order (see the module docstring).

    Raises :class:`TraceError` for an unreadable file, malformed rows, or an empty window.
    """
    file = str(trace.path)
    try:
        text = Path(trace.path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise TraceError(file, None, "", f"cannot read trace file: {e}") from None
    rows: list[tuple[float, int, int, int, tuple[int, ...] | None]] = []
    issues: list[ScenarioIssue] = []
    names = _COLUMNS[trace.format]
    for line, obj in _rows(file, text, trace.format, names):
        try:
            t, n_in, n_out, ids = _row(obj, trace.format, names)
        except _RowError as e:
            issues.append(ScenarioIssue(file, line, e.field, e.message))
            continue
        rows.append((t, len(rows) + len(issues), n_in, n_out, ids))
    if issues:
        shown = issues[:_MAX_REPORTED]
        if len(issues) > _MAX_REPORTED:
            shown.append(
                ScenarioIssue(file, None, "", f"... and {len(issues) - _MAX_REPORTED} more bad rows")
            )
        raise TraceError.from_issues(shown)
    if not rows:
        raise TraceError(
            file, None, "", f"no usable rows: the trace has no requests (expected {', '.join(names)})"
        )
    rows.sort(key=lambda r: r[0])
    t0 = rows[0][0]
    end = math.inf if trace.duration_s is None else trace.start_s + trace.duration_s

    def ns(x: float) -> float:  # the window is compared in whole nanoseconds: 0.1 + 0.2 is not 0.3
        return x if math.isinf(x) else round(x * 1e9)

    out = [
        TraceRequest(i, (t - t0 - trace.start_s) / trace.speedup, n_in, n_out, ids)
        for t, i, n_in, n_out, ids in rows
        if ns(trace.start_s) <= ns(t - t0) < ns(end)
    ]
    if not out:
        span = rows[-1][0] - t0
        raise TraceError(
            file,
            None,
            "",
            f"no usable rows in the window [{trace.start_s:g}, {end:g}) s: the trace spans {span:g} s",
        )
    return out


class _RowError(Exception):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def _rows(file: str, text: str, fmt: str, names: tuple[str, ...]) -> Iterator[tuple[int, Any]]:
    """(line, row) for every data row: a dict of JSONL, or a dict of CSV cells (strings)."""
    first = text.lstrip()[:1]
    if fmt == "mooncake" or (fmt == "plain" and first == "{"):
        for lineno, raw in enumerate(text.splitlines(), start=1):
            if not raw.strip():
                continue
            try:
                yield lineno, json.loads(raw)
            except json.JSONDecodeError as e:
                yield lineno, _RowError("", f"invalid JSON: {e.msg} (column {e.colno})")
        return
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = reader.fieldnames or []
    missing = [n for n in names if n not in header]
    if missing:
        have = ", ".join(repr(h) for h in header) or "nothing"
        raise TraceError(
            file, 1, "", f"the header lacks {', '.join(repr(m) for m in missing)} (it has {have})"
        )
    try:
        for row in reader:
            yield reader.line_num, row
    except csv.Error as e:
        yield reader.line_num, _RowError("", f"invalid CSV: {e}")


def _row(obj: Any, fmt: str, names: tuple[str, ...]) -> tuple[float, int, int, tuple[int, ...] | None]:
    if isinstance(obj, _RowError):
        raise obj
    if not isinstance(obj, dict):
        raise _RowError("", f"expected a JSON object with {', '.join(repr(n) for n in names)}")
    tk, ik, ok = names
    for k in names:
        if obj.get(k) in (None, ""):
            raise _RowError(k, "missing")
    if fmt == "azure":
        try:
            t = datetime.fromisoformat(str(obj[tk]).strip()).timestamp()
        except ValueError:
            raise _RowError(
                tk, f"expected a date and time like 2023-11-16 18:15:46.6805900, got {obj[tk]!r}"
            ) from None
    else:
        t = _number(obj[tk], tk) / (1000.0 if fmt == "mooncake" else 1.0)
    n_in, n_out = _count(obj[ik], ik), _count(obj[ok], ok)
    ids: tuple[int, ...] | None = None
    if fmt == "mooncake":
        raw = obj.get("hash_ids", [])
        if not isinstance(raw, list) or not all(isinstance(h, int) and not isinstance(h, bool) for h in raw):
            raise _RowError("hash_ids", "expected a list of integers")
        ids = tuple(raw)
    return t, n_in, n_out, ids


def _number(v: Any, field: str) -> float:
    try:
        x = float(v) if not isinstance(v, bool) else math.nan
    except (TypeError, ValueError):
        x = math.nan
    if not (math.isfinite(x) and x >= 0):
        raise _RowError(field, f"expected a number >= 0, got {v!r}")
    return x


def _count(v: Any, field: str) -> int:
    x = _number(v, field)
    if x < 1 or x != int(x):
        raise _RowError(field, f"expected an integer >= 1, got {v!r}")
    return int(x)


def trace_prompts(
    requests: list[TraceRequest],
    workload: Workload,
    api: Api,
    *,
    block_tokens: int,
    nonce: int = 0,
    tokenizer: Tokenizer | None = None,
) -> list[PromptSpec]:
    """One prompt per trace request, built from blocks (module docstring); ``max_tokens`` is the row's
    output length and ``prompt_index`` its row. ``input_tokens`` is the row's input length (the
    tokenizer's count of the text with a tokenizer)."""
    salt = [nonce] if workload.unique_prompts else []
    cache: dict[tuple[int, ...], str] = {}

    def block(key: tuple[int, ...], n: int) -> str:
        text = cache.get(key)
        if text is None:
            rng = np.random.default_rng([workload.seed, *salt, *key])
            text = cache[key] = random_text(rng, block_tokens, tokenizer)
        return text if n == block_tokens else _cut(text, n, tokenizer)

    specs = []
    for r in requests:
        ids = r.hash_ids or ()
        parts, left = [], r.input_tokens
        for h in ids:
            if left <= 0:
                break
            parts.append(block((_BLOCK, h), min(block_tokens, left)))
            left -= block_tokens
        k = 0
        while left > 0:  # beyond the hash ids (or none): blocks of this request's own
            parts.append(block((_OWN, r.index, k), min(block_tokens, left)))
            left -= block_tokens
            k += 1
        text = "".join(parts).lstrip(" ")
        n = tokenizer.count(text) if tokenizer is not None else r.input_tokens
        chat = api != "completions"  # every other API sends messages
        messages = [{"role": "user", "content": text}] if chat else None
        specs.append(PromptSpec(messages, None if chat else text, n, r.output_tokens, r.index))
    return specs


def _cut(text: str, n: int, tokenizer: Tokenizer | None) -> str:
    """The first ``n`` tokens of a block made by :func:`random_text` (pieces of 4 characters, or words
    after a space)."""
    if tokenizer is None:
        return text[: 4 * n]
    return "".join(" " + w for w in text.split(" ")[1 : n + 1])
