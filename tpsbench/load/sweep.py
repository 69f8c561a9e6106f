"""Load plans: the scenario's fixed levels, or a sweep that grows the load until the knee.

A sweep (``sweep:`` in the scenario, ``Sweep``) runs its levels one at a time and
looks at each level's summary point before choosing the next. After a level it stops when, first that
applies:

- ``slo_broken``: the scenario has an SLO and the level misses it (``slo_met`` is false);
- ``errors``: the level's ``error_rate`` > ``max_error_rate``;
- ``throughput_plateau``: ``output_tps < (1 + min_gain) * max(output_tps of the earlier levels)``: more
  load no longer buys throughput (the server is saturated; requests only queue);
- ``max_reached``: the next step would pass ``max``.

A run stopped by Ctrl-C says ``interrupted``.

The capacity, the single number a capacity planner wants, is read off the levels that are *eligible*: they
meet the SLO (when there is one), fail at most ``max_error_rate`` of their requests and delivered tokens.
With ``best`` = the highest ``output_tps`` of an eligible level, the capacity level is the lowest-load
eligible level with ``output_tps >= best / (1 + min_gain)``: the knee, where more load buys less than
``min_gain`` more throughput and only adds latency.

    >>> from tpsbench.config.scenario import Scenario
    >>> plan = LevelPlan(Scenario.model_validate(
    ...     {"sweep": {"concurrency": {"start": 1, "max": 8}, "requests": 4, "min_gain": 0.05}}))
    >>> for index, level in plan:
    ...     plan.observe({"level": index, "concurrency": level.concurrency, "rate": None, "slo_met": None,
    ...                   "error_rate": 0.0, "ok": 4, "goodput": None,
    ...                   "output_tps": [100.0, 190.0, 195.0, 196.0][index]})
    >>> plan.capacity()["concurrency"], plan.capacity()["reason_stopped"]
    (2, 'throughput_plateau')
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from tpsbench.config.scenario import Level, Scenario, Sweep
from tpsbench.results.views import Point

__all__ = ["LevelPlan", "capacity", "stop_reason"]

SLO_BROKEN = "slo_broken"
ERRORS = "errors"
PLATEAU = "throughput_plateau"
MAX_REACHED = "max_reached"
INTERRUPTED = "interrupted"


def _tps(point: Mapping[str, Any]) -> float:
    return Point(point).output_tps or 0.0


def _load(point: Mapping[str, Any]) -> str:
    return Point(point).label


def stop_reason(points: Sequence[Mapping[str, Any]], sweep: Sweep) -> tuple[str, str] | None:
    """Why the sweep stops after its last point, as ``(reason, sentence)``, or None to go on (rules in
    the module docstring; ``max_reached`` is the plan's business)."""
    last = points[-1]
    if Point(last).slo_met is False:
        return SLO_BROKEN, f"{_load(last)} missed the SLO"
    error_rate = Point(last).error_rate
    if error_rate is not None and error_rate > sweep.max_error_rate:
        return ERRORS, f"{_load(last)} failed {error_rate:.1%} of its requests (> {sweep.max_error_rate:.1%})"
    if len(points) > 1:
        best = max(_tps(p) for p in points[:-1])
        if _tps(last) < best * (1 + sweep.min_gain):
            gain = _tps(last) / best - 1 if best > 0 else 0.0
            return PLATEAU, (
                f"{_load(last)} changed output TPS by {gain:+.1%} over the best earlier level "
                f"(< {sweep.min_gain:.0%})"
            )
    return None


def _eligible(point: Mapping[str, Any], sweep: Sweep) -> bool:
    p = Point(point)
    return (
        p.slo_met is not False
        and p.error_rate is not None
        and p.error_rate <= sweep.max_error_rate
        and _tps(point) > 0
    )


def capacity(
    points: Sequence[Mapping[str, Any]], sweep: Sweep, reason: str | None, detail: str | None = None
) -> dict[str, Any]:
    """The ``capacity`` block of summary.json: the knee level's load and figures (module docstring),
    ``reason_stopped`` / ``reason_detail``, and the loads visited. Load and figures are None when no level
    was eligible."""
    eligible = [p for p in points if _eligible(p, sweep)]
    out: dict[str, Any] = {
        "concurrency": None,
        "rate": None,
        "level": None,
        "output_tps": None,
        "output_tps_per_gpu": None,
        "goodput": None,
        "tps_user_p50": None,
        "ttft_s_p99": None,
        "reason_stopped": reason,
        "reason_detail": detail,
        "levels": [_load(p) for p in points],
    }
    if eligible:
        best = max(_tps(p) for p in eligible)
        knee = next(p for p in eligible if _tps(p) >= best / (1 + sweep.min_gain))
        k = Point(knee)
        out |= {
            "concurrency": k.concurrency,
            "rate": k.rate,
            "level": k.level,
            "output_tps": k.output_tps,
            "output_tps_per_gpu": k.output_tps_per_gpu,
            "goodput": k.goodput,
            "tps_user_p50": k.stat("tps_user", "p50"),
            "ttft_s_p99": k.stat("ttft_s", "p99"),
        }
    elif points:
        out["reason_detail"] = (detail + "; " if detail else "") + "no level met the SLO without errors"
    return out


class LevelPlan:
    """Iterate ``(index, level)``: the scenario's ``load`` as written, or its sweep's levels generated one
    at a time. Call :meth:`observe` with each level's summary point before asking for the next level."""

    def __init__(self, scenario: Scenario) -> None:
        self.sweep = scenario.sweep
        self.fixed = scenario.fixed_levels
        self.points: list[Mapping[str, Any]] = []
        self.reason: str | None = None
        self.detail: str | None = None
        self.levels: list[Level] = []

    def __iter__(self) -> Iterator[tuple[int, Level]]:
        if self.sweep is None:
            for index, level in enumerate(self.fixed):
                self.levels.append(level)
                yield index, level
            return
        values = self.sweep.values()
        for index, value in enumerate(values):
            level = self.sweep.level(value)
            self.levels.append(level)
            yield index, level
            if len(self.points) <= index:  # the caller stopped without a point (interrupted)
                self.reason = INTERRUPTED
                return
            why = stop_reason(self.points, self.sweep)
            if why is not None:
                self.reason, self.detail = why
                return
        self.reason = MAX_REACHED
        self.detail = f"the sweep's last step ({_load(self.points[-1])}) still gained throughput"

    def observe(self, point: Mapping[str, Any]) -> None:
        self.points.append(point)

    def interrupted(self) -> None:
        """The run stopped early (Ctrl-C): say so unless the sweep had already finished."""
        if self.sweep is not None and self.reason is None:
            self.reason = INTERRUPTED

    def capacity(self) -> dict[str, Any] | None:
        """The capacity block so far (``reason_stopped`` None while the sweep goes on); None for fixed
        levels."""
        if self.sweep is None:
            return None
        return capacity(self.points, self.sweep, self.reason, self.detail)
