"""How a run reaches its endpoint: the environment's proxy (:mod:`.proxy`), ``endpoint.tls``
(:mod:`.tls`) and the Unix socket, if any, resolved once per process, described for the run's metadata and
header (redacted).

    net = network_for(scenario.endpoint)        # ValueError (exit 2) for a bad proxy variable or TLS file
    transport = make_transport(kind, proxies=net.proxies, tls=net.tls)
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx

from tpsbench.client.proxy import ProxySettings
from tpsbench.client.unix_socket import UnixSocketTransport
from tpsbench.core.tls import INSECURE_WARNING, tls_context

if TYPE_CHECKING:
    from tpsbench.config.scenario import Endpoint

__all__ = ["Network", "network_for"]


@dataclass(frozen=True)
class Network:
    """The proxy settings and TLS context of every connection of a run."""

    proxies: ProxySettings
    tls: ssl.SSLContext | None  # None: the system default
    verify: bool = True
    ca_bundle: str | None = None
    client_cert: str | None = None
    unix_socket: str | None = None  # every load connection goes through it (no proxy then)

    def describe(self, base_url: str) -> dict[str, Any]:
        """The metadata block: the proxy used for ``base_url`` (credentials redacted) and the TLS checks."""
        https = urlsplit(base_url).scheme == "https"
        block: dict[str, Any] = self.proxies.describe(base_url)
        block["proxy_mode"] = None if block["proxy"] is None else ("connect" if https else "absolute-form")
        block["tls"] = (
            {"verify": self.verify, "ca_bundle": self.ca_bundle, "client_cert": self.client_cert}
            if https
            else None
        )
        block["unix_socket"] = self.unix_socket
        return block

    def httpx_transport(self) -> httpx.AsyncHTTPTransport | None:
        """The transport of the run's small httpx calls to the endpoint (``/models``, ``/metrics``,
        ``/pace``): through the Unix socket (on the loop's streams: :mod:`.unix_socket`); None (httpx's own)
        without one."""
        if self.unix_socket is None:
            return None
        return UnixSocketTransport(self.unix_socket)  # http only (config/endpoint.py)

    def header_lines(self, base_url: str) -> list[str]:
        """What the run header says about the path to ``base_url``: the proxy, and the loud TLS warning."""
        block = self.describe(base_url)
        lines = []
        if self.unix_socket is not None:
            lines.append(f"via the Unix socket {self.unix_socket}")
        if block["proxy"] is not None:
            how = "CONNECT tunnel" if block["proxy_mode"] == "connect" else "absolute-form requests"
            lines.append(f"via proxy {block['proxy']} ({how})")
        if block["tls"] is not None and not self.verify:
            lines.append(INSECURE_WARNING)
        return lines


def network_for(endpoint: Endpoint, unix_socket: str | None = None) -> Network:
    """Read the proxy variables and build the TLS context ``endpoint.tls`` asks for.

    With no ``base_url`` the run measures the bundled reference endpoint, which tpsbench starts on this
    host's loopback: no proxy applies to it (a corporate ``http_proxy`` would otherwise carry it away).
    ``unix_socket`` (else ``endpoint.unix_socket``): every connection to the endpoint goes through it
    (``tpsbench run`` passes the reference endpoint's), so no proxy applies either."""
    unix_socket = unix_socket or endpoint.unix_socket
    t = endpoint.tls
    default = t.verify and t.ca_bundle is None and t.client_cert is None
    ctx = None if default else tls_context(
        ca_bundle=t.ca_bundle, client_cert=t.client_cert, client_key=t.client_key, verify=t.verify
    )  # fmt: skip
    direct = endpoint.base_url is None or unix_socket is not None
    return Network(
        ProxySettings() if direct else ProxySettings.from_env(),
        ctx,
        verify=t.verify,
        ca_bundle=str(t.ca_bundle) if t.ca_bundle else None,
        client_cert=str(t.client_cert) if t.client_cert else None,
        unix_socket=unix_socket,
    )
