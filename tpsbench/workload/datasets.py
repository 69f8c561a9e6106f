"""Conversations from local dataset files: ShareGPT, OpenAI-style messages, and CSV or Parquet tables.

    >>> import json, tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "s.json").write_text(json.dumps([{"id": "a", "conversations": [
    ...     {"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello!"}]}]))
    >>> [c.turns for c in read_dataset(d / "s.json", "sharegpt")]
    [(Turn(user='Hi', answer='Hello!'),)]

Every format becomes a list of :class:`Conversation`: an optional system prompt and one or more turns, each
a user message and the dataset's answer to it (None if the file has none). A single-turn workload sends a
conversation's first turn (:mod:`.prompts`); a multi-turn one sends its turns in order (:mod:`.sessions`).

- ``sharegpt``: a JSON list, or JSONL, of objects with ``conversations``: ``[{"from", "value"}, ...]``.
  ``from`` is ``human``/``user`` (a user message), ``gpt``/``chatgpt``/``bard``/``assistant`` (an answer)
  or ``system``; other speakers are skipped. A turn starts at each user message; consecutive user
  messages join with a blank line.
- ``messages``: JSONL of ``{"messages": [{"role", "content"}, ...]}`` with roles ``system``, ``user`` and
  ``assistant`` (``content`` a string, or a list of ``{"type": "text", "text"}`` parts); the same rules.
- ``csv``: a header row; each row's prompt in ``prompt_column``, its answer (if the scenario names the
  column) in ``answer_column``; one turn per row.
- ``parquet``: the same table as a Parquet file (read with pyarrow, the ``parquet`` extra: a missing pyarrow
  is an error saying what to install); both columns must hold strings, a null cell reads as an empty one.

A row whose structure is wrong (invalid JSON, a field of the wrong type, a missing column) is an error
naming the file and the row; a row that is well formed but has no user message (an answer-only ShareGPT
entry, an empty prompt cell) is skipped, and a file left with no usable row is an error that says why.
A conversation's ``index`` is its 0-based row in the file: records carry it as ``prompt_index``.
"""

from __future__ import annotations

import csv
import difflib
import io
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import numpy as np

from tpsbench.config.scenario import Dataset, ScenarioError, ScenarioIssue

__all__ = ["Conversation", "DatasetError", "Turn", "read_dataset", "select_conversations"]

Format = Literal["sharegpt", "messages", "csv", "parquet"]
_TABLES = ("csv", "parquet")  # one turn per row, from named columns
_MAX_REPORTED = 20  # bad rows listed in one DatasetError
_USER = {"human", "user"}
_ASSISTANT = {"gpt", "chatgpt", "bard", "assistant", "model"}
_SAMPLE = 7  # seed purpose of the row sample (prompts.py uses 1-6)


class DatasetError(ScenarioError):
    """A dataset file that cannot be used: ``file:line: field: message`` per bad row."""


@dataclass(frozen=True, slots=True)
class Turn:
    user: str
    answer: str | None  # what the dataset's assistant answered (None: the file has no answer)


@dataclass(frozen=True, slots=True)
class Conversation:
    index: int  # 0-based row of the file
    system: str | None
    turns: tuple[Turn, ...]


def read_dataset(
    path: Path, fmt: Format, *, prompt_column: str | None = None, answer_column: str | None = None
) -> list[Conversation]:
    """Every usable conversation of the file (cached per path, modification time and size).

    Raises :class:`DatasetError` for a missing or unreadable file, malformed rows, or no usable row.
    """
    try:
        st = path.stat()
    except OSError as e:
        raise DatasetError(str(path), None, "", f"cannot read dataset file: {e.strerror or e}") from None
    return list(_parse(str(path), fmt, prompt_column, answer_column, st.st_mtime_ns, st.st_size))


class _RowError(Exception):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@lru_cache(maxsize=4)
def _parse(
    file: str, fmt: Format, prompt_col: str | None, answer_col: str | None, _mtime: int, _size: int
) -> tuple[Conversation, ...]:
    issues: list[ScenarioIssue] = []
    out: list[Conversation] = []
    rows = 0
    source: Iterator[tuple[int | None, str, Any]]
    if fmt == "parquet":
        source = _parquet_rows(file, prompt_col or "prompt", answer_col)
    else:
        try:
            text = Path(file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise DatasetError(file, None, "", f"cannot read dataset file: {e}") from None
        if fmt == "csv":
            source = _csv_rows(file, text, prompt_col or "prompt", answer_col)
        else:
            source = _json_rows(file, text)
    for line, where, obj in source:
        rows += 1
        try:
            conv = _conversation(rows - 1, fmt, obj)
        except _RowError as e:
            field = f"{where}.{e.field}" if where and e.field else where or e.field
            issues.append(ScenarioIssue(file, line, field, e.message))
            continue
        if conv is not None:
            out.append(conv)
    if issues:
        shown = issues[:_MAX_REPORTED]
        if len(issues) > _MAX_REPORTED:
            shown.append(
                ScenarioIssue(file, None, "", f"... and {len(issues) - _MAX_REPORTED} more bad rows")
            )
        raise DatasetError.from_issues(shown)
    if not out:
        why = "the file has no rows" if rows == 0 else f"none of its {rows} rows has a user message"
        raise DatasetError(file, None, "", f"no usable {fmt} rows: {why}")
    return tuple(out)


def _json_rows(file: str, text: str) -> Iterator[tuple[int | None, str, Any]]:
    """(line, row label, object): a JSON list's items (label ``[i]``) or JSONL lines (label empty)."""
    if text.lstrip().startswith("["):
        try:
            items = json.loads(text)
        except json.JSONDecodeError as e:
            raise DatasetError(file, e.lineno, "", f"invalid JSON: {e.msg} (column {e.colno})") from None
        for i, obj in enumerate(items):
            yield None, f"[{i}]", obj
        return
    for lineno, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
        except json.JSONDecodeError as e:
            obj = _RowError("", f"invalid JSON: {e.msg} (column {e.colno})")
        yield lineno, "", obj


def _csv_rows(
    file: str, text: str, prompt_col: str, answer_col: str | None
) -> Iterator[tuple[int | None, str, Any]]:
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise DatasetError(
            file, None, "", "no usable csv rows: the file is empty (expected a header row)"
        ) from None
    except csv.Error as e:
        raise DatasetError(file, 1, "", f"invalid CSV: {e}") from None
    cols = [header.index(name) for name in _columns(file, 1, "header", header, prompt_col, answer_col)]
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            yield reader.line_num, "", _RowError("", f"invalid CSV: {e}")
            continue
        if not row:
            continue
        if len(row) != len(header):
            yield (
                reader.line_num,
                "",
                _RowError("", f"expected {len(header)} cells (the header's), got {len(row)}"),
            )
            continue
        yield reader.line_num, "", [row[c] for c in cols]


def _columns(
    file: str, line: int | None, where: str, have: list[str], prompt_col: str, answer_col: str | None
) -> list[str]:
    """The table's prompt column and, if the scenario names one, its answer column; a missing one is an
    error listing the columns the file has (``where``: the header, the schema) and the closest name."""
    out = []
    for what, name in (("prompt_column", prompt_col), ("answer_column", answer_col)):
        if name is None:
            continue
        if name not in have:
            close = difflib.get_close_matches(name, have, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            listed = ", ".join(repr(h) for h in have)
            raise DatasetError(file, line, "", f"no column {name!r} ({what}) in the {where}: {listed}{hint}")
        out.append(name)
    return out


def _parquet_rows(
    file: str, prompt_col: str, answer_col: str | None
) -> Iterator[tuple[int | None, str, Any]]:
    """The cells of a Parquet file's prompt (and answer) column, row by row (no line numbers: the row
    index is the conversation's ``index``); a null cell is an empty one."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise DatasetError(
            file, None, "", "reading Parquet needs pyarrow: pip install 'tpsbench[parquet]' (or pyarrow)"
        ) from None
    try:
        schema = pq.read_schema(file)
        names = _columns(file, None, "schema", list(schema.names), prompt_col, answer_col)
        for name in names:
            kind = schema.field(name).type
            if pa.types.is_dictionary(kind):
                kind = kind.value_type
            if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
                what = "prompt_column" if name == prompt_col else "answer_column"
                raise DatasetError(
                    file, None, name, f"column {name!r} ({what}) holds {kind}, expected strings"
                )
        table = pq.read_table(file, columns=names)
    except (OSError, pa.ArrowException) as e:
        raise DatasetError(file, None, "", f"invalid Parquet: {e}") from None
    cells = [table.column(n).to_pylist() for n in names]
    for row in zip(*cells, strict=True):
        yield None, "", [row[0] or "", *row[1:]]


def _kind(v: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(v), "a number")


def _conversation(index: int, fmt: Format, obj: Any) -> Conversation | None:
    """The row's conversation, None if it has no user message; raises :class:`_RowError` if malformed."""
    if isinstance(obj, _RowError):
        raise obj
    if fmt in _TABLES:
        prompt, answer = obj[0], (obj[1] if len(obj) > 1 else None)
        return Conversation(index, None, (Turn(prompt, answer),)) if prompt.strip() else None
    key, speaker, content = (
        ("conversations", "from", "value") if fmt == "sharegpt" else ("messages", "role", "content")
    )
    if not isinstance(obj, dict):
        raise _RowError("", f"expected a JSON object with {key!r}, got {_kind(obj)}")
    msgs = obj.get(key)
    if not isinstance(msgs, list):
        got = "nothing" if key not in obj else _kind(msgs)
        raise _RowError(key, f"expected a list of messages, got {got}")
    system: str | None = None
    turns: list[list[str | None]] = []  # [user, answer]
    for j, m in enumerate(msgs):
        if not isinstance(m, dict):
            raise _RowError(
                f"{key}[{j}]", f"expected an object with {speaker!r} and {content!r}, got {_kind(m)}"
            )
        who = m.get(speaker)
        if not isinstance(who, str):
            got = "nothing" if speaker not in m else _kind(who)
            raise _RowError(f"{key}[{j}].{speaker}", f"expected a string, got {got}")
        body = _text(m.get(content), f"{key}[{j}].{content}", content in m)
        who = who.lower()
        if who == "system":
            if not turns:
                system = body if system is None else f"{system}\n\n{body}"
        elif who in _USER:
            if turns and turns[-1][1] is None:
                turns[-1][0] = f"{turns[-1][0]}\n\n{body}"  # consecutive user messages: one turn
            else:
                turns.append([body, None])
        elif who in _ASSISTANT and turns:
            prev = turns[-1][1]
            turns[-1][1] = body if prev is None else f"{prev}\n\n{body}"
    kept = tuple(Turn(u or "", a) for u, a in turns if (u or "").strip())
    return Conversation(index, system, kept) if kept else None


def _text(v: Any, field: str, present: bool) -> str:
    if isinstance(v, str):
        return v
    if isinstance(v, list) and all(isinstance(p, dict) and isinstance(p.get("text"), str) for p in v):
        return "".join(p["text"] for p in v)  # OpenAI content parts: [{"type": "text", "text": ...}]
    got = "nothing" if not present else _kind(v)
    raise _RowError(field, f"expected a string (or a list of text parts), got {got}")


def select_conversations(dataset: Dataset, measure: Callable[[str], int], seed: int) -> list[Conversation]:
    """The conversations a workload uses: the file's usable ones that pass the length filters (the first
    turn's prompt, system message included, in ``[min_input_tokens, max_input_tokens]``; its answer, when
    there is one, at most ``max_output_tokens``), then, with ``rows``, a seeded sample of that many (seeded
    by ``seed`` alone, so every level and worker uses the same rows), in file order. ``measure`` counts
    tokens (the scenario's tokenizer, else :func:`~tpsbench.core.estimate.estimate_tokens`).

    Raises :class:`DatasetError` when no conversation passes the filters.
    """
    convs = read_dataset(
        dataset.path, dataset.format, prompt_column=dataset.prompt_column, answer_column=dataset.answer_column
    )
    lo, hi, out_hi = dataset.min_input_tokens, dataset.max_input_tokens, dataset.max_output_tokens

    def keep(c: Conversation) -> bool:
        first = c.turns[0]
        n = measure(first.user) + (measure(c.system) if c.system else 0)
        if n < lo or (hi is not None and n > hi):
            return False
        return out_hi is None or first.answer is None or measure(first.answer) <= out_hi

    kept = [c for c in convs if keep(c)]
    if not kept:
        bounds = f"input tokens in [{lo}, {hi if hi is not None else 'inf'}]"
        if out_hi is not None:
            bounds += f", answer tokens <= {out_hi}"
        raise DatasetError(
            str(dataset.path), None, "", f"no usable rows: none of its {len(convs)} usable rows has {bounds}"
        )
    if dataset.rows is not None and dataset.rows < len(kept):
        pick = np.random.default_rng([seed, _SAMPLE]).choice(len(kept), size=dataset.rows, replace=False)
        kept = [kept[i] for i in sorted(pick.tolist())]
    return kept
