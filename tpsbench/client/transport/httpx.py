"""The httpx streaming transport: for comparison, and for tests through ``httpx.MockTransport``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager

import httpx

from tpsbench.client.transport.base import StreamingTransport
from tpsbench.core.record import ErrorKind, default_clock
from tpsbench.core.timeouts import Timeouts


class HttpxTransport(StreamingTransport):
    """An httpx-based transport, for comparison and for tests (pass ``transport=httpx.MockTransport(...)``).

    Not the default: DESIGN.md measured one ``httpx.AsyncClient`` at 256 concurrent streams using 10x the
    client CPU of one aiohttp session, with TTFT p50 at 4.2 s against a 51 ms server and TPS/user badly
    biased: the client itself became the bottleneck. At low concurrency it measures fine.

    The resend rule of :mod:`.h11` is not applied here, and this transport can lose a request to a pooled
    connection the server closed (``CONNECT``, "Server disconnected without sending a response"): httpcore
    drops an idle connection it sees readable, but does not say whether the one a request failed on was
    reused, and raises the same error when part of a status line had arrived.
    """

    def __init__(
        self,
        *,
        clock: Callable[[], int] = default_clock,
        max_connections: int | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(clock)
        limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
        self._client = httpx.AsyncClient(
            transport=transport, limits=limits, timeout=httpx.Timeout(None), trust_env=False
        )

    @asynccontextmanager
    async def _open(
        self, url: str, headers: Mapping[str, str], body: bytes, timeouts: Timeouts
    ) -> AsyncIterator[tuple[int, AsyncIterator[bytes]]]:
        # httpx enforces connect only; a pool wait is unbounded (a pool limit is the caller's choice).
        timeout = httpx.Timeout(None, connect=timeouts.connect_s)
        async with self._client.stream(
            "POST", url, content=body, headers=dict(headers), timeout=timeout
        ) as r:
            # aiter_bytes undoes a Content-Encoding the server might apply despite our "identity"
            # request; without one it passes each read through unchanged.
            yield r.status_code, r.aiter_bytes()

    def _classify(self, exc: Exception, status: int | None) -> ErrorKind:
        if isinstance(exc, httpx.ConnectTimeout):
            return ErrorKind.TIMEOUT_CONNECT
        if status is not None and isinstance(exc, httpx.TransportError | OSError):
            return ErrorKind.STREAM_CUT
        if isinstance(exc, httpx.NetworkError | httpx.RemoteProtocolError | OSError):
            return ErrorKind.CONNECT  # refused, DNS, TLS, or closed before any response
        return ErrorKind.OTHER

    async def aclose(self) -> None:
        await self._client.aclose()
