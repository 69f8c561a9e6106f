"""What a run of the reference endpoint is drawn next to: the bundled reference model's curve (the
published speeds are in :mod:`tpsbench.reference.published`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tpsbench.reference.model import ModelParams, ReferenceModel
from tpsbench.results.views import Run


@dataclass(frozen=True, slots=True)
class ModelPoint:
    """The reference model's prediction at one concurrency: per-user speed and output TPS per server."""

    concurrency: int
    tps_user: float
    output_tps: float


def model_curve(
    concurrencies: Sequence[int], isl: float, osl: float, overrides: Mapping[str, Any] | None = None
) -> list[ModelPoint]:
    """The simulated Maverick-on-8×B200 endpoint's predictions at ``concurrencies`` for ISL/OSL, with the
    scenario's ``reference:`` parameter overrides when the run measured that endpoint. Unknown parameter
    names raise ``ValueError`` (from the model)."""
    model = ReferenceModel(ModelParams().with_overrides(overrides or {}))
    cs = sorted(set(concurrencies))
    predictions = model.predict_curve(cs, round(isl), round(osl))
    # output_tps is what a closed-loop run measures (a slot also prefills between answers), so it is the
    # like-for-like y; server_tps keeps the batch full and reads higher at small concurrency.
    return [ModelPoint(c, p.tps_user, p.output_tps) for c, p in zip(cs, predictions, strict=True)]


def curve_concurrencies(run: Run) -> list[int]:
    """Where to evaluate the model: a 1-2-4 grid from 1 to the run's highest load, plus its measured levels.

    The curve stops near the measured range, so a sweep to c=64 is not squashed by the model's c=2048 end.
    Open-loop points use the concurrency they achieved (self_check.achieved_concurrency) when recorded.
    """
    measured = [c for p in run.points if (c := p.concurrency or p.achieved_concurrency) is not None]
    top = max(measured, default=64)
    grid = {1 << i for i in range(top.bit_length()) if 1 << i <= top}
    grid |= {c * 3 // 2 for c in grid if c >= 2 and c * 3 // 2 <= top}
    return sorted(grid | set(measured) | {top})
