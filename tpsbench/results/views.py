"""Typed, read-only views of a run directory: :class:`Run`, :class:`Point` (one load level) and
:class:`Distribution` (one metric block). Every reader (gate, report, compare, sweep, console, notebook)
reads summaries through these, so the summary's point keys are read by name here and nowhere else
(:data:`POINT_KEYS`; a test checks them against a real ``summarize_level`` point).

Files are read by :mod:`tpsbench.results.files`; records are read on demand, the first time
:attr:`Run.records` (or a point's records) is asked for.

    >>> run = Run.from_summary({"schema": 1, "points": [{"level": 0, "concurrency": 4, "output_tps": 9.5,
    ...     "tps_user": {"n": 3, "p50": 20.0, "p50_ci": [18.0, 21.0]}}]})
    >>> p = run.points[0]
    >>> p.label, p.output_tps, p.dist("tps_user").p50, p.dist("tps_user").p50_ci
    ('c=4', 9.5, 20.0, (18.0, 21.0))
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from tpsbench.core.loadlabel import load_label
from tpsbench.core.record import ErrorKind, RequestRecord
from tpsbench.results import files
from tpsbench.results.repeats import RepeatEstimate
from tpsbench.results.summary import POINT_METRICS

__all__ = [
    "POINT_KEYS",
    "QUANTILES",
    "RAW_KEYS",
    "STATS",
    "Distribution",
    "Point",
    "RepeatEstimate",
    "Run",
    "open_run",
    "token_mean",
]

# The stats of a Distribution, and (for charts drawn from the summary alone) the order a cumulative
# distribution visits them.
STATS: tuple[str, ...] = ("mean", "std", "min", "p1", "p5", "p10", "p50", "p90", "p95", "p99", "max")
QUANTILES: tuple[tuple[str, float], ...] = (
    ("min", 0.0),
    ("p1", 0.01),
    ("p5", 0.05),
    ("p10", 0.10),
    ("p50", 0.50),
    ("p90", 0.90),
    ("p95", 0.95),
    ("p99", 0.99),
    ("max", 1.0),
)

# Every key of a summary point this module reads: the contract of results/summary.py's summarize_level
# (tests/test_views_contract.py checks it against a real point, both ways). A key the writer adds goes here
# with a Point property, or in RAW_KEYS when readers only pass it on.
POINT_KEYS: tuple[str, ...] = (
    *("level", "concurrency", "rate", "arrival", "trace", "requests", "measured", "warmup", "ok", "errors"),
    *("window_s", *POINT_METRICS, "output_tps", "output_tps_per_gpu", "request_rate", "error_rate"),
    *("goodput", "tps_user_mlperf", "tps_user_vllm", "tps_user_definitions", "slo_met", "token_sources"),
    *("short_outputs", "self_check", "warnings", "warning_causes", "first_error", "by_turn"),
    "repeats",  # a run of several repeats (summary schema 2): results/repeats.py
)
# Keys summarize_level writes that no reader interprets (shown as written: summary.csv, report tables).
RAW_KEYS: tuple[str, ...] = ("ramp_s", "max_concurrency", "resent", "server", "cooldown")


def _num(value: object) -> float | None:
    """A finite float, or None for anything else (null, NaN, strings, booleans)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    f = float(value)
    return f if math.isfinite(f) else None


def _interval(value: object) -> tuple[float, float] | None:
    if not isinstance(value, Sequence) or isinstance(value, str) or len(value) != 2:
        return None
    lo, hi = _num(value[0]), _num(value[1])
    return (lo, hi) if lo is not None and hi is not None else None


def token_mean(value: object) -> float | None:
    """The mean of a workload token count: an int, or a distribution block ``{"mean": ..}``."""
    if isinstance(value, Mapping):
        return _num(value.get("mean"))
    return _num(value)


@dataclass(frozen=True, slots=True)
class Distribution:
    """One metric block of a point (``ttft_s``, ``tps_user``, ...): n, its finite stats and its CIs."""

    n: int
    stats: Mapping[str, float]
    p50_ci: tuple[float, float] | None = None
    mean_ci: tuple[float, float] | None = None

    @classmethod
    def from_block(cls, block: object) -> Distribution | None:
        """Parse a block; None when it is missing or holds no finite stat (e.g. every request failed)."""
        if not isinstance(block, Mapping):
            return None
        stats = {k: v for k in STATS if (v := _num(block.get(k))) is not None}
        if not stats:
            return None
        n = _num(block.get("n"))
        return cls(
            n=int(n) if n is not None else 0,
            stats=stats,
            p50_ci=_interval(block.get("p50_ci")),
            mean_ci=_interval(block.get("mean_ci")),
        )

    def get(self, stat: str) -> float | None:
        return self.stats.get(stat)

    def ci(self, stat: str) -> tuple[float, float] | None:
        """The confidence interval of ``stat`` when the summary has one (the median's and the mean's)."""
        return self.p50_ci if stat == "p50" else self.mean_ci if stat == "mean" else None

    @property
    def mean(self) -> float | None:
        return self.stats.get("mean")

    @property
    def p50(self) -> float | None:
        return self.stats.get("p50")

    @property
    def p99(self) -> float | None:
        return self.stats.get("p99")


@dataclass(frozen=True)
class TurnPoint:
    """One turn index of a multi-turn level: ``turn``, ``n``, mean ``input_tokens`` and metric blocks."""

    raw: Mapping[str, Any]

    @property
    def turn(self) -> int:
        t = _num(self.raw.get("turn"))
        return int(t) if t is not None else 0

    @property
    def n(self) -> int:
        n = _num(self.raw.get("n"))
        return int(n) if n is not None else 0

    @property
    def input_tokens(self) -> float | None:
        return _num(self.raw.get("input_tokens"))

    def dist(self, metric: str) -> Distribution | None:
        """The block ``metric`` (one of ``summary.TURN_METRICS``)."""
        return Distribution.from_block(self.raw.get(metric))


@dataclass(frozen=True)
class Point:
    """One load level of ``summary.json``, typed. ``run`` gives access to the level's records."""

    raw: Mapping[str, Any]
    run: Run | None = field(default=None, repr=False, compare=False)

    def _get(self, key: str) -> Any:
        return self.raw.get(key)

    @property
    def level(self) -> int:
        lvl = _num(self._get("level"))
        return int(lvl) if lvl is not None else 0

    @property
    def concurrency(self) -> int | None:
        c = _num(self._get("concurrency"))
        return int(c) if c is not None else None

    @property
    def rate(self) -> float | None:
        return _num(self._get("rate"))

    @property
    def arrival(self) -> str | None:
        a = self._get("arrival")
        return str(a) if a else None

    @property
    def label(self) -> str:
        """The one load label (:func:`tpsbench.core.loadlabel.load_label`)."""
        trace = self._get("trace")
        return load_label(
            self.concurrency, self.rate, self.arrival, level=self.level, trace=str(trace) if trace else None
        )

    @property
    def by_turn(self) -> list[TurnPoint]:
        """A multi-turn level's breakdown by turn (``summary.turn_breakdown``); empty otherwise."""
        raw = self._get("by_turn")
        if not isinstance(raw, list):
            return []
        return [TurnPoint(t) for t in raw if isinstance(t, Mapping)]

    def dist(self, metric: str) -> Distribution | None:
        """The metric block ``metric`` (one of ``summary.POINT_METRICS``)."""
        if metric not in POINT_METRICS:
            raise KeyError(
                f"{metric!r} is not a metric block of a summary point ({', '.join(POINT_METRICS)})"
            )
        return Distribution.from_block(self._get(metric))

    def stat(self, metric: str, stat: str) -> float | None:
        d = self.dist(metric)
        return d.get(stat) if d is not None else None

    def _count(self, key: str) -> int | None:
        v = _num(self._get(key))
        return int(v) if v is not None else None

    @property
    def requests(self) -> int | None:
        return self._count("requests")

    @property
    def measured(self) -> int | None:
        return self._count("measured")

    @property
    def ok(self) -> int | None:
        return self._count("ok")

    @property
    def window_s(self) -> float | None:
        return _num(self._get("window_s"))

    @property
    def output_tps(self) -> float | None:
        return _num(self._get("output_tps"))

    @property
    def output_tps_per_gpu(self) -> float | None:
        return _num(self._get("output_tps_per_gpu"))

    @property
    def request_rate(self) -> float | None:
        return _num(self._get("request_rate"))

    @property
    def error_rate(self) -> float | None:
        return _num(self._get("error_rate"))

    @property
    def goodput(self) -> float | None:
        return _num(self._get("goodput"))

    @property
    def tps_user_mlperf(self) -> float | None:
        return _num(self._get("tps_user_mlperf"))

    @property
    def tps_user_vllm(self) -> float | None:
        return _num(self._get("tps_user_vllm"))

    @property
    def tps_user_definitions(self) -> Mapping[str, Mapping[str, Any]]:
        """Every published TPS/user definition at this point (see :mod:`tpsbench.results.definitions`):
        ``{key: {source, per, formula, value}}``; empty for a summary without it."""
        block = self._get("tps_user_definitions")
        if not isinstance(block, Mapping):
            return {}
        return {str(k): v for k, v in block.items() if isinstance(v, Mapping)}

    @property
    def slo_met(self) -> bool | None:
        met = self._get("slo_met")
        return met if isinstance(met, bool) else None

    @property
    def errors(self) -> dict[str, int]:
        """Failed measured requests by error kind (kinds with a zero count left out)."""
        errs = self._get("errors")
        if not isinstance(errs, Mapping):
            return {}
        counts = {str(k): _num(v) for k, v in errs.items()}
        return {k: int(v) for k, v in counts.items() if v is not None and v > 0}

    @property
    def has_error_counts(self) -> bool:
        """Whether the point states its failed requests by kind (every tpsbench summary does)."""
        return isinstance(self._get("errors"), Mapping)

    @property
    def n_errors(self) -> int:
        return sum(self.errors.values())

    @property
    def self_check(self) -> Mapping[str, Any]:
        check = self._get("self_check")
        return check if isinstance(check, Mapping) else {}

    @property
    def loop_lag_p99_s(self) -> float | None:
        return _num(self.self_check.get("loop_lag_p99_s"))

    @property
    def achieved_concurrency(self) -> int | None:
        """Mean requests in flight the runner measured, rounded, at least 1 (open-loop points have no set
        concurrency)."""
        c = _num(self.self_check.get("achieved_concurrency"))
        return max(1, round(c)) if c is not None else None

    @property
    def client_bound(self) -> bool:
        return self.self_check.get("client_bound") is True

    @property
    def n_short(self) -> int:
        """Successful requests that returned fewer tokens than asked for."""
        return int(_num(self._get("short_outputs")) or 0)

    @property
    def token_sources(self) -> dict[str, int]:
        sources = self._get("token_sources")
        if not isinstance(sources, Mapping):
            return {}
        return {str(k): int(v) for k, raw in sources.items() if (v := _num(raw)) is not None}

    @property
    def n_estimated(self) -> int:
        """Successful requests whose token counts were estimated from characters (no usage reported)."""
        return self.token_sources.get("estimate", 0)

    @property
    def flagged(self) -> bool:
        """Whether the point's numbers are suspect for a structural reason (marked on charts): the client
        was the bottleneck, requests failed, answers came back short or token counts were estimated."""
        return self.client_bound or bool(self.n_errors or self.n_short or self.n_estimated)

    @property
    def warnings(self) -> list[str]:
        """What the run recorded against this point, verbatim; plus a client-bound note when
        ``self_check.client_bound`` is set and no recorded warning mentions the client. A summary without
        a ``warnings`` field (another writer) gets its errors, short outputs and estimated counts spelled
        out."""
        recorded = [str(w) for w in self._get("warnings") or [] if str(w).strip()]
        derived: list[str] = []
        if self.client_bound and not any("client" in w.lower() for w in recorded):
            derived.append(
                "client-bound (self_check.client_bound): the load generator, not the server, may have "
                "limited this point; rerun with more workers or fewer streams"
            )
        if "warnings" in self.raw:
            return recorded + derived
        if self.n_errors:
            kinds = ", ".join(f"{k} {v}" for k, v in sorted(self.errors.items()))
            derived.append(f"{self.n_errors} failed requests ({kinds})")
        if self.n_short:
            derived.append(f"{self.n_short} requests ended before the requested output length")
        if self.n_estimated:
            derived.append(
                f"{self.n_estimated} requests had token counts estimated from characters "
                "(no usage from the server)"
            )
        return recorded + derived

    @property
    def warning_causes(self) -> list[tuple[str, str]] | None:
        """``(cause, detail)`` of each coded warning (``summary.WARNING_CAUSES``); None in older summaries."""
        coded = self._get("warning_causes")
        if not isinstance(coded, list):
            return None
        return [(str(c.get("cause")), str(c.get("detail"))) for c in coded if isinstance(c, Mapping)]

    @property
    def first_error(self) -> Mapping[str, Any]:
        """The first failed measured request's kind, status and detail (summary.first_error); {} if none."""
        first = self._get("first_error")
        return first if isinstance(first, Mapping) else {}

    # -- repeats (summary schema 2) --

    @property
    def repeat_count(self) -> int:
        """How many repeats of the plan this point pools (1 for a single run)."""
        block = self._get("repeats")
        n = _num(block.get("n")) if isinstance(block, Mapping) else None
        return int(n) if n is not None and n >= 1 else 1

    def repeat_estimate(self, name: str) -> RepeatEstimate | None:
        """The run-level estimate of ``name`` (``tps_user_p50``, ``output_tps``, ...: the gate's metric
        names) across repeats; None for a single run or a metric without values."""
        block = self._get("repeats")
        if not isinstance(block, Mapping) or not isinstance(block.get("metrics"), Mapping):
            return None
        level = _num(block.get("ci_level")) or 0.95
        return RepeatEstimate.from_block(block["metrics"].get(name), level)

    # -- records (on demand) --

    @property
    def records(self) -> tuple[RequestRecord, ...] | None:
        """The level's measured records (warmup and cooldown excluded, failed ones included); None without
        records."""
        if self.run is None or not self.run.has_records:
            return None
        return self.run.level_records(self.level)

    @property
    def ok_records(self) -> tuple[RequestRecord, ...]:
        """The level's measured, successful records (empty without records)."""
        return tuple(r for r in self.records or () if r.ok)

    def counted_records(self) -> tuple[RequestRecord, ...] | None:
        """Measured records but ``cancelled`` ones (an interrupted run is not the server's fault)."""
        recs = self.records
        return None if recs is None else tuple(r for r in recs if r.error is not ErrorKind.CANCELLED)


@dataclass(frozen=True)
class Run:
    """One run: its summary (required), metadata (optional) and records (read on demand when the run
    directory has a requests.jsonl)."""

    summary: Mapping[str, Any]
    path: Path | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)
    records_path: Path | None = None

    @classmethod
    def from_summary(cls, summary: Mapping[str, Any], path: Path | None = None) -> Run:
        """A run of a summary document alone (checked by :func:`files.check_summary`)."""
        files.check_summary(dict(summary), path or "summary")
        return cls(summary=summary, path=path)

    @cached_property
    def points(self) -> list[Point]:
        return [Point(p, self) for p in self.summary.get("points") or [] if isinstance(p, Mapping)]

    @property
    def info(self) -> Mapping[str, Any]:
        """The summary's ``run`` block (name, model, api, gpus, workload, ...)."""
        run = self.summary.get("run")
        return run if isinstance(run, Mapping) else {}

    def _text(self, key: str) -> str | None:
        v = self.info.get(key)
        return str(v) if v else None

    @property
    def name(self) -> str:
        return self._text("name") or (self.path.name if self.path is not None else "run")

    @property
    def tool_version(self) -> str | None:
        """The version of the tool that wrote the summary (``tool.version``)."""
        tool = self.summary.get("tool")
        return str(tool["version"]) if isinstance(tool, Mapping) and tool.get("version") else None

    @property
    def scenario_name(self) -> str | None:
        return self._text("scenario_name")

    @property
    def endpoint(self) -> str | None:
        return self._text("endpoint")

    @property
    def model(self) -> str | None:
        return self._text("model")

    @property
    def api(self) -> str | None:
        return self._text("api")

    @property
    def reference_endpoint(self) -> bool:
        """Whether the run measured the bundled reference endpoint."""
        return self.info.get("reference_endpoint") is True

    @property
    def gpus(self) -> int | None:
        g = _num(self.info.get("gpus"))
        return int(g) if g is not None and g >= 1 else None

    @property
    def workload(self) -> Mapping[str, Any]:
        w = self.info.get("workload")
        return w if isinstance(w, Mapping) else {}

    @property
    def isl_osl(self) -> tuple[float | None, float | None]:
        """Mean input and output tokens of the workload (ISL/OSL), as the summary states them."""
        return (token_mean(self.workload.get("input_tokens")), token_mean(self.workload.get("output_tokens")))

    @property
    def prompts_file(self) -> str | None:
        """The workload's prompts file, when it came from one (a different file is a different workload)."""
        f = self.workload.get("prompts_file")
        return str(f) if f else None

    @property
    def slo(self) -> dict[str, dict[str, float]]:
        slo = self.summary.get("slo")
        if not isinstance(slo, Mapping):
            return {}
        out: dict[str, dict[str, float]] = {}
        for metric, stats in slo.items():
            if isinstance(stats, Mapping):
                kept = {str(s): f for s, v in stats.items() if (f := _num(v)) is not None}
                if kept:
                    out[str(metric)] = kept
        return out

    @property
    def repeats(self) -> Mapping[str, Any]:
        """The summary's ``repeats`` block (count, order, cool-down, runs, differences); empty for a run
        of one repeat."""
        r = self.summary.get("repeats")
        return r if isinstance(r, Mapping) else {}

    @property
    def repeat_count(self) -> int:
        n = _num(self.repeats.get("count"))
        return int(n) if n is not None and n >= 1 else 1

    @property
    def repeat_differences(self) -> list[str]:
        """What differed between the repeats, one sentence per metric and load (summary ``repeats``)."""
        return [str(d) for d in self.repeats.get("differences") or []]

    @property
    def capacity(self) -> Mapping[str, Any] | None:
        """A sweep's ``capacity`` block (see :func:`tpsbench.load.sweep.capacity`), None for fixed levels."""
        c = self.summary.get("capacity")
        return c if isinstance(c, Mapping) else None

    # -- records (on demand) --

    @property
    def has_records(self) -> bool:
        return self.records_path is not None and self.records_path.exists()

    @cached_property
    def _loaded(self) -> tuple[tuple[RequestRecord, ...], tuple[str, ...]]:
        if not self.has_records:
            return (), ()
        assert self.records_path is not None
        warnings: list[str] = []
        records = tuple(files.read_records(self.records_path, warn=warnings.append))
        return records, tuple(warnings)

    @property
    def records(self) -> tuple[RequestRecord, ...]:
        """Every record of requests.jsonl (warmup and failures included); empty without the file. Raises
        :class:`files.RunFileError` for a corrupt file."""
        return self._loaded[0]

    @property
    def record_warnings(self) -> tuple[str, ...]:
        """What reading the records warned about (a torn last line)."""
        return self._loaded[1]

    @cached_property
    def _by_level(self) -> dict[int, tuple[RequestRecord, ...]]:
        by_level: dict[int, list[RequestRecord]] = {}
        for r in self.records:
            if r.measured:
                by_level.setdefault(r.level, []).append(r)
        return {k: tuple(v) for k, v in by_level.items()}

    def level_records(self, level: int) -> tuple[RequestRecord, ...]:
        """One level's measured records (warmup and cooldown excluded, failures included)."""
        return self._by_level.get(level, ())

    def measured(self, level: int) -> list[RequestRecord]:
        """One level's measured, successful records (warmup, cooldown and failures excluded)."""
        return [r for r in self.level_records(level) if r.ok]


def open_run(path: str | Path) -> Run:
    """Open a run directory (``summary.json`` required; ``metadata.json`` and ``requests.jsonl`` optional)
    or a ``summary.json`` file alone. :class:`files.RunFileError` names the missing or bad file."""
    path = Path(path)
    if path.is_dir():
        summary = files.read_summary(path / files.SUMMARY_JSON)
        return Run(
            summary=summary,
            path=path,
            metadata=files.read_metadata(path / files.METADATA),
            records_path=files.requests_path(path),
        )
    if path.exists():
        return Run(summary=files.read_summary(path), path=path)
    raise files.RunFileError(f"{path}: no such run directory or summary.json")
