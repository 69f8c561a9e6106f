"""TLS for every client of a run: the context ``endpoint.tls`` asks for, and the ``verify`` argument for the
small httpx clients.

The run's context (:func:`tls_context`; :mod:`tpsbench.client.network` builds it from ``endpoint.tls``):

    context = tls_context(ca_bundle=None, client_cert=None, client_key=None, verify=True)

- default: the system's trust store (``ssl.create_default_context``, which honours ``SSL_CERT_FILE`` /
  ``SSL_CERT_DIR``), hostname checked;
- ``ca_bundle``: trust these PEM certificates instead (a private CA);
- ``client_cert`` (+ ``client_key`` if the key is in its own file): mutual TLS;
- ``verify: false``: no certificate or hostname check at all. Anyone on the path can then read and change
  the traffic, API key included; the run says so loudly and records it (:data:`INSECURE_WARNING`).

ALPN offers ``http/1.1`` only: the transports speak HTTP/1.1. A file that is not a usable certificate or key
raises :class:`TLSConfigError` (a ``ValueError``: exit 2 before any request), naming the file.

The ``verify`` argument for httpx clients (:func:`verify_for`): what their TLS needs, built once.

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
from pathlib import Path

__all__ = ["INSECURE_WARNING", "TLSConfigError", "tls_context", "verify_for"]


@functools.cache
def _default_context() -> ssl.SSLContext:
    return ssl.create_default_context()


def verify_for(urls: Iterable[str]) -> ssl.SSLContext | bool:
    """False when every URL is plain http (no certificate is ever checked), else the shared context."""
    if all(u.lower().startswith("http://") for u in urls):
        return False
    return _default_context()


INSECURE_WARNING = (
    "WARNING: endpoint.tls.verify is false: the server's TLS certificate and hostname are NOT checked; "
    "anyone on the network path can read or alter this traffic, including the API key"
)


class TLSConfigError(ValueError):
    """``endpoint.tls`` names a file that cannot be used."""


def tls_context(
    *,
    ca_bundle: Path | None = None,
    client_cert: Path | None = None,
    client_key: Path | None = None,
    verify: bool = True,
) -> ssl.SSLContext:
    """The client TLS context for these settings (see the module docstring)."""
    try:
        ctx = ssl.create_default_context(cafile=str(ca_bundle) if ca_bundle and verify else None)
    except (ssl.SSLError, OSError) as exc:
        raise TLSConfigError(f"endpoint.tls.ca_bundle: cannot load {ca_bundle}: {exc}") from None
    if not verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if client_cert is not None:
        try:
            ctx.load_cert_chain(str(client_cert), str(client_key) if client_key else None)
        except (ssl.SSLError, OSError) as exc:
            files = f"{client_cert}" + (f" / {client_key}" if client_key else "")
            raise TLSConfigError(f"endpoint.tls.client_cert: cannot load {files}: {exc}") from None
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx
