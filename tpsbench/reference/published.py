"""Published figures for Llama 4 Maverick on one DGX B200 (8x B200): the one place they are written.

The reference model (:mod:`.model`) is calibrated to the record and the previous best; reports draw every
published per-user speed next to a run of the reference endpoint. The speeds are Artificial Analysis
measurements of output speed (May 2025), single-user, so they are vertical lines on a Pareto chart.
Sources: ``shared/reference/maverick-b200.md``.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "PREVIOUS_BEST_TPS_USER",
    "PUBLISHED",
    "PUBLISHED_SOURCE",
    "RECORD_SERVER_TPS",
    "RECORD_TPS_USER",
    "Published",
]


@dataclass(frozen=True, slots=True)
class Published:
    """One published per-user speed."""

    who: str
    tps_user: float
    note: str


PUBLISHED: tuple[Published, ...] = (
    Published("NVIDIA", 1038.0, "DGX B200 (8× B200), TensorRT-LLM, EAGLE-3"),
    Published("SambaNova", 792.0, "previous record"),
    Published("Amazon", 291.0, ""),
    Published("Groq", 276.0, ""),
)
PUBLISHED_SOURCE = "Llama 4 Maverick output speed, measured by Artificial Analysis (May 2025)"

RECORD_TPS_USER = PUBLISHED[0].tps_user  # measured: Artificial Analysis, 1,038 output tok/s per user, c=1
PREVIOUS_BEST_TPS_USER = PUBLISHED[1].tps_user  # measured: SambaNova, the previous record
RECORD_SERVER_TPS = 72_000.0  # vendor: NVIDIA, "up to 72,000 TPS per server" (batch, ISL/OSL unpublished)
