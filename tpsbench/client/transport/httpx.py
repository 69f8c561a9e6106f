"""The httpx streaming transport: for comparison, and for tests through ``httpx.MockTransport``."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager

import httpx

from tpsbench.client.proxy import Proxy, ProxySettings
from tpsbench.client.transport.base import StreamingTransport
from tpsbench.core.record import ErrorKind, default_clock
from tpsbench.core.timeouts import Timeouts


def httpx_proxy(proxy: Proxy | None) -> httpx.Proxy | None:
    """The proxy as httpx takes it: credentials in ``Proxy-Authorization``, not in the URL."""
    if proxy is None:
        return None
    auth = {"Proxy-Authorization": proxy.authorization} if proxy.authorization else None
    return httpx.Proxy(f"http://{proxy.host_port}", headers=auth)


class HttpxTransport(StreamingTransport):
    """An httpx-based transport, for comparison and for tests (pass ``transport=httpx.MockTransport(...)``).

    Not the default: DESIGN.md measured one ``httpx.AsyncClient`` at 256 concurrent streams using 10x the
    client CPU of one aiohttp session, with TTFT p50 at 4.2 s against a 51 ms server and TPS/user badly
    biased: the client itself became the bottleneck. At low concurrency it measures fine.

    The resend rule of :mod:`.h11` is not applied here, and this transport can lose a request to a pooled
    connection the server closed (``CONNECT``, "Server disconnected without sending a response"): httpcore
    drops an idle connection it sees readable, but does not say whether the one a request failed on was
    reused, and raises the same error when part of a status line had arrived. Measured against
    llama-server -np 4 at c=4, 120 short requests: 3 lost (h11: none, 22 resent).
    """

    def __init__(
        self,
        *,
        clock: Callable[[], int] = default_clock,
        max_connections: int | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        proxies: ProxySettings | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        super().__init__(clock)
        n = max_connections
        self._limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
        self._transport = transport
        self._proxies = proxies
        self._tls = tls
        self._client = self._make_client(None)
        self._clients: dict[Proxy, httpx.AsyncClient] = {}  # one more client per proxy in use

    def _make_client(self, proxy: Proxy | None) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            transport=self._transport,
            limits=self._limits,
            timeout=httpx.Timeout(None),
            trust_env=False,
            proxy=httpx_proxy(proxy),
            verify=self._tls if self._tls is not None else True,
        )

    def _client_for(self, url: str) -> httpx.AsyncClient:
        proxy = self._proxies.for_url(url) if self._proxies is not None else None
        if proxy is None:
            return self._client
        client = self._clients.get(proxy)
        if client is None:
            client = self._clients[proxy] = self._make_client(proxy)
        return client

    @asynccontextmanager
    async def _open(
        self, url: str, headers: Mapping[str, str], body: bytes, timeouts: Timeouts
    ) -> AsyncIterator[tuple[int, AsyncIterator[bytes]]]:
        # httpx enforces connect only; a pool wait is unbounded (a pool limit is the caller's choice).
        timeout = httpx.Timeout(None, connect=timeouts.connect_s)
        async with self._client_for(url).stream(
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
        for client in (self._client, *self._clients.values()):
            await client.aclose()
