"""Run a server module in its own process and learn its URL from its first line of output.

Servers that tpsbench starts (the bundled reference endpoint, the pace server of tests and benchmarks) get a
process, hence an event loop and a core, of their own, so they never steal time from the load generator.

    with ServerProcess(["-m", "tpsbench.paceserver", "--port", "0"]) as server:
        print(server.url)   # http://127.0.0.1:PORT/v1
"""

from __future__ import annotations

import os
import selectors
import subprocess
import sys
import tempfile
import time
from types import TracebackType


class ServerProcess:
    """A Python server subprocess that prints its URL on its first stdout line, stopped on exit."""

    def __init__(self, args: list[str], *, startup_timeout_s: float = 30.0) -> None:
        self.args = args
        self.startup_timeout_s = startup_timeout_s
        self.url = ""
        self._proc: subprocess.Popen[bytes] | None = None
        # stderr goes to a file, not a pipe: a chatty server must never block on a full pipe
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 (lives as long as the process)

    def start(self) -> str:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self._proc = subprocess.Popen(
            [sys.executable, *self.args], stdout=subprocess.PIPE, stderr=self._stderr, env=env
        )
        assert self._proc.stdout is not None
        sel = selectors.DefaultSelector()
        sel.register(self._proc.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + self.startup_timeout_s
        line = b""
        while not line.endswith(b"\n"):
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not sel.select(remaining):
                self.stop()
                raise RuntimeError(
                    f"server {' '.join(self.args)} did not start in {self.startup_timeout_s} s"
                )
            # os.read on the fd: a buffered read could swallow the line into a buffer the selector can't see
            byte = os.read(self._proc.stdout.fileno(), 1)
            if not byte:
                self._proc.wait(timeout=10)
                self._stderr.seek(0)
                err = self._stderr.read().decode(errors="replace")
                self.stop()
                raise RuntimeError(f"server {' '.join(self.args)} exited at startup:\n{err[-2000:]}")
            line += byte
        sel.close()
        self.url = line.decode().strip()
        return self.url

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()

    def __enter__(self) -> ServerProcess:
        self.start()
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
