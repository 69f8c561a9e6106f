"""httpx through a Unix socket on the event loop's own streams (``asyncio.open_unix_connection``).

httpx's ``AsyncHTTPTransport(uds=...)`` reaches the socket through anyio, which drives a raw socket by
hand: each wait is ``loop.add_reader(sock, future.set_result, None)``, and the reader is taken off in the
future's done-callback, a loop turn later. Under uvloop, at 2,048 streams on the throughput scenario (where
the run's side calls, ``/pace`` and ``/metrics``, share the client loop with the load), the reader was
called again on the finished future before that: ``InvalidStateError`` tracebacks on the user's terminal.
The loop's stream transports (libuv's streams under uvloop, the selector transports under asyncio) hand the
loop no such callback, and are what the load's own h11 connections use.

    transport = UnixSocketTransport("/tmp/reference.sock")
    client = httpx.AsyncClient(transport=transport, base_url="http://localhost")
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Iterable, Iterator
from typing import Any

import httpcore
import httpx

__all__ = ["UnixSocketTransport"]

# httpx's own default pool size (httpx.AsyncHTTPTransport's DEFAULT_LIMITS; httpcore's differ)
LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20)


class UnixSocketTransport(httpx.AsyncHTTPTransport):
    """``httpx.AsyncHTTPTransport(uds=path)`` with its connections on asyncio streams, plain
    HTTP (no TLS through a Unix socket, as ``endpoint.unix_socket`` has it). httpx takes no network
    backend, so the pool (the transport's one state, which its request and close methods use) is made
    here, as httpx makes it, with the backend below; httpx's ``__init__`` is not run, as it would build a
    pool and an SSL context only to drop them."""

    def __init__(self, path: str) -> None:
        self._pool = httpcore.AsyncConnectionPool(
            max_connections=LIMITS.max_connections,
            max_keepalive_connections=LIMITS.max_keepalive_connections,
            keepalive_expiry=LIMITS.keepalive_expiry,
            uds=path,
            network_backend=_StreamsBackend(),
        )


@contextlib.contextmanager
def _mapped(timeout: type[Exception], error: type[Exception]) -> Iterator[None]:
    """The exceptions httpcore's own backends raise (httpx maps them to its ``httpx.*`` ones)."""
    try:
        yield
    except TimeoutError as exc:
        raise timeout(str(exc) or "timed out") from exc
    except OSError as exc:  # refused, missing socket, reset, broken pipe, TLS
        raise error(str(exc) or type(exc).__name__) from exc


class _StreamsBackend(httpcore.AsyncNetworkBackend):
    """Dials Unix sockets only (a pool with ``uds`` never asks for TCP)."""

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,  # none: the pool above sets none
    ) -> httpcore.AsyncNetworkStream:
        with _mapped(httpcore.ConnectTimeout, httpcore.ConnectError):
            async with asyncio.timeout(timeout):
                reader, writer = await asyncio.open_unix_connection(path)
        return _Stream(reader, writer)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class _Stream(httpcore.AsyncNetworkStream):
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        with _mapped(httpcore.ReadTimeout, httpcore.ReadError):
            async with asyncio.timeout(timeout):
                return await self._reader.read(max_bytes)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        with _mapped(httpcore.WriteTimeout, httpcore.WriteError):
            async with asyncio.timeout(timeout):
                self._writer.write(buffer)
                await self._writer.drain()

    async def aclose(self) -> None:
        self._writer.close()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        # The scenario refuses an https base URL with a Unix socket (config/endpoint.py): plain HTTP only.
        raise httpcore.ConnectError("TLS through a Unix socket is not supported: use an http:// base URL")

    def get_extra_info(self, info: str) -> Any:
        if info == "is_readable":  # httpcore's test of an idle connection: the server has closed it
            return self._reader.at_eof() or self._writer.is_closing()
        name = {"client_addr": "sockname", "server_addr": "peername"}.get(info, info)
        return self._writer.get_extra_info(name)  # ssl_object, socket
