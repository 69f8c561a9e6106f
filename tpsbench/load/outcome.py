"""The exit contract of ``tpsbench run``: which outcome a finished run had, and why, in a few lines.

- **0**: every level ran within its error budget (failed measured requests / measured requests <=
  ``error_budget``, default 1%; cancelled requests of an interrupted run are not failures, and warmup and
  cooldown requests, cancelled or failed, are not measured);
- **1**: the run finished, but a level exceeded the budget, had no successful request, or stopped early
  because every request failed;
- **2**: bad input or an unusable endpoint (the scenario or the preflight failed: nothing measured);
- **130**: interrupted (Ctrl-C); what finished is kept and valid.

:func:`judge` turns a run's points (read through :class:`~tpsbench.results.views.Point`) into a
:class:`Verdict` whose ``lines`` are what the terminal prints last: the outcome, then per failing level the
most common error kind and the server's own words (the level's first error body, cut short and already
redacted by the client).

    >>> ok = {"concurrency": 1, "rate": None, "measured": 10, "ok": 10, "errors": {}}
    >>> judge([ok], budget=0.01).lines
    ['outcome: exit 0, every level within the 1% error budget']
    >>> bad = {"concurrency": 4, "rate": None, "measured": 8, "ok": 0, "errors": {"http_4xx": 8},
    ...        "first_error": {"kind": "http_4xx", "status": 404, "detail": "no such model"}}
    >>> print("\\n".join(judge([ok, bad], budget=0.01).lines))
    outcome: exit 1, 1 of 2 levels over the 1% error budget
      c=4: no successful request (8 of 8 failed); most common: http_4xx (8); first: HTTP 404 "no such model"
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tpsbench.results.views import Point

__all__ = ["EXIT_BAD_INPUT", "EXIT_INTERRUPTED", "EXIT_OK", "EXIT_OVER_BUDGET", "Verdict", "judge"]

EXIT_OK = 0
EXIT_OVER_BUDGET = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130
DETAIL_CHARS = 160  # the server's words on the terminal: enough to read the cause, one or two lines


@dataclass(frozen=True)
class Verdict:
    exit_code: int
    lines: list[str]


def _pct(x: float) -> str:
    return f"{100 * x:g}%"


def _failing(p: Point, budget: float) -> str | None:
    """Why level ``p`` breaks the contract (None: within budget)."""
    errors = {k: v for k, v in p.errors.items() if k != "cancelled"}
    measured = (p.measured or 0) - p.errors.get("cancelled", 0)
    failed = sum(errors.values())
    stopped = p.self_check.get("stopped")
    if stopped:
        why = str(stopped)
    elif measured <= 0:
        return None if p.self_check.get("interrupted") else "no measured request"
    elif not p.ok:
        why = f"no successful request ({failed} of {measured} failed)"
    elif failed / measured > budget:
        why = f"{failed} of {measured} failed ({_pct(round(failed / measured, 4))})"
    else:
        return None
    if errors:
        kind, n = max(errors.items(), key=lambda kv: (kv[1], kv[0]))
        why += f"; most common: {kind} ({n})"
    if first := p.first_error:
        status = first.get("status")
        head = f"HTTP {status}" if status else str(first.get("kind"))
        detail = " ".join(str(first.get("detail") or "").split())
        if len(detail) > DETAIL_CHARS:
            detail = detail[:DETAIL_CHARS] + "..."
        why += f"; first: {head}" + (f' "{detail}"' if detail else "")
    return why


def judge(points: Sequence[Mapping[str, Any]], *, budget: float, interrupted: bool = False) -> Verdict:
    """The run's exit code and its closing lines (see the module docstring)."""
    failing = [(p, why) for p in map(Point, points) if (why := _failing(p, budget)) is not None]
    detail = [f"  {p.label}: {why}" for p, why in failing]
    if interrupted:
        head = (
            f"outcome: exit {EXIT_INTERRUPTED}, interrupted after {len(points)} level(s); partial but valid"
        )
        return Verdict(EXIT_INTERRUPTED, [head, *detail])
    if not points:
        return Verdict(EXIT_OVER_BUDGET, [f"outcome: exit {EXIT_OVER_BUDGET}, no level ran"])
    if failing:
        head = (
            f"outcome: exit {EXIT_OVER_BUDGET}, {len(failing)} of {len(points)} levels over the "
            f"{_pct(budget)} error budget"
        )
        return Verdict(EXIT_OVER_BUDGET, [head, *detail])
    return Verdict(EXIT_OK, [f"outcome: exit {EXIT_OK}, every level within the {_pct(budget)} error budget"])
