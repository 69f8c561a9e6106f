"""Run a server in its own process: a Python module that prints its URL, or any program on a known URL.

Servers that tpsbench starts (the bundled reference endpoint, the pace server of tests and benchmarks) get a
process, hence an event loop and a core, of their own, so they never steal time from the load generator.

    with ServerProcess(["-m", "tpsbench.reference.pace", "--port", "0"]) as server:
        print(server.url)   # http://127.0.0.1:PORT/v1, its first stdout line

    with ServerProcess(["--port", "8081"], executable="/path/llama-server",
                       url="http://127.0.0.1:8081/v1", ready_path="/health") as server:
        ...                 # started when GET /health answered 200

The child's stderr (and, for a program given its URL, its stdout too) goes to a temporary file (a chatty
server must never block on a full pipe) that :meth:`ServerProcess.log` returns; its stdin is a pipe that
closes when the parent goes, so a server that watches stdin cannot outlive a parent that died without
stopping it. :meth:`ServerProcess.stop` signals the child by its own pid, and only it.
"""

from __future__ import annotations

import http.client
import os
import selectors
import socket
import subprocess
import sys
import tempfile
import time
from types import TracebackType
from typing import IO
from urllib.parse import urlsplit


class ServerProcess:
    """A server subprocess, stopped on exit.

    By default ``args`` go to this Python (``executable=None``) and the child prints its URL on its first
    stdout line. With ``url``, ``executable`` is any program serving at that URL: it is started once
    ``GET <origin><ready_path>`` answers 200 (polled every 0.1 s; through ``unix_socket`` when it serves
    on one), and fails early if the child exits.
    """

    name = "server"

    def __init__(
        self,
        args: list[str],
        *,
        startup_timeout_s: float = 30.0,
        executable: str | None = None,
        url: str | None = None,
        ready_path: str = "/health",
        unix_socket: str | None = None,
    ) -> None:
        self.args = args
        self.unix_socket = unix_socket
        self.startup_timeout_s = startup_timeout_s
        self.executable = executable or sys.executable
        self.given_url = url
        self.ready_path = ready_path
        self.url = ""
        self._proc: subprocess.Popen[bytes] | None = None
        self._stderr: IO[bytes] | None = None

    @property
    def root(self) -> str:
        """The URL without its ``/v1`` suffix, where non-OpenAI routes (metrics, logs) live."""
        return self.url.removesuffix("/v1")

    @property
    def pid(self) -> int | None:
        """The child's process id while it runs (benchmarks read its CPU time, placement pins it)."""
        return self._proc.pid if self._proc is not None else None

    def start(self) -> str:
        """Start the child and wait for its URL; raises ``RuntimeError`` with its stderr if it fails."""
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 (lives as long as the child; closed in stop)
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        # bufsize=0 and os.read: a buffered read could swallow the line where select() can't see it
        proc = subprocess.Popen(
            [self.executable, *self.args],
            stdin=subprocess.PIPE,
            stdout=self._stderr if self.given_url else subprocess.PIPE,
            stderr=self._stderr,
            env=env,
            bufsize=0,
        )
        self._proc = proc
        if self.given_url:
            return self._wait_ready(proc, self.given_url)
        assert proc.stdout is not None
        fd = proc.stdout.fileno()
        deadline = time.monotonic() + self.startup_timeout_s
        line = b""
        with selectors.DefaultSelector() as sel:
            sel.register(fd, selectors.EVENT_READ)
            while not line.endswith(b"\n"):
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not sel.select(remaining):
                    self.stop()
                    raise RuntimeError(f"the {self.name} did not start in {self.startup_timeout_s} s")
                data = os.read(fd, 4096)
                if not data:
                    proc.wait(timeout=10)
                    text = self.log()
                    self.stop()
                    raise RuntimeError(f"the {self.name} exited at startup:\n{text[-2000:]}")
                line += data
        self.url = line.decode().splitlines()[0].strip()
        return self.url

    def _wait_ready(self, proc: subprocess.Popen[bytes], url: str) -> str:
        parts = urlsplit(url)
        host, port = parts.hostname or "127.0.0.1", parts.port or 80
        deadline = time.monotonic() + self.startup_timeout_s
        while True:
            if proc.poll() is not None:
                text = self.log()
                self.stop()
                raise RuntimeError(f"the {self.name} exited at startup:\n{text[-2000:]}")
            conn = (
                http.client.HTTPConnection(host, port, timeout=2)
                if self.unix_socket is None
                else _UnixHTTPConnection(self.unix_socket, host)
            )
            try:
                conn.request("GET", self.ready_path)
                if conn.getresponse().status == 200:
                    self.url = url
                    return url
            except (OSError, http.client.HTTPException):
                pass  # not listening yet, or not answering HTTP yet
            finally:
                conn.close()
            if time.monotonic() > deadline:
                text = self.log()
                self.stop()
                raise RuntimeError(
                    f"the {self.name} did not answer {self.ready_path} in {self.startup_timeout_s} s:\n"
                    f"{text[-2000:]}"
                )
            time.sleep(0.1)

    def log(self) -> str:
        """What the child wrote to stderr so far."""
        if self._stderr is None:
            return ""
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace")

    def stop(self, timeout_s: float = 10.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout_s``."""
        proc, self._proc = self._proc, None
        if proc is not None:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=timeout_s)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            for pipe in (proc.stdin, proc.stdout):
                if pipe is not None:
                    pipe.close()
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    def __enter__(self) -> ServerProcess:
        self.start()
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class _UnixHTTPConnection(http.client.HTTPConnection):
    """An ``http.client`` connection to a server's Unix socket (``Host`` is still ``host``)."""

    def __init__(self, path: str, host: str) -> None:
        super().__init__(host, timeout=2)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self._path)
        except OSError:
            sock.close()
            raise
        self.sock = sock
