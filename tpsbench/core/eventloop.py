"""The load generator's event loop: uvloop when it is installed (``pip install 'tpsbench[fast]'``), else
asyncio's own. ``TPSBENCH_LOOP=asyncio`` forces asyncio's.

Measured at the throughput end (benchmarks/reference_capacity.py ``--client h11 --loop``): uvloop's C loop
costs less per read than asyncio's selector loop, so one client core holds more streams; the read path
itself (stamp first, then frame) is the same. Only for clients: uvloop's ``loop.time()`` is its cached
millisecond clock, too coarse for the reference engine's step deadlines (which stays on asyncio).

    >>> run(_answer())
    42
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Coroutine
from typing import Any, TypeVar

__all__ = ["loop_name", "run"]

T = TypeVar("T")


def loop_name() -> str:
    """The loop :func:`run` uses here: ``uvloop`` or ``asyncio``."""
    if os.environ.get("TPSBENCH_LOOP", "").lower() == "asyncio":
        return "asyncio"
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return "asyncio"
    return "uvloop"


def run(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(main)`` on the loop :func:`loop_name` names."""
    if loop_name() == "uvloop":
        import uvloop

        return uvloop.run(main)
    return asyncio.run(main)


async def _answer() -> int:
    return 42
