"""What the user sees in the terminal while a run goes on: a progress bar per level with live TPS/user,
then one table of every level. Everything rich lives here; the benchmark only calls the Observer API."""

from __future__ import annotations

import statistics
import textwrap
from collections import deque
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rich import box
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from tpsbench.config.scenario import Level
from tpsbench.core import fmt
from tpsbench.results.summary import WARNING_CAUSES
from tpsbench.results.views import Point, Run

WIDTH = 80  # warnings are wrapped here, continuation lines indented, whatever the terminal's width
LIVE_WINDOW = 200  # live TPS/user is the median of the last requests, enough to be stable, quick to move


class RichObserver:
    """Rich progress for :func:`tpsbench.load.benchmark.run_benchmark`. A level's bar counts its warmup and
    measured requests (the total the runner expects); cooldown requests, which go on until the last
    measured one ends and so have no count known up front, are counted beside it (``+N cooldown``)."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True)
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[live]}"),
            TimeElapsedColumn(),
            console=self.console,
            transient=False,
        )
        self._task: TaskID | None = None
        self._tps: deque[float] = deque(maxlen=LIVE_WINDOW)
        self._errors = 0
        self._done = 0  # warmup and measured requests ended: the bar
        self._cooldown = 0

    def __enter__(self) -> RichObserver:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def run_started(self, run_dir: Path, base_url: str, model: str) -> None:
        self.console.print(f"[bold]tpsbench[/] {model} at {base_url}\n  results: {run_dir}")

    def level_started(self, index: int, level: Level, expected: int | None) -> None:
        self._tps.clear()
        self._errors = 0
        self._done = 0
        self._cooldown = 0
        self._task = self.progress.add_task(f"level {index} {level.label}", total=expected, live="")

    def request_done(self, line: dict[str, Any]) -> None:
        if self._task is None:
            return
        cooldown = bool(line.get("cooldown"))
        self._cooldown += cooldown
        self._done += not cooldown
        if line.get("error"):
            self._errors += 1
        elif line.get("tps_user") is not None and not line.get("warmup") and not cooldown:
            self._tps.append(float(line["tps_user"]))
        live = f"TPS/user p50 {statistics.median(self._tps):,.0f}" if self._tps else "warming up"
        if self._cooldown:
            live += f"  +{self._cooldown} cooldown"
        if self._errors:
            live += f"  [red]{self._errors} errors[/]"
        self.progress.update(self._task, completed=self._done, live=live)

    def level_done(self, index: int, point: dict[str, Any]) -> None:
        if self._task is not None:
            self.progress.update(self._task, total=self._done, completed=self._done)
        stopped = Point(point).self_check.get("stopped")
        if stopped:
            self.console.print(f"  level {index}: {stopped}", markup=False, highlight=False)

    def message(self, text: str) -> None:
        self.console.print(f"[yellow]{text}[/]")


def capacity_line(capacity: Mapping[str, Any]) -> str:
    """A sweep's verdict in one line (:attr:`tpsbench.results.views.Run.capacity`, written by
    :func:`tpsbench.load.sweep.capacity`): the knee's load and throughput, and why the sweep stopped."""
    c, r = capacity.get("concurrency"), capacity.get("rate")
    why = capacity.get("reason_stopped") or "running"
    if capacity.get("reason_detail"):
        why += f": {capacity['reason_detail']}"
    if c is None and r is None:
        return f"[bold]capacity[/]: none (stopped: {why})"
    load = f"c={c}" if c is not None else f"rate={r:g}/s"
    tps_user, ttft = capacity.get("tps_user_p50"), capacity.get("ttft_s_p99")
    goodput = capacity.get("goodput")
    return (
        f"[bold]capacity[/]: {load}, output TPS {fmt.number(capacity.get('output_tps'), 0)}"
        + (f" ({fmt.number(goodput, 2)} req/s within SLO)" if goodput is not None else "")
        + f", TPS/user p50 {fmt.number(tps_user, 0)}, TTFT p99 {fmt.ms(ttft)} ms (stopped: {why})"
    )


def wrap(text: str, width: int = WIDTH) -> str:
    """``text`` wrapped at ``width`` columns, continuation lines indented by four spaces."""
    return textwrap.fill(text, width=width, subsequent_indent="    ", break_on_hyphens=False)


def warning_lines(points: Sequence[Point], width: int = WIDTH) -> list[str]:
    """One wrapped line per warning cause: the cause's sentence, then each level it applies to with that
    level's figures (times in ms), in level order. Points without ``warning_causes`` (older summaries) show
    their warnings one per level."""
    causes: dict[str, list[str]] = {}
    loose: list[str] = []
    for p in points:
        coded = p.warning_causes
        if coded is None:
            loose += [f"warning: {p.label}: {w}" for w in p.warnings]
            continue
        for cause, detail in coded:
            causes.setdefault(cause, []).append(f"{p.label} ({detail})")
    out = []
    for cause, where in causes.items():
        general = WARNING_CAUSES.get(cause, cause)
        out.append(wrap(f"warning: {general}. Levels: {'; '.join(where)}", width))
    return out + [wrap(line, width) for line in loose]


def summary_table(run: Run) -> Table:
    """One row per level: the numbers users compare (median and spread, with N, never a bare number).
    Short headers, so that the table fits an 80-column terminal without truncating a number."""
    title = f"{run.model or ''}: TTFT in ms; TPS/user, server, /GPU in tokens/s"
    table = Table(
        title=title,
        caption="! = client-bound: timestamps may be late, see the warnings"
        if any(p.client_bound for p in run.points)
        else None,
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        # One space before each cell, beside the box's one-space divider: with (0, 1) a throughput run's
        # rows (2048/2048, !c=2048, 69,116) came to 82 columns and the err column was cut at 80.
        padding=(0, 0, 0, 1),
        min_width=min(len(title), WIDTH),  # a title wider than its table wraps
    )
    for col in ("load", "ok/n", "TTFT p50", "p99", "TPS/user p50", "p10", "server", "/GPU", "err"):
        table.add_column(col, justify="right", no_wrap=True, min_width=len(col))
    for p in run.points:
        errors = p.n_errors
        table.add_row(
            ("[red]![/]" if p.client_bound else "") + p.label,
            f"{p.ok or 0}/{p.measured or 0}",
            fmt.ms(p.stat("ttft_s", "p50")),
            fmt.ms(p.stat("ttft_s", "p99")),
            fmt.number(p.stat("tps_user", "p50"), 0),
            fmt.number(p.stat("tps_user", "p10"), 0),
            fmt.number(p.output_tps, 0),
            fmt.number(p.output_tps_per_gpu, 0),
            f"[red]{errors}[/]" if errors else "0",
        )
    return table
