"""The aiohttp streaming transport (an alternative to the default h11 one)."""

from __future__ import annotations

import asyncio
import functools
import ssl
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any, cast

import aiohttp
from aiohttp.client_proto import ResponseHandler

from tpsbench.client.proxy import ProxySettings
from tpsbench.client.transport.base import Attempt, StreamingTransport, current_attempt
from tpsbench.core.record import ErrorKind, default_clock
from tpsbench.core.timeouts import Timeouts


class _Protocol(ResponseHandler):
    """aiohttp's connection protocol, telling the request's :class:`~.base.Attempt` what the resend rule
    needs: ``set_response_params`` is called by the sending task once per request on this connection (so
    the connection is reused when it was called before), ``data_received`` when bytes arrive (only the
    first of each request does more than one attribute test)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(loop)
        self.requests = 0
        self.attempt: Attempt | None = None

    def set_response_params(self, *args: Any, **kwargs: Any) -> None:
        attempt = current_attempt.get()
        if attempt is not None:  # a CONNECT to a proxy is a request too; the tunnel's TLS is a new protocol
            attempt.reused = self.requests > 0
            attempt.heard = False
        self.attempt = attempt
        self.requests += 1
        super().set_response_params(*args, **kwargs)

    def data_received(self, data: bytes) -> None:
        attempt = self.attempt
        if attempt is not None and data:
            attempt.heard = True
            self.attempt = None
        super().data_received(data)


class AiohttpTransport(StreamingTransport):
    """One :class:`aiohttp.ClientSession` for every stream of the process.

    Not the default any more (see ``Endpoint.transport`` and benchmarks/client_accuracy.py): fine to 64
    streams, but on Python 3.11 aiohttp writes the request body from another task and stamps each read
    when the reading task runs, so under load TTFT reads late and TPS/user drifts (one core, 256 streams:
    TTFT p50 +9 to +40 ms over the server's and TPS/user mean +1.5 to +2.4% across runs; 1,024 streams:
    +285 ms, +80%). :class:`.h11.H11Transport` stamps in the protocol callback instead.
    ``max_connections=None`` means no connection limit (``TCPConnector(limit=0)``): the runner bounds
    concurrency itself, and a pool limit would hide client-side queueing inside TTFT.

    The session is created lazily, inside the running event loop (aiohttp wants one).

    The resend rule (:mod:`.base`, argued in :mod:`.h11`): aiohttp retries on a reused connection only for
    idempotent methods, never a POST, and says neither whether the connection was reused nor whether part
    of a status line had arrived when it raises ``ServerDisconnectedError``. So each connection's protocol
    is a :class:`_Protocol`, which counts the requests it was given and marks the request's
    :class:`~.base.Attempt` when a response byte arrives; :class:`~.base.StreamingTransport` resends from
    that. A resend goes through a second session whose connector never pools (``force_close``), so it
    is on a new connection: from the pool it would often get another connection the server had closed
    (the one it failed on is closed, so the connections open stay within ``max_connections``). Against
    llama-server -np 4 at c=4, 120 short requests: 60 lost before; with the resend from the pool, 9 to 12
    lost and about 100 resent; on a new connection, none lost and 60 resent (twice).
    """

    def __init__(
        self,
        *,
        clock: Callable[[], int] = default_clock,
        max_connections: int | None = None,
        proxies: ProxySettings | None = None,
        tls: ssl.SSLContext | None = None,
        unix_socket: str | None = None,
    ) -> None:
        super().__init__(clock)
        self._max_connections = max_connections
        self._unix_socket = unix_socket
        self._session: aiohttp.ClientSession | None = None
        self._fresh: aiohttp.ClientSession | None = None  # for resends: a new connection each time
        self._proxies = proxies
        self._tls = tls
        self._per_url: dict[str, dict[str, Any]] = {}  # proxy and TLS arguments, resolved once per URL

    def _network(self, url: str) -> dict[str, Any]:
        kw = self._per_url.get(url)
        if kw is None:
            kw = {} if self._tls is None else {"ssl": self._tls}
            proxy = self._proxies.for_url(url) if self._proxies is not None else None
            if proxy is not None:  # credentials as a header, never in a URL aiohttp may log
                kw["proxy"] = f"http://{proxy.host_port}"
                if proxy.authorization:
                    kw["proxy_headers"] = {"Proxy-Authorization": proxy.authorization}
            self._per_url[url] = kw
        return kw

    def _get_session(self, fresh: bool) -> aiohttp.ClientSession:
        session = self._fresh if fresh else self._session
        if session is None or session.closed:
            limit = 0 if fresh else self._max_connections or 0
            connector: aiohttp.BaseConnector
            if self._unix_socket is not None:
                connector = aiohttp.UnixConnector(
                    self._unix_socket, limit=limit, limit_per_host=0, force_close=fresh
                )
            else:
                connector = aiohttp.TCPConnector(limit=limit, limit_per_host=0, force_close=fresh)
            # aiohttp has no public seam for the protocol; its connector makes every connection from this
            factory = functools.partial(_Protocol, loop=asyncio.get_running_loop())
            connector._factory = cast("functools.partial[ResponseHandler]", factory)
            # No session-wide timeout: stream() enforces the per-request deadlines.
            session = aiohttp.ClientSession(
                connector=connector, timeout=aiohttp.ClientTimeout(total=None), trust_env=False
            )
            if fresh:
                self._fresh = session
            else:
                self._session = session
        return session

    @asynccontextmanager
    async def _open(
        self, url: str, headers: Mapping[str, str], body: bytes, timeouts: Timeouts, *, fresh: bool
    ) -> AsyncIterator[tuple[int, AsyncIterator[bytes]]]:
        # sock_connect, not connect: waiting for a pool slot (if limited) is not a connect failure.
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=timeouts.connect_s)
        net = self._network(url)
        async with self._get_session(fresh).post(
            url, data=body, headers=dict(headers), timeout=timeout, allow_redirects=False, **net
        ) as resp:
            # iter_any: whatever bytes arrived, as soon as they arrived (no line or size re-chunking).
            yield resp.status, resp.content.iter_any()

    def _classify(self, exc: Exception, status: int | None) -> ErrorKind:
        if isinstance(exc, TimeoutError):  # not one of our deadlines, so aiohttp's sock_connect
            return ErrorKind.TIMEOUT_CONNECT
        if status is not None and isinstance(exc, aiohttp.ClientError | OSError):
            return ErrorKind.STREAM_CUT
        if isinstance(exc, aiohttp.ClientConnectionError | OSError):
            return ErrorKind.CONNECT  # refused, DNS, TLS, or closed before any response
        return ErrorKind.OTHER

    async def aclose(self) -> None:
        for session in (self._session, self._fresh):
            if session is not None:
                await session.close()
        self._session = self._fresh = None
