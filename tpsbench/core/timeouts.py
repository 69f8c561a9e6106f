"""How long a request may take: the one timeouts type of the transports (``endpoint.timeouts`` in a
scenario is validated into it by :class:`tpsbench.config.scenario.Timeouts`).

    >>> Timeouts(first_token_s=5).request_s
    600.0
"""

from __future__ import annotations

from dataclasses import dataclass, fields

__all__ = ["Timeouts"]


@dataclass(frozen=True)  # no slots: the class attributes are the defaults config reads
class Timeouts:
    """Seconds, measured on the event loop's clock from just before a request's ``send_ns``."""

    connect_s: float = 10.0  # until the connection is open
    first_token_s: float = 120.0  # until the first byte of the streamed body
    request_s: float = 600.0  # the whole request, from its first byte sent to the end of the stream

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, bool) or not isinstance(v, int | float) or not v > 0:
                raise ValueError(f"{f.name}: expected a number > 0, got {v!r}")
