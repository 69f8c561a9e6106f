"""Which HTTP proxy a request goes through: the environment variables, read as curl and httpx read them.

    proxies = ProxySettings.from_env()           # once per run (os.environ by default)
    proxy = proxies.for_url("https://api.example.com/v1/chat/completions")   # a Proxy, or None

Rules (curl's ``CURLOPT_PROXY`` documentation and httpx's ``get_environment_proxies``):

- ``http_proxy`` for ``http://`` URLs, ``https_proxy`` for ``https://`` URLs, ``all_proxy`` for both when
  the scheme's own is unset; each also in upper case, the lower-case name winning. ``HTTP_PROXY`` in upper
  case is ignored when ``REQUEST_METHOD`` is set (a CGI environment, where a client's ``Proxy:`` header
  becomes that variable: "httpoxy"), as curl and Python's urllib do;
- a proxy URL without a scheme is ``http://``; ``user:password@`` in it becomes a
  ``Proxy-Authorization: Basic`` header (percent-decoded); only ``http://`` proxies are supported (a
  ``socks5://`` or ``https://`` proxy is a clear error, not a silent direct connection);
- ``no_proxy`` / ``NO_PROXY``: comma- (or space-) separated entries; ``*`` alone bypasses the proxy for
  every host; an entry matches the host itself and its subdomains (a leading ``.`` is ignored:
  ``example.com`` and ``.example.com`` both match ``api.example.com``); ``host:port`` matches that port
  only; an IP address or CIDR block (``10.0.0.0/8``, ``::1``) matches addresses inside it. Loopback is not
  bypassed unless listed (curl and httpx do not either).

How a transport uses a proxy: an ``https://`` URL through a ``CONNECT host:port`` tunnel (TLS to the
server inside it, end to end); an ``http://`` URL as an absolute-form request (``POST http://host/v1/...``)
sent to the proxy. :meth:`Proxy.shown` is the proxy URL with its credentials redacted (for the run's
metadata and header).
"""

from __future__ import annotations

import base64
import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from tpsbench.core.redact import redact_url

__all__ = ["Proxy", "ProxyError", "ProxySettings", "no_proxy_matches"]


class ProxyError(ValueError):
    """A proxy variable that cannot be used (bad URL, unsupported scheme); the message never has the
    credentials."""


@dataclass(frozen=True, slots=True)
class Proxy:
    """One HTTP proxy: where to connect, and the ``Proxy-Authorization`` value if it has credentials."""

    url: str  # as given (may hold credentials: never print it, use shown())
    host: str
    port: int
    authorization: str | None = None

    @classmethod
    def parse(cls, raw: str, variable: str = "proxy") -> Proxy:
        url = raw.strip()
        if "://" not in url:
            url = "http://" + url
        try:
            parts = urlsplit(url)
            port = parts.port or 80
        except ValueError as exc:
            raise ProxyError(f"{variable}: not a proxy URL ({exc}): {redact_url(url)}") from None
        if parts.scheme.lower() != "http":
            raise ProxyError(
                f"{variable}: {parts.scheme}:// proxies are not supported (only http:// proxies, which "
                f"tunnel https with CONNECT): {redact_url(url)}"
            )
        if not parts.hostname:
            raise ProxyError(f"{variable}: no host in the proxy URL: {redact_url(url)}")
        auth = None
        if parts.username is not None:
            pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
            auth = "Basic " + base64.b64encode(pair.encode()).decode()
        return cls(url, parts.hostname, port, auth)

    @property
    def host_port(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def shown(self) -> str:
        """The proxy URL with any credentials redacted."""
        return redact_url(self.url)


def _env(env: Mapping[str, str], name: str) -> str | None:
    """``name`` in lower case, else upper case (``HTTP_PROXY`` not in a CGI environment); empty = unset."""
    value = env.get(name)
    if not value and not (name == "http_proxy" and "REQUEST_METHOD" in env):
        value = env.get(name.upper())
    return value.strip() if value and value.strip() else None


@dataclass(frozen=True, slots=True)
class ProxySettings:
    """The proxy configuration of the environment (see the module docstring)."""

    http: Proxy | None = None
    https: Proxy | None = None
    no_proxy: tuple[str, ...] = ()

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ProxySettings:
        """Read the variables (``os.environ`` by default); raises :class:`ProxyError` for a bad one."""
        env = os.environ if env is None else env
        every = _env(env, "all_proxy")
        http = _env(env, "http_proxy") or every
        https = _env(env, "https_proxy") or every
        no_proxy = _env(env, "no_proxy") or ""
        return cls(
            Proxy.parse(http, "http_proxy") if http else None,
            Proxy.parse(https, "https_proxy") if https else None,
            tuple(e for e in no_proxy.replace(" ", ",").split(",") if e),
        )

    def for_url(self, url: str) -> Proxy | None:
        """The proxy for ``url``, or None for a direct connection."""
        parts = urlsplit(url)
        proxy = self.https if parts.scheme == "https" else self.http
        if proxy is None or not parts.hostname:
            return None
        port = parts.port or (443 if parts.scheme == "https" else 80)
        return None if no_proxy_matches(parts.hostname, port, self.no_proxy) else proxy

    def describe(self, url: str) -> dict[str, str | None]:
        """What the run's metadata records for ``url``: the proxy (redacted) or None, and NO_PROXY."""
        proxy = self.for_url(url)
        return {"proxy": proxy.shown() if proxy else None, "no_proxy": ",".join(self.no_proxy) or None}


def no_proxy_matches(host: str, port: int, entries: tuple[str, ...]) -> bool:
    """True if ``host:port`` bypasses the proxy under the ``no_proxy`` entries (module docstring rules).

    >>> no_proxy_matches("api.example.com", 443, (".example.com",))
    True
    >>> no_proxy_matches("notexample.com", 443, ("example.com",))
    False
    >>> no_proxy_matches("10.1.2.3", 80, ("10.0.0.0/8",)), no_proxy_matches("h", 80, ("h:8080",))
    (True, False)
    """
    host = host.lower().strip("[]").rstrip(".")
    try:
        address: ipaddress.IPv4Address | ipaddress.IPv6Address | None = ipaddress.ip_address(host)
    except ValueError:
        address = None
    for raw in entries:
        entry = raw.strip().lower()
        if entry == "*":
            return True
        entry_port: int | None = None
        if entry.startswith("["):  # [v6]:port
            addr, _, rest = entry[1:].partition("]")
            entry, entry_port = addr, int(rest[1:]) if rest.startswith(":") and rest[1:].isdigit() else None
        elif entry.count(":") == 1:
            name, _, p = entry.partition(":")
            if p.isdigit():
                entry, entry_port = name, int(p)
        if entry_port is not None and entry_port != port:
            continue
        if address is not None:
            try:
                if address in ipaddress.ip_network(entry, strict=False):
                    return True
            except ValueError:
                pass
            continue
        entry = entry.lstrip(".").rstrip(".")
        if entry and (host == entry or host.endswith("." + entry)):
            return True
    return False
