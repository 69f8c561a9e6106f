"""The TLS context of every https connection of a run, from ``endpoint.tls``.

    context = tls_context(ca_bundle=None, client_cert=None, client_key=None, verify=True)

- default: the system's trust store (``ssl.create_default_context``, which honours ``SSL_CERT_FILE`` /
  ``SSL_CERT_DIR``), hostname checked;
- ``ca_bundle``: trust these PEM certificates instead (a private CA);
- ``client_cert`` (+ ``client_key`` if the key is in its own file): mutual TLS;
- ``verify: false``: no certificate or hostname check at all. Anyone on the path can then read and change
  the traffic, API key included; the run says so loudly and records it (:data:`INSECURE_WARNING`).

ALPN offers ``http/1.1`` only: the transports speak HTTP/1.1. A file that is not a usable certificate or key
raises :class:`TLSConfigError` (a ``ValueError``: exit 2 before any request), naming the file.
"""

from __future__ import annotations

import ssl
from pathlib import Path

__all__ = ["INSECURE_WARNING", "TLSConfigError", "tls_context"]

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
