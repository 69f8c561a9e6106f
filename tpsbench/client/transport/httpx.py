"""The httpx streaming transport: for comparison, and for tests through ``httpx.MockTransport``."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from typing import Any

import httpcore
import httpx

from tpsbench.client.proxy import Proxy, ProxySettings
from tpsbench.client.transport.base import StreamingTransport, current_attempt
from tpsbench.core.record import ErrorKind, default_clock
from tpsbench.core.timeouts import Timeouts


def httpx_proxy(proxy: Proxy | None) -> httpx.Proxy | None:
    """The proxy as httpx takes it: credentials in ``Proxy-Authorization``, not in the URL."""
    if proxy is None:
        return None
    auth = {"Proxy-Authorization": proxy.authorization} if proxy.authorization else None
    return httpx.Proxy(f"http://{proxy.host_port}", headers=auth)


class _Stream(httpcore.AsyncNetworkStream):
    """A connection's stream, telling the request's :class:`~.base.Attempt` what the resend rule needs.

    httpcore reads and writes from the task that sends the request, so :data:`~.base.current_attempt` is
    that request's: its first write on this stream says whether the stream had carried a request before
    (``reused``); a read of any byte after it, that the response began (``heard``)."""

    __slots__ = ("_inner", "_requests")

    def __init__(self, inner: httpcore.AsyncNetworkStream) -> None:
        self._inner = inner
        self._requests = 0

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        attempt = current_attempt.get()
        if attempt is not None and attempt.connection is not self:
            attempt.connection = self
            attempt.reused = self._requests > 0
            attempt.heard = False
            self._requests += 1
        await self._inner.write(buffer, timeout)

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        data = await self._inner.read(max_bytes, timeout)
        if data:
            attempt = current_attempt.get()
            if attempt is not None and not attempt.heard:
                attempt.heard = True
        return data

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.AsyncNetworkStream:
        return _Stream(await self._inner.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _Backend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend with every connection's stream a :class:`_Stream`."""

    def __init__(self, inner: httpcore.AsyncNetworkBackend) -> None:
        self._inner = inner

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        return _Stream(await self._inner.connect_tcp(host, port, timeout, local_address, socket_options))

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.AsyncNetworkStream:
        return _Stream(await self._inner.connect_unix_socket(path, timeout, socket_options))

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def _track_connections(client: httpx.AsyncClient) -> httpx.AsyncClient:
    """Give the client's connection pools (direct and proxy) a :class:`_Backend`. httpx has no public seam
    for the network backend; a transport without an httpcore pool (``httpx.MockTransport``) is left
    alone, and its requests are never resent."""
    transports = [client._transport, *client._mounts.values()]
    for transport in transports:
        pool = getattr(transport, "_pool", None)
        if isinstance(pool, httpcore.AsyncConnectionPool) and not isinstance(pool._network_backend, _Backend):
            pool._network_backend = _Backend(pool._network_backend)
    return client


class HttpxTransport(StreamingTransport):
    """An httpx-based transport, for comparison and for tests (pass ``transport=httpx.MockTransport(...)``).

    Not the default: DESIGN.md measured one ``httpx.AsyncClient`` at 256 concurrent streams using 10x the
    client CPU of one aiohttp session, with TTFT p50 at 4.2 s against a 51 ms server and TPS/user badly
    biased: the client itself became the bottleneck. At low concurrency it measures fine.

    The resend rule (:mod:`.base`, argued in :mod:`.h11`): httpcore drops an idle connection it sees
    readable, but one closed while the request crosses it fails as "Server disconnected without sending a
    response" (``CONNECT``), the same error as when part of a status line had arrived, and it says not
    whether the connection was reused. So every pooled connection's stream is a :class:`_Stream`, which
    tells the request's :class:`~.base.Attempt` both; :class:`~.base.StreamingTransport` resends from that,
    through a client that keeps no connection alive, so on a new connection (the pool could hand it
    another connection the server had closed). Against llama-server -np 4 at c=4, 120 short requests:
    1 to 3 lost before; none lost after (0 to 2 resent).
    """

    def __init__(
        self,
        *,
        clock: Callable[[], int] = default_clock,
        max_connections: int | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        proxies: ProxySettings | None = None,
        tls: ssl.SSLContext | None = None,
        unix_socket: str | None = None,
    ) -> None:
        super().__init__(clock)
        n = max_connections
        self._unix_socket = unix_socket
        self._limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
        self._transport = transport
        self._proxies = proxies
        self._tls = tls
        self._client = self._make_client(None, fresh=False)
        # one more client per proxy in use, and for resends (fresh: no connection kept alive)
        self._clients: dict[tuple[Proxy | None, bool], httpx.AsyncClient] = {}

    def _make_client(self, proxy: Proxy | None, *, fresh: bool) -> httpx.AsyncClient:
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=0) if fresh else self._limits
        verify: ssl.SSLContext | bool = self._tls if self._tls is not None else True
        transport = self._transport
        if transport is None and self._unix_socket is not None:  # its own pool: limits and verify go there
            transport = httpx.AsyncHTTPTransport(uds=self._unix_socket, limits=limits, verify=verify)
        return _track_connections(
            httpx.AsyncClient(
                transport=transport,
                limits=limits,
                timeout=httpx.Timeout(None),
                trust_env=False,
                proxy=httpx_proxy(proxy),
                verify=verify,
            )
        )

    def _client_for(self, url: str, fresh: bool) -> httpx.AsyncClient:
        proxy = self._proxies.for_url(url) if self._proxies is not None else None
        if proxy is None and not fresh:
            return self._client
        client = self._clients.get((proxy, fresh))
        if client is None:
            client = self._clients[proxy, fresh] = self._make_client(proxy, fresh=fresh)
        return client

    @asynccontextmanager
    async def _open(
        self, url: str, headers: Mapping[str, str], body: bytes, timeouts: Timeouts, *, fresh: bool
    ) -> AsyncIterator[tuple[int, AsyncIterator[bytes]]]:
        # httpx enforces connect only; a pool wait is unbounded (a pool limit is the caller's choice).
        timeout = httpx.Timeout(None, connect=timeouts.connect_s)
        async with self._client_for(url, fresh).stream(
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
