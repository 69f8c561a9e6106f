"""A run directory as the report reads it: ``summary.json`` (required), ``requests.jsonl`` and
``metadata.json`` (optional). Only the public run-directory contract (docs/architecture.md) is read here;
reports never import the client, the runner or the metrics code.

    >>> run = Run.from_summary({"schema": 1, "points": [{"level": 0, "concurrency": 4}]})
    >>> run.points[0].label
    'c=4'
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

SCHEMA = 1  # the summary.json schema this report understands
STATS = ("mean", "std", "min", "p1", "p5", "p10", "p50", "p90", "p95", "p99", "max")
# Stats in the order a cumulative distribution visits them (for charts built from the summary alone).
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
class Dist:
    """One metric block of a point (``ttft_s``, ``tps_user``, ...): its stats and confidence intervals."""

    n: int
    stats: Mapping[str, float]
    p50_ci: tuple[float, float] | None = None
    mean_ci: tuple[float, float] | None = None

    @classmethod
    def from_json(cls, block: object) -> Dist | None:
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


@dataclass(frozen=True)
class Point:
    """One load level of ``summary.json``, with typed access to the fields the report uses."""

    raw: Mapping[str, Any]

    @property
    def level(self) -> int:
        lvl = _num(self.raw.get("level"))
        return int(lvl) if lvl is not None else 0

    @property
    def concurrency(self) -> int | None:
        c = _num(self.raw.get("concurrency"))
        return int(c) if c is not None else None

    @property
    def rate(self) -> float | None:
        return _num(self.raw.get("rate"))

    @property
    def achieved_concurrency(self) -> int | None:
        """Mean requests in flight the runner measured (open-loop points have no set concurrency)."""
        check = self.raw.get("self_check")
        c = _num(check.get("achieved_concurrency")) if isinstance(check, Mapping) else None
        return max(1, round(c)) if c is not None else None

    @property
    def label(self) -> str:
        """``c=16`` (closed loop), ``rate=2.5/s`` (open loop) or ``level 3`` when the load is unknown."""
        if self.concurrency is not None:
            return f"c={self.concurrency}"
        if self.rate is not None:
            return f"rate={self.rate:g}/s"
        return f"level {self.level}"

    @property
    def load_key(self) -> tuple[str, float]:
        """What makes two runs' points the same load: its kind and value."""
        if self.concurrency is not None:
            return ("c", float(self.concurrency))
        if self.rate is not None:
            return ("rate", self.rate)
        return ("level", float(self.level))

    def dist(self, metric: str) -> Dist | None:
        return Dist.from_json(self.raw.get(metric))

    def stat(self, metric: str, stat: str) -> float | None:
        d = self.dist(metric)
        return d.get(stat) if d is not None else None

    def number(self, key: str) -> float | None:
        return _num(self.raw.get(key))

    @property
    def errors(self) -> dict[str, int]:
        errs = self.raw.get("errors")
        if not isinstance(errs, Mapping):
            return {}
        counts = {str(k): _num(v) for k, v in errs.items()}
        return {k: int(v) for k, v in counts.items() if v is not None and v > 0}

    @property
    def n_errors(self) -> int:
        return sum(self.errors.values())

    @property
    def client_bound(self) -> bool:
        check = self.raw.get("self_check")
        return isinstance(check, Mapping) and check.get("client_bound") is True

    @property
    def n_short(self) -> int:
        """Successful requests that returned fewer tokens than asked for."""
        return int(self.number("short_outputs") or 0)

    @property
    def n_estimated(self) -> int:
        """Successful requests whose token counts were estimated from characters (no usage reported)."""
        sources = self.raw.get("token_sources")
        return int(_num(sources.get("estimate")) or 0) if isinstance(sources, Mapping) else 0

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
        recorded = [str(w) for w in self.raw.get("warnings") or [] if str(w).strip()]
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


@dataclass(frozen=True)
class Run:
    """One run directory: its summary, optional metadata, and the raw request lines when present."""

    summary: Mapping[str, Any]
    path: Path | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)
    requests: Sequence[Mapping[str, Any]] = ()

    @classmethod
    def from_summary(cls, summary: Mapping[str, Any], path: Path | None = None) -> Run:
        check_schema(summary, path)
        return cls(summary=summary, path=path)

    @cached_property
    def points(self) -> list[Point]:
        pts = self.summary.get("points") or []
        return [Point(p) for p in pts if isinstance(p, Mapping)]

    @property
    def info(self) -> Mapping[str, Any]:
        run = self.summary.get("run")
        return run if isinstance(run, Mapping) else {}

    @property
    def name(self) -> str:
        name = self.info.get("name")
        if name:
            return str(name)
        return self.path.name if self.path is not None else "run"

    @property
    def model(self) -> str | None:
        m = self.info.get("model")
        return str(m) if m else None

    @property
    def api(self) -> str | None:
        a = self.info.get("api")
        return str(a) if a else None

    @property
    def gpus(self) -> int | None:
        g = _num(self.info.get("gpus"))
        return int(g) if g is not None and g >= 1 else None

    @property
    def isl_osl(self) -> tuple[float | None, float | None]:
        """Mean input and output tokens of the workload (ISL/OSL), as the summary states them."""
        w = self.info.get("workload")
        if not isinstance(w, Mapping):
            return (None, None)
        return (token_mean(w.get("input_tokens")), token_mean(w.get("output_tokens")))

    @property
    def prompts_file(self) -> str | None:
        """The workload's prompts file, when it came from one (a different file is a different workload)."""
        w = self.info.get("workload")
        f = w.get("prompts_file") if isinstance(w, Mapping) else None
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

    @cached_property
    def _measured_by_level(self) -> dict[int, list[Mapping[str, Any]]]:
        by_level: dict[int, list[Mapping[str, Any]]] = {}
        for r in self.requests:
            level = r.get("level")
            if isinstance(level, int) and not r.get("warmup") and r.get("error") is None:
                by_level.setdefault(level, []).append(r)
        return by_level

    def measured(self, level: int) -> list[Mapping[str, Any]]:
        """The raw lines of one level's measured, successful requests (warmup and failures excluded)."""
        return self._measured_by_level.get(level, [])


def check_schema(summary: Mapping[str, Any], path: Path | None = None) -> None:
    """Refuse a summary this report cannot read, naming the file and what was expected."""
    where = str(path) if path is not None else "summary"
    schema = summary.get("schema")
    if not isinstance(schema, int) or isinstance(schema, bool):
        raise ValueError(f"{where}: no integer 'schema' field; is this a tpsbench summary.json?")
    if schema > SCHEMA:
        raise ValueError(
            f"{where}: summary schema {schema} is newer than this report understands ({SCHEMA}); "
            "upgrade tpsbench"
        )
    if not isinstance(summary.get("points"), list):
        raise ValueError(f"{where}: 'points' must be a list of load points")


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """JSON lines; a torn last line (the run was killed mid-write) is skipped, any other bad line raises."""
    out: list[dict[str, Any]] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            if i == len(lines) - 1:
                break
            raise ValueError(f"{path}:{i + 1}: not JSON: {e.msg}") from e
        if isinstance(obj, dict):
            out.append(obj)
    return out


def load_run(run_dir: Path, *, requests: bool = True) -> Run:
    """Read a run directory. Only ``summary.json`` is required."""
    run_dir = Path(run_dir)
    summary_path = run_dir / "summary.json"
    if not summary_path.is_file():
        raise FileNotFoundError(f"{summary_path}: not found; is {run_dir} a tpsbench run directory?")
    summary = json.loads(summary_path.read_text(encoding="utf-8"))
    if not isinstance(summary, dict):
        raise ValueError(f"{summary_path}: expected a JSON object")
    check_schema(summary, summary_path)
    meta_path = run_dir / "metadata.json"
    metadata = json.loads(meta_path.read_text(encoding="utf-8")) if meta_path.is_file() else {}
    req_path = run_dir / "requests.jsonl"
    lines = read_jsonl(req_path) if requests and req_path.is_file() else []
    return Run(
        summary=summary,
        path=run_dir,
        metadata=metadata if isinstance(metadata, dict) else {},
        requests=lines,
    )
