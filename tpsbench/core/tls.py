"""The ``verify`` argument for httpx clients: what their TLS needs, built once.

An ``httpx.AsyncClient`` builds a default SSL context when it is created, and loading the CA store costs
about 0.15 CPU-s each time: several small clients per run (models list, pace reports, telemetry) added a
good part of a second before the first request. Plain-http URLs need no TLS at all; https ones share one
default context.

    >>> verify_for(["http://127.0.0.1:8000/v1"])
    False
"""

from __future__ import annotations

import functools
import ssl
from collections.abc import Iterable

__all__ = ["verify_for"]


@functools.cache
def _default_context() -> ssl.SSLContext:
    return ssl.create_default_context()


def verify_for(urls: Iterable[str]) -> ssl.SSLContext | bool:
    """False when every URL is plain http (no certificate is ever checked), else the shared context."""
    if all(u.lower().startswith("http://") for u in urls):
        return False
    return _default_context()
