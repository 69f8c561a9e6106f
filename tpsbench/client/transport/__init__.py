"""Streaming transports behind one seam: the contract in :mod:`.base`, one module per HTTP library.

transport = make_transport("h11")  # the default
raw = await transport.stream(url, headers, body, Timeouts())
await transport.aclose()
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from typing import Literal

from tpsbench.client.proxy import ProxySettings
from tpsbench.client.transport.base import MAX_ERROR_BODY, RawExchange, Transport, classify_status
from tpsbench.core.record import default_clock

__all__ = ["MAX_ERROR_BODY", "RawExchange", "Transport", "classify_status", "make_transport"]


def make_transport(
    kind: Literal["aiohttp", "httpx", "h11"],
    *,
    clock: Callable[[], int] = default_clock,
    max_connections: int | None = None,
    proxies: ProxySettings | None = None,
    tls: ssl.SSLContext | None = None,
    unix_socket: str | None = None,
) -> Transport:
    """The transport named by ``Endpoint.transport``; ``max_connections=None`` means unlimited.

    ``proxies``: the environment's proxy settings (:mod:`tpsbench.client.proxy`; None: always direct);
    ``tls``: the context of https connections (:mod:`tpsbench.core.tls`; None: the system default);
    ``unix_socket``: connect through this Unix socket, not TCP (no proxy then). Every transport honours
    all three."""
    if unix_socket is not None:
        proxies = None  # a Unix socket is this host's: no proxy stands between (decided here, for all three)
    if kind == "aiohttp":
        from tpsbench.client.transport.aiohttp import AiohttpTransport

        return AiohttpTransport(
            clock=clock, max_connections=max_connections, proxies=proxies, tls=tls, unix_socket=unix_socket
        )
    if kind == "httpx":
        from tpsbench.client.transport.httpx import HttpxTransport

        return HttpxTransport(
            clock=clock, max_connections=max_connections, proxies=proxies, tls=tls, unix_socket=unix_socket
        )
    if kind == "h11":
        from tpsbench.client.transport.h11 import H11Transport

        return H11Transport(
            clock=clock, max_connections=max_connections, proxies=proxies, tls=tls, unix_socket=unix_socket
        )
    raise ValueError(f"unknown transport {kind!r}: expected 'aiohttp', 'httpx' or 'h11'")
