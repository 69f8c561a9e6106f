"""Opening a connection for the protocol-level transport: direct, to an HTTP proxy, through a CONNECT
tunnel (:mod:`tpsbench.client.proxy` decides which proxy applies), or through a Unix socket.

- direct: ``loop.create_connection`` to the server (TLS for https);
- a Unix socket (``unix_socket``: a server on this host listening on one, such as the bundled reference
  endpoint started by ``tpsbench run``): ``loop.create_unix_connection`` to it, whatever the URL's host
  and port (which still give the Host header); no proxy applies;
- ``http://`` URL through a proxy: a plain connection to the proxy; the request is sent in absolute form
  (the caller's job: :func:`absolute_target`), ``Proxy-Authorization`` on every request;
- ``https://`` URL through a proxy: a TCP connection to the proxy, ``CONNECT host:port HTTP/1.1`` (with
  ``Proxy-Authorization``), a 2xx answer, then TLS to the server over that socket, so the proxy sees only
  ciphertext. A refused tunnel fails as :class:`ProxyTunnelError` (a ``ConnectionError``, so the request is
  recorded as ``CONNECT``), naming the proxy's status line, never its credentials.

The caller bounds the whole of it with its connect timeout. Nothing here runs per chunk.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import urlsplit

from tpsbench.client.proxy import Proxy

__all__ = ["Origin", "ProxyTunnelError", "absolute_target", "open_connection", "origin_for"]

MAX_CONNECT_HEAD = 64 * 1024
P = TypeVar("P", bound=asyncio.Protocol)


class ProxyTunnelError(ConnectionError):
    """The proxy did not open the CONNECT tunnel."""


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a URL's requests go, parsed once per URL."""

    key: tuple[str, str, int]  # (scheme, host, port): the pool key
    host: str
    port: int
    host_header: str
    target: str  # path and query (absolute form through an http proxy)
    tls: bool
    proxy: Proxy | None = None  # connections go through it (CONNECT for https)
    proxy_headers: tuple[tuple[str, str], ...] = ()  # Proxy-Authorization, on absolute-form requests


def origin_for(url: str, proxy: Proxy | None = None) -> Origin:
    """Parse ``url`` once: pool key, Host header, request target (absolute form through an http proxy)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"expected an http:// or https:// URL, got {url!r}")
    tls = parts.scheme == "https"
    port = parts.port or (443 if tls else 80)
    host = parts.hostname
    shown = f"[{host}]" if ":" in host else host  # an IPv6 literal keeps its brackets in Host
    host_header = shown if port == (443 if tls else 80) else f"{shown}:{port}"
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    auth: tuple[tuple[str, str], ...] = ()
    if proxy is not None and not tls:
        target = absolute_target(parts.scheme, host_header, target)
        auth = (("Proxy-Authorization", proxy.authorization),) if proxy.authorization else ()
    return Origin((parts.scheme, host, port), host, port, host_header, target, tls, proxy, auth)


def absolute_target(scheme: str, host_header: str, target: str) -> str:
    """The absolute-form request target an HTTP proxy needs (RFC 9112 3.2.2).

    >>> absolute_target("http", "h:8000", "/v1/chat/completions")
    'http://h:8000/v1/chat/completions'
    """
    return f"{scheme}://{host_header}{target}"


async def open_connection(
    factory: Callable[[], P],
    host: str,
    port: int,
    *,
    tls: ssl.SSLContext | None,
    proxy: Proxy | None,
    user_agent: str,
    unix_socket: str | None = None,
) -> P:
    """Connect (see the module docstring) and return the protocol ``factory`` made."""
    loop = asyncio.get_running_loop()
    if unix_socket is not None:
        _, protocol = await loop.create_unix_connection(
            factory, unix_socket, ssl=tls, server_hostname=host if tls else None
        )
    elif proxy is None:
        _, protocol = await loop.create_connection(
            factory, host, port, ssl=tls, server_hostname=host if tls else None
        )
    elif tls is None:
        _, protocol = await loop.create_connection(factory, proxy.host, proxy.port)
    else:
        sock = await _tunnel(loop, proxy, host, port, user_agent)
        try:
            _, protocol = await loop.create_connection(factory, sock=sock, ssl=tls, server_hostname=host)
        except BaseException:
            sock.close()
            raise
    return protocol


async def _tunnel(
    loop: asyncio.AbstractEventLoop, proxy: Proxy, host: str, port: int, user_agent: str
) -> socket.socket:
    """A socket connected to ``host:port`` through ``proxy``'s CONNECT tunnel."""
    sock = await _tcp(loop, proxy.host, proxy.port)
    where = f"proxy {proxy.host_port}"
    try:
        authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        head = f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: {user_agent}\r\n"
        if proxy.authorization:
            head += f"Proxy-Authorization: {proxy.authorization}\r\n"
        await loop.sock_sendall(sock, (head + "\r\n").encode("latin-1"))
        buf = b""
        while b"\r\n\r\n" not in buf:  # the server speaks only after our TLS hello: nothing follows the head
            data = await loop.sock_recv(sock, 4096)
            if not data:
                raise ProxyTunnelError(f"{where} closed the connection during CONNECT {authority}")
            buf += data
            if len(buf) > MAX_CONNECT_HEAD:
                raise ProxyTunnelError(f"{where}: CONNECT response head too large")
        status_line = buf.split(b"\r\n", 1)[0].decode("latin-1")
        parts = status_line.split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
            raise ProxyTunnelError(f"{where}: not an HTTP answer to CONNECT: {status_line[:100]!r}")
        if not 200 <= int(parts[1]) < 300:
            raise ProxyTunnelError(f"{where} refused CONNECT {authority}: {status_line[:200]}")
    except BaseException:
        sock.close()
        raise
    return sock


async def _tcp(loop: asyncio.AbstractEventLoop, host: str, port: int) -> socket.socket:
    """A non-blocking TCP socket connected to the first address of ``host`` that accepts."""
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    error: OSError | None = None
    for family, kind, proto, _, address in infos:
        sock = socket.socket(family, kind, proto)
        sock.setblocking(False)
        try:
            await loop.sock_connect(sock, address)
            return sock
        except OSError as exc:
            sock.close()
            error = exc
        except BaseException:
            sock.close()
            raise
    raise error or OSError(f"no address for {host}:{port}")
