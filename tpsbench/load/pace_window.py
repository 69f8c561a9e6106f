"""The reference endpoint's pace report (``/pace``) over a level's measured window, as its self-check.

The simulator says itself when the host could not keep its schedule (step lag, delivery lag: see
:mod:`tpsbench.reference.telemetry`). Its report is a window between two ``POST /pace/reset`` calls; the
level's metrics cover the measured window (first measured send to last measured end), so its pace report
should too: one that included the warmup wave (2,048 requests arriving at once, unmeasured) would flag a
level for lateness none of its measured requests saw. So the window is reset at the level's start, again
when the first measured request starts (:meth:`PaceWindow.opened`: that reset returns the part before,
kept as ``before_window``) and read when the last measured request has ended (:meth:`PaceWindow.closed`).
With cooldown the load holds to that end; without it the batch drains inside the window, as the level's
own output TPS sees it.

``opened`` and ``closed`` may be called from any thread (the worker driver runs in one); a level that never
opened its window (nothing measured, or stopped) reports from its start (``window: "level"``).
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from tpsbench.client.network import Network
from tpsbench.core.tls import verify_for

__all__ = ["PaceWindow"]

TIMEOUT_S = 5.0


class PaceWindow:
    """One level's ``/pace`` window on the reference endpoint at ``base_url`` (its ``/v1`` URL), reached
    as the run's ``network`` says (its Unix socket).

    Use: ``await start()`` before the level, ``opened()`` / ``closed()`` from the runner's hooks,
    ``await report()`` after it (it closes the window if the hooks never did), then ``await aclose()``.
    One client for the level, made before it: making an httpx client costs milliseconds of the loop,
    which mid-level would stall every stream's stamps."""

    def __init__(self, base_url: str, network: Network | None = None) -> None:
        self._root = base_url.rstrip("/").removesuffix("/v1")
        self._loop = asyncio.get_running_loop()
        transport = network.httpx_transport() if network is not None else None
        self._http = httpx.AsyncClient(
            timeout=TIMEOUT_S, verify=verify_for([self._root]), transport=transport, trust_env=False
        )
        self._reset: asyncio.Task[dict[str, Any] | None] | None = None
        self._read: asyncio.Task[dict[str, Any] | None] | None = None

    async def start(self) -> None:
        """Start the level's window (made here, before any request, so the hooks never wait for a client)."""
        await self._call("POST", "/pace/reset")

    def opened(self) -> None:
        """The first measured request starts: the window restarts (thread-safe, first call counts) when
        the server gets the reset, a millisecond or so later (the first measured request may land before)."""
        self._loop.call_soon_threadsafe(self._open)

    def closed(self) -> None:
        """The last measured request has ended: the window is read here (thread-safe, first call counts)."""
        self._loop.call_soon_threadsafe(self._close)

    async def report(self) -> dict[str, Any] | None:
        """The window's pace report with ``window`` ("measured", or "level" if it never opened) and, when it
        opened, ``before_window`` (the report from the level's start to the opening); None when the
        endpoint did not answer."""
        self._close()
        assert self._read is not None
        pace = await self._read
        before = await self._reset if self._reset is not None else None
        if pace is None:
            return None
        pace["window"] = "measured" if self._reset is not None else "level"
        if before is not None:
            pace["before_window"] = before
        return pace

    async def aclose(self) -> None:
        """Let go of the connection (after :meth:`report`, or when the level failed)."""
        for task in (self._reset, self._read):
            if task is not None and not task.done():
                task.cancel()
        await self._http.aclose()

    def _open(self) -> None:
        if self._reset is None and self._read is None:
            self._reset = asyncio.ensure_future(self._call("POST", "/pace/reset"))

    def _close(self) -> None:
        if self._read is None:
            self._read = asyncio.ensure_future(self._read_after(self._reset))

    async def _read_after(self, reset: asyncio.Task[dict[str, Any] | None] | None) -> dict[str, Any] | None:
        if reset is not None:
            await reset  # the read must see the restarted window
        return await self._call("GET", "/pace")

    async def _call(self, method: str, path: str) -> dict[str, Any] | None:
        try:
            resp = await self._http.request(method, self._root + path)
            data: dict[str, Any] = resp.json()
            return data
        except (httpx.HTTPError, ValueError):
            return None
