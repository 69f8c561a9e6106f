"""Tables of a run, as plain strings: the one place that decides what each column shows, so the Markdown
and HTML serializers print the same figures.

    >>> from tpsbench.results.views import Run
    >>> run = Run.from_summary({"schema": 1, "points": [{"level": 0, "concurrency": 4, "measured": 10,
    ...     "ok": 10, "output_tps": 812.0, "tps_user": {"n": 10, "p50": 203.1, "p10": 190.0}}]})
    >>> headers, rows = level_table(run, COMPACT)
    >>> rows[0][headers.index("TPS/user p50")]
    '203'
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from tpsbench.core import fmt
from tpsbench.results.views import Point, Run


@dataclass(frozen=True, slots=True)
class Column:
    header: str
    cell: Callable[[Point, Run], str]


def _dist_cell(metric: str, stat: str, *, ci: bool = False) -> Callable[[Point, Run], str]:
    """A stat of a metric block; medians with their CI in brackets. Seconds pick ms or s by size."""

    def cell(p: Point, _: Run) -> str:
        d = p.dist(metric)
        if d is None:
            return fmt.DASH
        v = d.get(stat)
        interval = d.p50_ci if ci and stat == "p50" else d.mean_ci if ci and stat == "mean" else None
        if metric.endswith("_s"):
            return fmt.seconds_with_ci(v, interval)
        return fmt.with_ci(v, interval)

    return cell


def _requests(p: Point, _: Run) -> str:
    ok, measured = p.ok, p.measured
    if ok is None and measured is None:
        n = p.dist("ttft_s")
        return fmt.count(n.n) if n is not None else fmt.DASH
    return f"{fmt.count(ok)}/{fmt.count(measured)}"


def _output_tps(p: Point, run: Run) -> str:
    total = p.output_tps
    per_gpu = p.output_tps_per_gpu
    if per_gpu is None and total is not None and run.gpus:
        per_gpu = total / run.gpus
    if per_gpu is None:
        return fmt.tps(total)
    return f"{fmt.tps(total)} ({fmt.tps(per_gpu)}/GPU)"


def _errors(p: Point, _: Run) -> str:
    n = p.n_errors
    rate = p.error_rate
    if not n:
        return "0"
    return f"{n} ({fmt.percent(rate)})" if rate is not None else str(n)


def _per_s(get: Callable[[Point], float | None]) -> Callable[[Point, Run], str]:
    def cell(p: Point, _: Run) -> str:
        v = get(p)
        return fmt.DASH if v is None else f"{v:.3g}/s"

    return cell


def _slo_met(p: Point, _: Run) -> str:
    met = p.slo_met
    return fmt.DASH if met is None else ("yes" if met else "no")


def _tokens_per_chunk(p: Point, _: Run) -> str:
    v = p.stat("tokens_per_chunk", "mean")
    return fmt.DASH if v is None else f"{v:.2f}"


def _level(p: Point, _: Run) -> str:
    return p.label


LEVEL = Column("level", _level)
REQUESTS = Column("requests ok/measured", _requests)
TTFT_P50 = Column("TTFT p50", _dist_cell("ttft_s", "p50", ci=True))
TTFT_P99 = Column("TTFT p99", _dist_cell("ttft_s", "p99"))
TPS_P50 = Column("TPS/user p50", _dist_cell("tps_user", "p50", ci=True))
TPS_P10 = Column("TPS/user p10", _dist_cell("tps_user", "p10"))
OUTPUT_TPS = Column("output TPS", _output_tps)
ERRORS = Column("errors", _errors)

# The pull-request table: what a reviewer needs to see a regression, and nothing more.
COMPACT: tuple[Column, ...] = (LEVEL, REQUESTS, TTFT_P50, TTFT_P99, TPS_P50, TPS_P10, OUTPUT_TPS, ERRORS)
# The HTML report's table adds the tails, chunking and rates.
DETAILED: tuple[Column, ...] = (
    LEVEL,
    REQUESTS,
    TTFT_P50,
    Column("TTFT p90", _dist_cell("ttft_s", "p90")),
    TTFT_P99,
    TPS_P50,
    Column("TPS/user mean", _dist_cell("tps_user", "mean", ci=True)),
    TPS_P10,
    Column("TPS/user p1", _dist_cell("tps_user", "p1")),
    Column("TPOT p50", _dist_cell("tpot_s", "p50", ci=True)),
    Column("inter-chunk p50", _dist_cell("itl_s", "p50")),
    Column("inter-chunk p99", _dist_cell("itl_s", "p99")),
    Column("tokens/chunk mean", _tokens_per_chunk),
    OUTPUT_TPS,
    Column("request rate", _per_s(lambda p: p.request_rate)),
    Column("goodput", _per_s(lambda p: p.goodput)),
    ERRORS,
    Column("SLO met", _slo_met),
)


def level_table(run: Run, columns: Sequence[Column]) -> tuple[list[str], list[list[str]]]:
    """Headers and one row of formatted cells per load point, in the summary's order."""
    headers = [c.header for c in columns]
    if all(p.slo_met is None for p in run.points):
        headers = [h for h in headers if h != "SLO met"]
        columns = [c for c in columns if c.header != "SLO met"]
    return headers, [[c.cell(p, run) for c in columns] for p in run.points]


DEFINITION_HEADERS = ["definition", "per", "formula", "TPS/user"]


def definitions_table(p: Point) -> list[list[str]]:
    """One level's TPS/user under every definition the field publishes (the summary's
    ``tps_user_definitions``): source, grain, formula and value. Empty for a summary without it."""
    block = p.tps_user_definitions
    if not isinstance(block, dict):
        return []
    rows = []
    for d in block.values():
        if isinstance(d, dict):
            v = d.get("value")
            value = fmt.with_ci(float(v), None) if isinstance(v, int | float) else fmt.DASH
            rows.append([str(d.get("source", "")), str(d.get("per", "")), str(d.get("formula", "")), value])
    return rows


TURN_HEADERS = ["turn", "ok", "input tokens", "TTFT p50", "TTFT p99", "TPS/user p50", "TPS/user p10"]


def turn_table(p: Point) -> list[list[str]]:
    """A multi-turn level by turn (the summary's ``by_turn``): how TTFT and TPS/user move as the
    conversation grows (a prefix cache lowers later turns' TTFT per prompt token). Empty otherwise."""
    rows = []
    for t in p.by_turn:
        ttft, tps = t.dist("ttft_s"), t.dist("tps_user")
        rows.append(
            [
                str(t.turn),
                fmt.count(t.n),
                fmt.count(t.input_tokens),
                fmt.seconds_with_ci(ttft.get("p50"), ttft.ci("p50")) if ttft else fmt.DASH,
                fmt.seconds(ttft.get("p99")) if ttft else fmt.DASH,
                fmt.with_ci(tps.get("p50"), tps.ci("p50")) if tps else fmt.DASH,
                fmt.tps(tps.get("p10")) if tps else fmt.DASH,
            ]
        )
    return rows


SERVER_HEADERS = [
    "level",
    "server",
    "generated tokens (server / client)",
    "generated TPS (server / client)",
    "output TPS",
    "running mean / max",
    "waiting max",
    "KV cache max",
    "spec. acceptance",
]


def _num(v: object, fmt_: str = "{:,.0f}") -> str:
    return fmt_.format(v) if isinstance(v, int | float) else fmt.DASH


def server_table(run: Run) -> list[list[str]]:
    """One row per level with a ``server`` block (the endpoint's Prometheus telemetry): its counts beside
    the client's, its queue and KV-cache use. Empty when no level has one."""
    rows = []
    for p in run.points:
        s = p.raw.get("server")
        if not isinstance(s, dict):
            continue
        gauges: list[dict[str, Any]] = [
            g if isinstance(g := s.get(k), dict) else {} for k in ("running", "waiting", "kv_cache_use")
        ]
        running, waiting, kv = gauges
        ratio = s.get("tokens_ratio")
        rows.append(
            [
                p.label,
                ", ".join(s.get("engines") or []) or fmt.DASH,
                f"{_num(s.get('generated_tokens'))} / {_num(s.get('client_tokens'))}"
                + (f" ({ratio:.3f})" if isinstance(ratio, int | float) else ""),
                f"{_num(s.get('generated_tps'))} / {_num(s.get('client_tps'))}",
                _num(s.get("output_tps")),
                f"{_num(running.get('mean'), '{:.1f}')} / {_num(running.get('max'))}",
                _num(waiting.get("max")),
                _num(100 * kv["max"], "{:.1f}%") if isinstance(kv.get("max"), int | float) else fmt.DASH,
                _num(s.get("spec_acceptance"), "{:.2f}"),
            ]
        )
    return rows


def server_notes(run: Run) -> list[tuple[str, str]]:
    """(level label, note) for what the scraper could not do (a URL not scraped, failed scrapes)."""
    out = []
    for p in run.points:
        s = p.raw.get("server")
        if isinstance(s, dict):
            out += [(p.label, str(n)) for n in s.get("notes") or []]
    return out


def run_warnings(run: Run) -> list[tuple[str, str]]:
    """(level label, message) for everything the run recorded against a point, in level order."""
    return [(p.label, w) for p in run.points for w in p.warnings]


def slo_text(run: Run) -> str | None:
    """``TTFT p99 ≤ 2 s · TPS/user p50 ≥ 50 tokens/s``, or None without an SLO."""
    parts = []
    for metric, stats in sorted(run.slo.items()):
        for stat, v in sorted(stats.items()):
            if metric == "tps_user":
                parts.append(f"TPS/user {stat} ≥ {v:g} tokens/s")
            else:
                parts.append(f"{metric.removesuffix('_s').upper()} {stat} ≤ {fmt.seconds(v)}")
    return " · ".join(parts) or None


def run_line(run: Run, *, endpoint: str | None = None) -> str:
    """One line saying what was measured: model, workload, API, GPUs, endpoint, and for a run imported
    from another harness (``tpsbench import``), which one measured it."""
    isl, osl = run.isl_osl
    parts = [f"model {run.model or 'unknown'}"]
    if source := run.info.get("source_tool"):
        parts.insert(0, f"measured by {source} (imported)")
    if isl is not None and osl is not None:
        parts.append(f"ISL/OSL {isl:,.0f}/{osl:,.0f} tokens")
    if run.api:
        parts.append(f"{run.api} API")
    if run.gpus:
        parts.append(f"{run.gpus} GPUs")
    if endpoint:
        parts.append(endpoint)
    return " · ".join(parts)


LEGEND = (
    "Medians are shown with their confidence interval in brackets. TPS/user: output tokens after the first "
    "chunk per second of streaming, per request; p10 is the speed the slowest 10% of users get or worse. "
    "Output TPS: output tokens of the measured requests per second of the measured window."
)


REPEAT_HEADERS = [
    "level",
    "metric",
    "per request (pooled) [95% CI]",
    "run level: mean of repeats [95% t CI]",
    "CV",
]
_REPEAT_METRICS: tuple[tuple[str, str, str], ...] = (
    ("tps_user_p50", "TPS/user p50", "tps"),
    ("tps_user_p10", "TPS/user p10", "tps"),
    ("ttft_s_p50", "TTFT p50", "s"),
    ("ttft_s_p99", "TTFT p99", "s"),
    ("output_tps", "output TPS", "tps"),
)


def repeats_table(run: Run) -> list[list[str]]:
    """For a run of several repeats: each headline metric per level, the per-request estimate over every
    repeat's requests (its bootstrap CI) beside the run-level one (the mean of the per-repeat values, its
    Student-t CI) and the run-to-run CV. Empty for a single run."""
    if run.repeat_count < 2:
        return []
    rows = []
    for p in run.points:
        for name, title, kind in _REPEAT_METRICS:
            est = p.repeat_estimate(name)
            if est is None:
                continue
            show = fmt.seconds_with_ci if kind == "s" else fmt.with_ci
            if name == "output_tps":
                pooled = fmt.tps(p.output_tps)
            else:
                block, stat = name.rsplit("_", 1)
                d = p.dist(block)
                pooled = show(d.get(stat), d.ci(stat)) if d is not None else fmt.DASH
            cv = fmt.percent(est.cv) if est.cv is not None else fmt.DASH
            rows.append([p.label, title, pooled, show(est.mean, est.ci), cv])
    return rows
