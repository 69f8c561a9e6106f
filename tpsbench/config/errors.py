"""Scenario errors: :class:`ScenarioError` and the mapper from pydantic's errors to ``file:line: field:
message`` lines that name what the field accepts.

    >>> str(ScenarioIssue("x.yaml", 12, "load[1].rate", "expected a number > 0, got 'fast'"))
    "x.yaml:12: load[1].rate: expected a number > 0, got 'fast'"

The mapper knows nothing of the scenario schema: :data:`tpsbench.config.scenario.SCHEMA` describes it.
"""

from __future__ import annotations

import difflib
import types
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Annotated, Any, Literal, Self, Union, get_args, get_origin

import annotated_types as at
from pydantic import BaseModel, Tag, ValidationError
from pydantic.fields import FieldInfo
from ruamel.yaml.comments import CommentedMap, CommentedSeq

__all__ = [
    "COMMAND_LINE",
    "ScenarioError",
    "ScenarioIssue",
    "SchemaHints",
    "SourceLines",
    "did_you_mean",
    "issues_from_validation",
    "line_of",
    "mentions",
    "show",
]


@dataclass(frozen=True, slots=True)
class ScenarioIssue:
    """One problem: ``file:line: field: message`` (line and field are left out when unknown)."""

    file: str
    line: int | None
    field: str
    message: str

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        return ": ".join(p for p in (where, self.field, self.message) if p)


COMMAND_LINE = "command line"  # the "file" of a value given by a command-line option


@dataclass(frozen=True, slots=True)
class SourceLines:
    """Where a scenario's keys were written, so that what is said about a valid scenario (its warnings)
    names ``file:line: field`` as its errors do. ``lines`` maps each key path of the file, e.g.
    ``("load", 1, "requests")``, to its 1-based line; paths under ``overridden`` were replaced by
    command-line options, and are placed on the ``command line``.

    >>> src = SourceLines("x.yaml", {("endpoint",): 2, ("endpoint", "tls"): 4})
    >>> str(src.issue(["endpoint", "tls", "verify"], "has no effect"))
    'x.yaml:4: endpoint.tls.verify: has no effect'
    >>> str(src.overriding([("endpoint", "base_url")]).issue(["endpoint", "base_url"], "no /v1"))
    'command line: endpoint.base_url: no /v1'
    """

    file: str
    lines: Mapping[tuple[str | int, ...], int]
    overridden: frozenset[tuple[str | int, ...]] = frozenset()

    @classmethod
    def of(cls, file: str, doc: Any) -> SourceLines:
        """The lines of every key and list item of a ruamel round-trip tree."""
        lines: dict[tuple[str | int, ...], int] = {}
        stack: list[tuple[tuple[str | int, ...], Any]] = [((), doc)]
        while stack:
            path, node = stack.pop()
            if isinstance(node, CommentedMap):
                keys: list[str | int] = [k for k in node if isinstance(k, str)]
            elif isinstance(node, CommentedSeq):
                keys = list(range(len(node)))
            else:
                continue
            for key in keys:
                line = line_of(node, [key])
                if line is None:  # merged keys (<<:) have no position of their own
                    continue
                lines[(*path, key)] = line
                stack.append(((*path, key), node[key]))
        return cls(file, lines)

    def overriding(self, paths: Sequence[tuple[str | int, ...]]) -> SourceLines:
        """The same lines, with ``paths`` (and everything under them) now from the command line."""
        return SourceLines(self.file, self.lines, self.overridden | frozenset(paths))

    def issue(self, path: Sequence[str | int], message: str) -> ScenarioIssue:
        """``message`` about ``path``, at the line of its deepest key in the file (or the command line)."""
        key = tuple(path)
        field = _display(key)
        if any(key[: len(o)] == o for o in self.overridden):
            return ScenarioIssue(COMMAND_LINE, None, field, message)
        line = next((self.lines[key[:n]] for n in range(len(key), 0, -1) if key[:n] in self.lines), None)
        return ScenarioIssue(self.file, line, field, message)


class ScenarioError(Exception):
    """An invalid scenario (or prompts file). ``file``, ``line``, ``field`` and ``message`` describe the
    first issue; ``issues`` holds all of them, and ``str()`` shows one per line.

    ``field`` is a dotted path such as ``load[1].rate``; ``line`` is 1-based, or None when the problem has
    no place in the file (a missing file, a missing top-level key).
    """

    def __init__(
        self,
        file: str | Path,
        line: int | None = None,
        field: str = "",
        message: str = "",
        *,
        more: Sequence[ScenarioIssue] = (),
    ) -> None:
        self.issues: list[ScenarioIssue] = [ScenarioIssue(str(file), line, field, message), *more]
        self.file = str(file)
        self.line = line
        self.field = field
        self.message = message
        super().__init__(str(self))

    @classmethod
    def from_issues(cls, issues: Sequence[ScenarioIssue]) -> Self:
        if not issues:
            raise ValueError("ScenarioError needs at least one issue")
        first = issues[0]
        return cls(first.file, first.line, first.field, first.message, more=issues[1:])

    def __str__(self) -> str:
        return "\n".join(str(i) for i in self.issues)

    def __reduce__(self) -> tuple[Any, ...]:
        # Keep the error picklable (worker processes send it back) despite the custom __init__.
        return (self.__class__.from_issues, (self.issues,))


def line_of(root: Any, path: Sequence[str | int]) -> int | None:
    """1-based line of the deepest node of ``path`` present in the YAML tree (key line for mappings,
    item line for sequences); the parent's line when the last key is missing."""
    node, line = root, None
    for key in path:
        try:
            if isinstance(node, CommentedMap) and key in node:
                line = node.lc.key(key)[0] + 1
            elif isinstance(node, CommentedSeq) and isinstance(key, int) and 0 <= key < len(node):
                line = node.lc.item(key)[0] + 1
            else:
                break
        except (KeyError, IndexError, TypeError):  # merged keys (<<:) have no position of their own
            break
        node = node[key]
    return line


@dataclass
class _Target:
    path: list[str | int]  # keys and indices into the document
    expect: Any  # (annotation, metadata) expected at the error's location, or None
    siblings: list[str]  # field names allowed next to the last key (for unknown keys)
    key_choices: list[str] | None  # allowed keys of a dict with a Literal key type ('[key]' errors)


def _split(tp: Any) -> tuple[Any, list[Any]]:
    """Strip Annotated (collecting constraint metadata) and Optional's None."""
    meta: list[Any] = []
    while get_origin(tp) is Annotated:
        args = get_args(tp)
        tp = args[0]
        for m in args[1:]:
            meta.extend(m.metadata if isinstance(m, FieldInfo) else [m])
    if _is_union(tp):
        members = [a for a in get_args(tp) if a is not type(None)]
        if len(members) == 1:
            inner, more = _split(members[0])
            return inner, meta + more
    return tp, meta


def _is_union(tp: Any) -> bool:
    return get_origin(tp) in (Union, types.UnionType)


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def mentions(tp: Any, wanted: tuple[type, ...]) -> bool:
    """Whether the annotation accepts one of ``wanted`` at its top level (through unions and Annotated)."""
    core, _ = _split(tp)
    if _is_union(core):
        return any(mentions(a, wanted) for a in get_args(core))
    return core in wanted


def _walk(loc: Sequence[str | int], root: type[BaseModel]) -> _Target:
    """Follow a pydantic error location through the schema whose root model is ``root``."""
    tp: Any = root
    meta: list[Any] = []
    expect: Any = (tp, meta)
    path: list[str | int] = []
    siblings: list[str] = []
    for i, item in enumerate(loc):
        core, more = _split(tp)
        meta = meta + more
        if tp is None:
            path.append(item)
        elif _is_model(core):
            siblings = list(core.model_fields)
            path.append(item)
            field = core.model_fields.get(str(item))
            tp, meta = (field.annotation, list(field.metadata)) if field is not None else (None, [])
        elif _is_union(core):
            # A union tag (e.g. 'int' / 'Distribution'): not a key in the file; keep the whole union's
            # expectation so the message names every accepted form.
            tagged = [
                a for a in get_args(core) if any(isinstance(m, Tag) and m.tag == item for m in _meta(a))
            ]
            tp, meta = (tagged[0], []) if tagged else (None, [])
            continue
        elif get_origin(core) is list:
            path.append(item)
            tp, meta = get_args(core)[0], []
        elif get_origin(core) is dict:
            key_tp, value_tp = get_args(core)
            path.append(item)
            if loc[i + 1 : i + 2] == ("[key]",):  # pydantic reports a bad dict key as (..., key, '[key]')
                choices = [str(c) for c in get_args(key_tp)] if get_origin(key_tp) is Literal else []
                return _Target(path, None, siblings, choices)
            tp, meta = value_tp, []
        else:
            path.append(item)
            tp, meta = None, []
        expect = (tp, meta) if tp is not None else None
    return _Target(path, expect, siblings, None)


def _meta(tp: Any) -> tuple[Any, ...]:
    return get_args(tp)[1:] if get_origin(tp) is Annotated else ()


def _display(path: Sequence[str | int]) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def _fmt_num(x: Any) -> str:
    return f"{x:g}" if isinstance(x, float) else str(x)


def _expectation(tp: Any, meta: list[Any], *, in_union: bool = False) -> str:
    core, more = _split(tp)
    meta = meta + more
    bounds = []
    for m in meta:
        for attr, sym in (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<=")):
            if isinstance(m, at.Gt | at.Ge | at.Lt | at.Le) and hasattr(m, attr):
                bounds.append(f"{sym} {_fmt_num(getattr(m, attr))}")
    bound = (" " + " and ".join(bounds)) if bounds else ""
    if _is_union(core):
        return " or ".join(_expectation(a, [], in_union=True) for a in get_args(core) if a is not type(None))
    if core is bool:
        return "true or false"
    if core is int:
        return "an integer" + bound
    if core is float:
        return "a number" + bound
    if core is str:
        return "a string"
    if isinstance(core, type) and issubclass(core, PurePath):
        return "a file path"
    if get_origin(core) is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(core))
    if get_origin(core) is list:
        item = get_args(core)[0]
        min_len = next((m.min_length for m in meta if isinstance(m, at.MinLen)), 0)
        what = "a non-empty list" if min_len >= 1 else "a list"
        return what + (" of mappings" if _is_model(_split(item)[0]) else "")
    if _is_model(core):
        return ("a mapping with keys " + ", ".join(core.model_fields)) if in_union else "a mapping"
    if get_origin(core) is dict:
        return "a mapping"
    return "a valid value"


def show(v: Any) -> str:
    """A value as the user wrote it in YAML terms."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, dict):
        return "a mapping" if v else "an empty mapping"
    if isinstance(v, list):
        return "a list" if v else "an empty list"
    if isinstance(v, str):
        return repr(str(v))
    if isinstance(v, float):
        return repr(float(v))
    return repr(v)


def did_you_mean(word: str, choices: Sequence[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest choice by difflib ratio (>= 0.6); ties go to the longest
    common prefix, so 'p51' suggests 'p50' rather than 'p95'."""

    def score(c: str) -> tuple[float, int]:
        prefix = next(
            (i for i, (a, b) in enumerate(zip(word, c, strict=False)) if a != b), min(len(word), len(c))
        )
        return difflib.SequenceMatcher(None, word, c).ratio(), prefix

    scored = [(score(c), c) for c in choices]
    best = max(scored, default=None)
    return f" (did you mean {best[1]!r}?)" if best is not None and best[0][0] >= 0.6 else ""


# Sections of the file, to point at the right place when a key is written at the wrong level.


@dataclass(frozen=True, slots=True)
class SchemaHints:
    """What the mapper needs to know about a schema: its root model, the sections where a key written at
    the top level by mistake may belong (dotted name -> model) and the list fields whose items are
    mappings (name -> item model)."""

    root: type[BaseModel]
    sections: Mapping[str, type[BaseModel]]
    items: Mapping[str, type[BaseModel]]


def _misplaced_hint(key: str, schema: SchemaHints) -> str:
    """For an unknown top-level key: the section where a field of that (or a close) name lives."""
    for section, model in schema.sections.items():
        match = difflib.get_close_matches(key, list(model.model_fields), n=1, cutoff=0.8)
        if match:
            return f" (did you mean '{section}.{match[0]}'?)"
    for name, model in schema.items.items():
        match = difflib.get_close_matches(key, list(model.model_fields), n=1, cutoff=0.8)
        if match:
            return f" (did you mean {match[0]!r}, a key of each item of {name!r}?)"
    return ""


def issues_from_validation(
    exc: ValidationError, doc: Any, file: str, schema: SchemaHints
) -> list[ScenarioIssue]:
    """Turn pydantic errors into ``file:line: field: message`` issues, one per error. ``doc`` is the
    ruamel round-trip tree the data came from (for line numbers), or None (e.g. command-line values)."""
    issues: list[ScenarioIssue] = []
    for err in exc.errors(include_url=False):
        loc = err["loc"]
        kind = err["type"]
        target = _walk(loc, schema.root)
        field = _display(target.path)
        line = line_of(doc, target.path) if doc is not None else None
        value = err.get("input")
        key = str(target.path[-1]) if target.path else ""
        if kind == "extra_forbidden":
            hint = did_you_mean(key, target.siblings)
            if not hint and len(target.path) == 1:
                hint = _misplaced_hint(key, schema)
            if not hint:
                hint = f" (allowed: {', '.join(target.siblings)})"
            msg = f"unknown key {key!r}{hint}"
        elif target.key_choices is not None:  # a dict key outside its Literal set, e.g. slo.ttft
            hint = did_you_mean(key, target.key_choices) or f" (allowed: {', '.join(target.key_choices)})"
            msg = f"unknown key {key!r}{hint}" if target.key_choices else f"invalid key {key!r}: {err['msg']}"
        elif kind == "missing":
            msg = f"required key {key!r} is missing"
            if target.expect is not None:
                msg += f" (expected {_expectation(*target.expect)})"
        elif kind in ("value_error", "assertion_error"):
            msg = str(err["msg"]).removeprefix("Value error, ").removeprefix("Assertion failed, ")
        elif target.expect is not None:  # type and constraint errors: say what the field accepts
            msg = f"expected {_expectation(*target.expect)}, got {show(value)}"
            if kind == "literal_error" and isinstance(value, str):
                msg += did_you_mean(value, [str(a) for a in get_args(_split(target.expect[0])[0])])
        else:
            msg = f"{err['msg']}, got {show(value)}"
        issue = ScenarioIssue(file, line, field, msg)
        if issue not in issues:
            issues.append(issue)
    return issues
