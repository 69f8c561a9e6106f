"""Base URLs: what ``endpoint.base_url`` (and ``--endpoint``) accepts, checked whole before any request."""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

from tpsbench.core.redact import redact_url

__all__ = ["check_base_url"]

_HOST_LABEL = re.compile(r"^(?!-)[A-Za-z0-9_-]{1,63}(?<!-)$")


def check_base_url(url: str) -> None:
    """Raise ValueError unless ``url`` is a usable http(s) base URL: scheme, a host that is an IP address or
    a DNS name (no spaces), a port in 1-65535. Credentials and a query are allowed (they are redacted).

    >>> check_base_url("http://127.0.0.1:99999/v1")
    Traceback (most recent call last):
    ...
    ValueError: port 99999 is out of range (1-65535) in 'http://127.0.0.1:99999/v1'
    """
    shown = redact_url(url)
    if any(c.isspace() for c in url):
        netloc = url.split("://", 1)[-1].split("/", 1)[0].rsplit("@", 1)[-1]
        where = f"host {netloc!r}" if any(c.isspace() for c in netloc) else "URL"
        raise ValueError(f"invalid {where} in {shown!r}: a URL has no spaces (percent-encode them as %20)")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:  # a non-numeric or out-of-range port, a bad IPv6 literal
        m = re.search(r"^[a-z]+://(?:[^@/]*@)?(?:\[[^\]]*\]|[^:/]*):(\d+)", url)
        if m and "range" in str(exc):
            raise ValueError(f"port {m.group(1)} is out of range (1-65535) in {shown!r}") from None
        raise ValueError(f"invalid URL {shown!r}: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"expected an http:// or https:// URL, got {shown!r}")
    host = parts.hostname or ""
    if not host:
        raise ValueError(f"no host in {shown!r}")
    if port == 0:
        raise ValueError(f"port 0 is out of range (1-65535) in {shown!r}")
    if ":" in host:  # an IPv6 literal, [::1]
        try:
            ipaddress.IPv6Address(host.split("%", 1)[0])
        except ValueError:
            raise ValueError(f"invalid IPv6 address {host!r} in {shown!r}") from None
    elif not all(_HOST_LABEL.match(label) for label in host.rstrip(".").split(".")):
        raise ValueError(f"invalid host name {host!r} in {shown!r}")
