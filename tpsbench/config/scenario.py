"""Scenario files: what to load, how hard, against which endpoint.

A scenario is validated completely before any request is sent. See ``scenarios/*.yaml`` for examples and
the README for every field.

    >>> s = Scenario.model_validate({"load": [{"concurrency": 4, "requests": 20}]})
    >>> s.load[0].concurrency
    4
    >>> s.load[0].resolved_warmup
    4

:func:`load_scenario` reads a YAML file and reports every problem at once, each as
``file:line: field: message``, e.g.::

    scenarios/x.yaml:12: load[1].rate: expected a number > 0, got 'fast'
    scenarios/x.yaml:3: endpoint.modle: unknown key 'modle' (did you mean 'model'?)
"""

from __future__ import annotations

import difflib
import io
import math
import re
import types
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Annotated, Any, Literal, Self, Union, get_args, get_origin

import annotated_types as at
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_core import PydanticCustomError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.representer import RoundTripRepresenter
from ruamel.yaml.scalarbool import ScalarBoolean

from tpsbench.core.redact import redact_headers, redact_url

__all__ = [
    "Distribution",
    "Endpoint",
    "Gate",
    "Level",
    "Scenario",
    "ScenarioError",
    "ScenarioIssue",
    "Steps",
    "Sweep",
    "Timeouts",
    "TokenCount",
    "Workload",
    "dump_scenario",
    "load_scenario",
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_for_numbers(cls, v: Any, info: ValidationInfo) -> Any:
        # pydantic's lax mode turns `true` into 1; in a scenario file that is always a mistake.
        if isinstance(v, bool) and info.field_name is not None:
            ann = cls.model_fields[info.field_name].annotation
            if _mentions(ann, (int, float)) and not _mentions(ann, (bool,)):
                raise PydanticCustomError("bool_not_number", "expected a number, got a boolean")
        return v


class Timeouts(_Strict):
    connect_s: float = Field(default=10.0, gt=0)
    first_token_s: float = Field(default=120.0, gt=0)  # until the first byte of the streamed body
    # the whole request, from its first byte sent to the end of the stream
    request_s: float = Field(default=600.0, gt=0)


class Endpoint(_Strict):
    base_url: str | None = None  # None: the bundled reference endpoint, started and stopped by tpsbench
    api: Literal["chat", "completions"] = "chat"
    model: str | None = None  # None: ask /v1/models for the first model
    api_key_env: str | None = None  # the NAME of the environment variable; its value is never stored
    headers: dict[str, str] = Field(default_factory=dict)
    timeouts: Timeouts = Field(default_factory=Timeouts)
    # h11 (tpsbench/client/transport/h11.py) is the only transport that meets issue 6's targets on one core
    # (benchmarks/results/client_accuracy.txt; TTFT p50 over the server's / TPS/user mean, p50 error):
    #   256 streams:  h11 +2.3 ms / +0.06%, +0.20%   aiohttp +9.1 ms / +1.45%, +0.80%   httpx +5 s
    #   1024 streams: h11 +2.0 ms / +0.15%, +0.69%   aiohttp +285 ms / +80%, +11%       httpx +21 s
    # (all three within 2 ms and 0.2% up to 16 streams). It stamps bytes in the protocol callback and
    # writes the request synchronously after send_ns; aiohttp writes it from another task and stamps reads
    # when its reading task runs; one httpx client runs out of CPU.
    transport: Literal["aiohttp", "httpx", "h11"] = "h11"
    continuous_usage: bool = False  # ask for per-chunk usage (vLLM's stream_options.continuous_usage_stats)
    extra_body: dict[str, Any] = Field(default_factory=dict)  # merged into every request body
    # How to count tokens the server does not report (workload/tokenizer.py): None or "estimate" (labelled
    # ceil(chars/4)), "server" (its tokenize endpoint), "gguf:PATH" (the model file's vocabulary through
    # llama-cpp-python) or a tokenizer.json path (the `tokenizers` library). Relative paths are relative to
    # the scenario file.
    tokenizer: str | None = None

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, v: str | None) -> str | None:
        if v is not None and not re.match(r"^https?://[^/\s]+", v):
            raise ValueError(f"expected an http:// or https:// URL, got {v!r}")
        return v

    @field_validator("tokenizer")
    @classmethod
    def _tokenizer_kind(cls, v: str | None) -> str | None:
        if v is None or v in ("estimate", "server"):
            return v
        if v.removeprefix("gguf:") and (v.startswith("gguf:") or v.endswith(".json")):
            return v
        raise ValueError(
            f"expected 'estimate', 'server', 'gguf:PATH' or a path to a tokenizer.json, got {v!r}"
        )


class Distribution(_Strict):
    """A token count drawn per request: ``clip(round(normal(mean, std)), min, max)`` (no upper bound if
    ``max`` is null)."""

    mean: float = Field(gt=0)
    std: float = Field(default=0.0, ge=0)
    min: int = Field(default=1, ge=1)
    max: int | None = None

    @model_validator(mode="after")
    def _bounds(self) -> Distribution:
        if self.max is not None and self.max < self.min:
            raise ValueError(f"'max' ({self.max}) must be >= 'min' ({self.min})")
        return self


def _token_count_tag(v: Any) -> str:
    # An explicit discriminator: a mapping is a Distribution, anything else must be an int. Without it
    # pydantic reports the errors of both union members, which reads as noise in a scenario file.
    return "Distribution" if isinstance(v, dict | Distribution) else "int"


TokenCount = Annotated[
    Annotated[int, Tag("int"), Field(ge=1)] | Annotated[Distribution, Tag("Distribution")],
    Discriminator(_token_count_tag),
]
"""A token count: a fixed integer >= 1, or a :class:`Distribution` drawn per request."""


class Workload(_Strict):
    """What each request asks for. Unique prompt prefixes, when on, are applied to file prompts too."""

    input_tokens: TokenCount = 1000
    output_tokens: TokenCount = 1000
    seed: int = Field(default=0, ge=0)  # numpy seeds must be non-negative
    prompts_file: Path | None = None  # JSONL; relative paths are relative to the scenario file
    ignore_eos: bool = True  # send ignore_eos so the server generates exactly max_tokens
    min_tokens: bool = True  # send min_tokens = max_tokens (servers that ignore ignore_eos honour this)
    max_tokens_field: Literal["max_tokens", "max_completion_tokens"] = "max_tokens"
    unique_prompts: bool = True  # a unique prefix per request so prompt caches cannot flatter a run
    # The first N input tokens of every prompt are the same (seeded), so a server's prefix cache can reuse
    # them: compare TTFT with 0. Counted in input_tokens, which must therefore be >= N.
    shared_prefix_tokens: int = Field(default=0, ge=0)

    @model_validator(mode="after")
    def _prefix_fits(self) -> Workload:
        n = self.shared_prefix_tokens
        if n and self.prompts_file is None:
            fixed = isinstance(self.input_tokens, int)
            low = self.input_tokens if isinstance(self.input_tokens, int) else self.input_tokens.min
            if low < n:
                raise ValueError(
                    f"'shared_prefix_tokens' ({n}) is part of every prompt, so input_tokens must be >= {n}, "
                    f"got {'' if fixed else 'min '}{low}"
                )
        return self


class Level(_Strict):
    """One load point: closed loop (``concurrency``) or open loop (``rate``).

    Closed loop keeps ``concurrency`` requests in flight; open loop sends at ``rate`` requests per second with
    gaps drawn from ``arrival`` (load/arrivals.py). ``requests`` counts measured requests only;
    ``warmup`` unmeasured ones go first (default: :attr:`resolved_warmup`).
    """

    concurrency: int | None = Field(default=None, ge=1)
    rate: float | None = Field(default=None, gt=0)  # requests per second
    arrival: Literal["poisson", "constant", "gamma"] = "poisson"
    burstiness: float = Field(default=1.0, gt=0)  # gamma shape; 1 = poisson, <1 burstier, >1 smoother
    requests: int | None = Field(default=None, ge=1)  # measured requests (warmup excluded)
    # measured window; the level stops at whichever of requests / duration_s comes first
    duration_s: float | None = Field(default=None, gt=0)
    warmup: int | None = Field(default=None, ge=0)  # unmeasured first; None: see resolved_warmup

    @model_validator(mode="after")
    def _one_load_kind(self) -> Level:
        if (self.concurrency is None) == (self.rate is None):
            raise ValueError("set exactly one of 'concurrency' (closed loop) or 'rate' (open loop)")
        if self.requests is None and self.duration_s is None:
            raise ValueError("set 'requests', 'duration_s' or both, so the level stops by itself")
        # Checked by value (not by which keys were written) so a dumped scenario loads back unchanged.
        if self.concurrency is not None and (self.arrival != "poisson" or self.burstiness != 1.0):
            raise ValueError("'arrival' and 'burstiness' apply to open-loop levels ('rate') only")
        if self.arrival != "gamma" and self.burstiness != 1.0:
            raise ValueError("'burstiness' applies to 'arrival: gamma' only")
        return self

    @property
    def label(self) -> str:
        return f"c={self.concurrency}" if self.concurrency is not None else f"rate={self.rate:g}/s"

    @property
    def open_loop(self) -> bool:
        """True for a ``rate`` level, False for a ``concurrency`` level."""
        return self.rate is not None

    @property
    def resolved_warmup(self) -> int:
        """Warmup requests: ``warmup`` if set, else ``concurrency`` (one wave, closed loop) or
        ``ceil(rate)`` (about one second of arrivals, open loop)."""
        if self.warmup is not None:
            return self.warmup
        if self.concurrency is not None:
            return self.concurrency
        assert self.rate is not None  # guaranteed by _one_load_kind
        return math.ceil(self.rate)


class Steps(_Strict):
    """Load values of a sweep: ``start``, then ``x * factor`` (or ``x + step``) while ``<= max``.
    Concurrency steps are rounded to integers and always grow by at least 1."""

    start: float = Field(gt=0)
    factor: float | None = Field(default=None, gt=1)
    step: float | None = Field(default=None, gt=0)
    max: float = Field(gt=0)

    @model_validator(mode="after")
    def _one_progression(self) -> Steps:
        if self.factor is not None and self.step is not None:
            raise ValueError("set 'factor' (geometric) or 'step' (arithmetic), not both")
        if self.max < self.start:
            raise ValueError(f"'max' ({self.max:g}) must be >= 'start' ({self.start:g})")
        return self

    def values(self, *, integer: bool) -> list[float]:
        """Every value of the progression (the factor defaults to 2).

        >>> Steps(start=1, max=10).values(integer=True)
        [1, 2, 4, 8]
        >>> Steps(start=1.5, factor=1.5, max=4).values(integer=True)
        [2, 3]
        """
        out: list[float] = []
        x = self.start
        while x <= self.max * (1 + 1e-9):
            v: float = max(round(x), 1) if integer else x
            if integer and v > self.max:
                break
            if not out or v > out[-1]:
                out.append(v)
            x = x + self.step if self.step is not None else x * (self.factor or 2.0)
        return out


class Sweep(_Strict):
    """Levels generated one at a time until the knee (see :mod:`tpsbench.load.sweep`): ``concurrency`` (closed
    loop) or ``rate`` (open loop) grows along its :class:`Steps` until a level breaks the scenario's SLO,
    fails more than ``max_error_rate`` of its measured requests, or raises output TPS by less than
    ``min_gain`` (a fraction) over the best level so far. ``requests`` per level defaults to
    ``max(20, 4 x concurrency)`` or ``max(20, ceil(10 x rate))`` unless ``duration_s`` is set."""

    concurrency: Steps | None = None
    rate: Steps | None = None
    arrival: Literal["poisson", "constant", "gamma"] = "poisson"
    requests: int | None = Field(default=None, ge=1)
    duration_s: float | None = Field(default=None, gt=0)
    warmup: int | None = Field(default=None, ge=0)
    min_gain: float = Field(default=0.05, ge=0)
    max_error_rate: float = Field(default=0.0, ge=0, le=1)

    @model_validator(mode="after")
    def _one_axis(self) -> Sweep:
        if (self.concurrency is None) == (self.rate is None):
            raise ValueError("set exactly one of 'concurrency' (closed loop) or 'rate' (open loop) to sweep")
        if self.concurrency is not None and self.arrival != "poisson":
            raise ValueError("'arrival' applies to rate sweeps only")
        return self

    def level(self, value: float) -> Level:
        """The load level of one step of the sweep."""
        closed = self.concurrency is not None
        requests = self.requests
        if requests is None and self.duration_s is None:
            requests = max(20, 4 * int(value)) if closed else max(20, math.ceil(10 * value))
        load: dict[str, Any] = (
            {"concurrency": int(value)} if closed else {"rate": value, "arrival": self.arrival}
        )
        return Level.model_validate(
            load | {"requests": requests, "duration_s": self.duration_s, "warmup": self.warmup}
        )

    def values(self) -> list[float]:
        """The loads this sweep may visit, in order (it usually stops earlier)."""
        steps = self.concurrency or self.rate
        assert steps is not None  # guaranteed by _one_axis
        return steps.values(integer=self.concurrency is not None)


SloStat = Literal["mean", "p50", "p90", "p95", "p99"]
SloMetric = Literal["ttft_s", "tps_user", "tpot_s", "e2e_s", "itl_s"]


class Gate(_Strict):
    thresholds: dict[str, float] = Field(default_factory=dict)  # e.g. {"tps_user_p50": 5} percent


class Scenario(_Strict):
    name: str | None = None
    endpoint: Endpoint = Field(default_factory=Endpoint)
    workload: Workload = Field(default_factory=Workload)
    # Fixed levels, or a sweep that generates them until the knee: exactly one of the two.
    load: Annotated[list[Level], Field(min_length=1)] | None = None
    sweep: Sweep | None = None
    slo: dict[SloMetric, dict[SloStat, float]] = Field(default_factory=dict)
    gpus: int | None = Field(default=None, ge=1)
    workers: int = Field(default=1, ge=1)
    gate: Gate = Field(default_factory=Gate)
    reference: dict[str, Any] = Field(default_factory=dict)  # overrides of the reference model's parameters

    @model_validator(mode="after")
    def _load_or_sweep(self) -> Scenario:
        if self.load is None and self.sweep is None:
            raise ValueError("set 'load' (a list of load levels) or 'sweep' (levels grown until the knee)")
        if self.load is not None and self.sweep is not None:
            raise ValueError("set 'load' (fixed levels) or 'sweep' (levels grown until the knee), not both")
        return self

    @property
    def fixed_levels(self) -> list[Level]:
        """The ``load`` levels; empty for a sweep, whose levels are generated while it runs."""
        return self.load or []

    def with_overrides(
        self,
        *,
        base_url: str | None = None,
        model: str | None = None,
        concurrency: list[int] | None = None,
    ) -> Scenario:
        """A validated copy with command-line overrides applied (None leaves a value alone).

        ``concurrency`` replaces the whole ``load`` list (or the sweep) by closed-loop levels that copy
        ``requests``, ``duration_s`` and ``warmup`` from the first level (or the sweep); ``requests``
        defaults to ``max(20, 4 * c)`` when the first level had none (the level still stops at whichever
        of requests/duration comes first). Raises :class:`ScenarioError` (file ``command line``) for
        invalid values.
        """
        data = self.model_dump()
        if base_url is not None:
            data["endpoint"]["base_url"] = base_url
        if model is not None:
            data["endpoint"]["model"] = model
        if concurrency is not None:
            if not concurrency:
                raise ScenarioError(_CLI, None, "concurrency", "expected at least one concurrency level")
            first: Level | Sweep = self.load[0] if self.load else _some(self.sweep)
            data["sweep"] = None
            data["load"] = [
                {
                    "concurrency": c,
                    "requests": first.requests if first.requests is not None else max(20, 4 * c),
                    "duration_s": first.duration_s,
                    "warmup": first.warmup,
                }
                for c in concurrency
            ]
        try:
            return Scenario.model_validate(data)
        except ValidationError as e:
            raise ScenarioError.from_issues(_issues_from_validation(e, None, _CLI)) from None


_CLI = "command line"


def _some(sweep: Sweep | None) -> Sweep:
    assert sweep is not None  # a scenario has load levels or a sweep
    return sweep


# ---------------------------------------------------------------------------------------------- errors


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


# ----------------------------------------------------------------------------- loading and error mapping


def load_scenario(path: str | Path) -> Scenario:
    """Read, parse and validate a scenario YAML file.

    Every problem is collected and raised at once as a :class:`ScenarioError` whose lines read
    ``file:line: field: message``. ``workload.prompts_file`` is resolved against the scenario file's
    directory and must exist; the returned scenario holds the absolute path.
    """
    p = Path(path)
    file = str(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ScenarioError(file, None, "", "no such file") from None
    except IsADirectoryError:
        raise ScenarioError(file, None, "", "is a directory, expected a scenario YAML file") from None
    except UnicodeDecodeError as e:
        raise ScenarioError(file, None, "", f"not UTF-8 text ({e.reason} at byte {e.start})") from None
    except OSError as e:
        raise ScenarioError(file, None, "", f"cannot read: {e.strerror or e}") from None

    try:
        doc = YAML(typ="rt").load(text)  # round-trip nodes carry line numbers in `.lc`
    except MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = mark.line + 1 if mark is not None else None
        what = e.problem or e.context or "syntax error"
        raise ScenarioError(file, line, "", f"invalid YAML: {what}") from None
    except YAMLError as e:
        raise ScenarioError(file, None, "", f"invalid YAML: {e}") from None
    if doc is None:
        raise ScenarioError(file, None, "", "the file is empty; a scenario needs at least a 'load' list")
    if not isinstance(doc, CommentedMap):
        raise ScenarioError(
            file, 1, "", f"expected a mapping of scenario keys (load, endpoint, ...), got {_show(doc)}"
        )

    issues: list[ScenarioIssue] = []
    scenario: Scenario | None = None
    try:
        scenario = Scenario.model_validate(_plain(doc))
    except ValidationError as e:
        issues += _issues_from_validation(e, doc, file)
    prompts_file, issue = _check_prompts_file(doc, p.parent, file)
    if issue is not None:
        issues.append(issue)
    tokenizer, issue = _check_tokenizer_path(doc, p.parent, file)
    if issue is not None:
        issues.append(issue)
    if issues or scenario is None:
        issues.sort(key=lambda i: i.line if i.line is not None else 0)  # stable: same line keeps order
        raise ScenarioError.from_issues(issues)
    if prompts_file is not None:
        workload = scenario.workload.model_copy(update={"prompts_file": prompts_file})
        scenario = scenario.model_copy(update={"workload": workload})
    if tokenizer is not None:
        endpoint = scenario.endpoint.model_copy(update={"tokenizer": tokenizer})
        scenario = scenario.model_copy(update={"endpoint": endpoint})
    return scenario


def _check_tokenizer_path(
    doc: CommentedMap, base: Path, file: str
) -> tuple[str | None, ScenarioIssue | None]:
    """``endpoint.tokenizer`` with its file made absolute (``gguf:`` kept), or the issue if it is missing."""
    endpoint = doc.get("endpoint")
    raw = endpoint.get("tokenizer") if isinstance(endpoint, CommentedMap) else None
    if not isinstance(raw, str) or raw in ("estimate", "server"):
        return None, None
    prefix = "gguf:" if raw.startswith("gguf:") else ""
    resolved = (base / Path(raw.removeprefix(prefix)).expanduser()).resolve()
    if resolved.is_file():
        return prefix + str(resolved), None
    line = _line_of(doc, ["endpoint", "tokenizer"])
    msg = f"tokenizer file not found: {resolved} (relative paths are relative to the scenario file)"
    return None, ScenarioIssue(file, line, "endpoint.tokenizer", msg)


def _check_prompts_file(doc: CommentedMap, base: Path, file: str) -> tuple[Path | None, ScenarioIssue | None]:
    workload = doc.get("workload")
    if not isinstance(workload, CommentedMap):
        return None, None
    raw = workload.get("prompts_file")
    if not isinstance(raw, str):
        return None, None  # null means "synthetic"; other types are reported by the schema
    resolved = (base / Path(raw).expanduser()).resolve()
    if resolved.is_file():
        return resolved, None
    problem = "is not a file" if resolved.exists() else "not found"
    line = _line_of(doc, ["workload", "prompts_file"])
    msg = f"prompts file {problem}: {resolved} (relative paths are relative to the scenario file)"
    return None, ScenarioIssue(file, line, "workload.prompts_file", msg)


def _plain(node: Any) -> Any:
    """ruamel's round-trip nodes as plain Python values (what pydantic should see)."""
    if isinstance(node, dict):
        return {_plain(k): _plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(v) for v in node]
    if isinstance(node, bool | ScalarBoolean):  # ScalarBoolean subclasses int, not bool
        return bool(node)
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    if isinstance(node, str):
        return str(node)
    return node


def _line_of(root: Any, path: Sequence[str | int]) -> int | None:
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


def _mentions(tp: Any, wanted: tuple[type, ...]) -> bool:
    """Whether the annotation accepts one of ``wanted`` at its top level (through unions and Annotated)."""
    core, _ = _split(tp)
    if _is_union(core):
        return any(_mentions(a, wanted) for a in get_args(core))
    return core in wanted


def _walk(loc: Sequence[str | int]) -> _Target:
    """Follow a pydantic error location through the Scenario schema."""
    tp: Any = Scenario
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


def _show(v: Any) -> str:
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


def _did_you_mean(word: str, choices: Sequence[str]) -> str:
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
_SECTIONS: dict[str, type[BaseModel]] = {
    "endpoint": Endpoint,
    "workload": Workload,
    "endpoint.timeouts": Timeouts,
}


def _misplaced_hint(key: str) -> str:
    """For an unknown top-level key: the section where a field of that (or a close) name lives."""
    for section, model in _SECTIONS.items():
        match = difflib.get_close_matches(key, list(model.model_fields), n=1, cutoff=0.8)
        if match:
            return f" (did you mean '{section}.{match[0]}'?)"
    match = difflib.get_close_matches(key, list(Level.model_fields), n=1, cutoff=0.8)
    if match:
        return f" (did you mean {match[0]!r}, a key of each item of 'load'?)"
    return ""


def _issues_from_validation(exc: ValidationError, doc: Any, file: str) -> list[ScenarioIssue]:
    """Turn pydantic errors into ``file:line: field: message`` issues, one per error."""
    issues: list[ScenarioIssue] = []
    for err in exc.errors(include_url=False):
        loc = err["loc"]
        kind = err["type"]
        target = _walk(loc)
        field = _display(target.path)
        line = _line_of(doc, target.path) if doc is not None else None
        value = err.get("input")
        key = str(target.path[-1]) if target.path else ""
        if kind == "extra_forbidden":
            hint = _did_you_mean(key, target.siblings)
            if not hint and len(target.path) == 1:
                hint = _misplaced_hint(key)
            if not hint:
                hint = f" (allowed: {', '.join(target.siblings)})"
            msg = f"unknown key {key!r}{hint}"
        elif target.key_choices is not None:  # a dict key outside its Literal set, e.g. slo.ttft
            hint = _did_you_mean(key, target.key_choices) or f" (allowed: {', '.join(target.key_choices)})"
            msg = f"unknown key {key!r}{hint}" if target.key_choices else f"invalid key {key!r}: {err['msg']}"
        elif kind == "missing":
            msg = f"required key {key!r} is missing"
            if target.expect is not None:
                msg += f" (expected {_expectation(*target.expect)})"
        elif kind in ("value_error", "assertion_error"):
            msg = str(err["msg"]).removeprefix("Value error, ").removeprefix("Assertion failed, ")
        elif target.expect is not None:  # type and constraint errors: say what the field accepts
            msg = f"expected {_expectation(*target.expect)}, got {_show(value)}"
            if kind == "literal_error" and isinstance(value, str):
                msg += _did_you_mean(value, [str(a) for a in get_args(_split(target.expect[0])[0])])
        else:
            msg = f"{err['msg']}, got {_show(value)}"
        issue = ScenarioIssue(file, line, field, msg)
        if issue not in issues:
            issues.append(issue)
    return issues


# -------------------------------------------------------------------------------------------- dumping


class _Representer(RoundTripRepresenter):
    """Writes None as an explicit ``null``, which reads better than an empty value in a file people open
    to see what ran. A subclass, so ruamel's shared representer is left alone."""


_Representer.add_representer(type(None), lambda r, _: r.represent_scalar("tag:yaml.org,2002:null", "null"))


def dump_scenario(s: Scenario) -> str:
    """YAML text of the resolved scenario (every default filled in), for a run directory's
    ``scenario.yaml``. It loads back with :func:`load_scenario`.

    Secrets never reach it: the model only holds ``api_key_env`` (a variable name), and header values
    whose name looks secret (``Authorization``, ``*key*``, ``*token*``, ...) as well as credentials in
    ``base_url`` are replaced (:mod:`tpsbench.core.redact`).
    """
    data = s.model_dump(mode="json")
    endpoint = data["endpoint"]
    endpoint["headers"] = redact_headers(endpoint["headers"])
    if endpoint["base_url"] is not None:
        endpoint["base_url"] = redact_url(endpoint["base_url"])
    yaml = YAML(typ="rt")
    yaml.default_flow_style = False
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.Representer = _Representer
    buf = io.StringIO()
    buf.write("# Scenario as resolved by tpsbench (defaults filled in; secrets redacted).\n")
    yaml.dump(data, buf)
    return buf.getvalue()
