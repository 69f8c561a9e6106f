"""ServerProcess for programs that do not print their URL: started when their ready route answers 200."""

from __future__ import annotations

import sys
import urllib.request

import pytest
from llama_fixtures import free_port

from tpsbench.core.serverprocess import ServerProcess


def test_a_program_on_a_given_url_is_ready_when_its_route_answers_and_stops_by_its_pid() -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/v1"
    args = ["-m", "http.server", str(port), "--bind", "127.0.0.1"]
    with ServerProcess(args, executable=sys.executable, url=url, ready_path="/") as server:
        assert server.url == url and server.pid is not None
        proc = server._proc
        with urllib.request.urlopen(server.root + "/", timeout=5) as resp:
            assert resp.status == 200
    assert server.pid is None and proc is not None and proc.returncode is not None


def test_a_program_that_exits_at_startup_says_so_with_its_output() -> None:
    args = ["-c", "import sys; print('no model here'); sys.exit(3)"]
    server = ServerProcess(args, executable=sys.executable, url="http://127.0.0.1:9/v1", startup_timeout_s=20)
    with pytest.raises(RuntimeError, match=r"exited at startup(.|\n)*no model here"):
        server.start()


def test_a_program_that_never_answers_times_out() -> None:
    args = ["-c", "import time; time.sleep(30)"]
    server = ServerProcess(
        args, executable=sys.executable, url="http://127.0.0.1:9/v1", startup_timeout_s=0.5
    )
    with pytest.raises(RuntimeError, match=r"did not answer /health in 0\.5 s"):
        server.start()
    assert server.pid is None
