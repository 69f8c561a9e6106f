"""Every user-facing command turns an expected failure into a one-line message naming the input, exit 2, and
never a traceback; `run` against an unusable endpoint leaves nothing measured (no run directory); the exit
contract of `run` (0 / 1 / 2) holds; a planted secret appears in no file of the run directory and nowhere in
the terminal output."""

from __future__ import annotations

import json
import os
import shutil
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tpsbench.cli.app import app
from tpsbench.reference.serve import ReferenceServerProcess

REPO = Path(__file__).resolve().parents[1]
SCENARIO = "name: t\nworkload: {input_tokens: 16, output_tokens: 16}\nload: [{concurrency: 1, requests: 3}]\n"


@pytest.fixture(scope="module")
def reference() -> Iterator[str]:
    with ReferenceServerProcess() as server:
        yield server.url


class _ModelsOnly(BaseHTTPRequestHandler):
    """Lists one model at /v1/models and answers 404 to everything else (a server without the API asked)."""

    def do_GET(self) -> None:
        if self.path == "/v1/models":
            self._send(200, {"object": "list", "data": [{"id": "m", "object": "model"}]})
        else:
            self._send(404, {"error": {"message": "File Not Found", "code": 404}})

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length") or 0))
        self._send(404, {"error": {"message": "File Not Found", "code": 404}})

    def _send(self, status: int, obj: object) -> None:
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def models_only() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _ModelsOnly)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("inputs")
    run = root / "run"
    run.mkdir()
    shutil.copy(REPO / "results" / "reference" / "summary.json", run / "summary.json")
    (root / "s.yaml").write_text(SCENARIO)
    (root / "key.yaml").write_text(
        SCENARIO.replace("name: t\n", "name: t\nendpoint: {api_key_env: TPSB_NOPE}\n")
    )
    (root / "messages.yaml").write_text(SCENARIO + "endpoint: {api: messages}\n")
    (root / "port.yaml").write_text(SCENARIO + "endpoint: {base_url: 'http://127.0.0.1:99999/v1'}\n")
    (root / "host.yaml").write_text(SCENARIO + "endpoint: {base_url: 'http://local host:8000'}\n")
    return {
        "run": str(run),
        "s": str(root / "s.yaml"),
        "key": str(root / "key.yaml"),
        "messages": str(root / "messages.yaml"),
        "port": str(root / "port.yaml"),
        "host": str(root / "host.yaml"),
        "out": str(root / "out"),
    }


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# (command line with {placeholders}, the start of the error line)
CASES = [
    ("validate nosuch.yaml", "error: nosuch.yaml: no such file"),
    ("validate {port}", "error: {port}:4: endpoint.base_url: port 99999 is out of range"),
    ("validate {host}", "error: {host}:4: endpoint.base_url: invalid host 'local host:8000'"),
    ("run nosuch.yaml", "error: nosuch.yaml: no such file"),
    ("run {s} --endpoint http://127.0.0.1:99999/v1", "error: command line: endpoint.base_url: port 99999"),
    ("run {s} --endpoint {spaced}", "error: command line: endpoint.base_url: invalid host 'local host:8000'"),
    ("run {s} --concurrency 1,x", "Usage:"),
    ("run {key} --out {out}", "error: endpoint.api_key_env names 'TPSB_NOPE'"),
    ("run {s} --endpoint {closed} --model m --out {out}", "error: preflight request failed: connect"),
    ("run {s} --endpoint {closed} --out {out}", "error: no model given and GET http://127.0.0.1:"),
    (
        "run {s} --endpoint {closed} --unix-socket {out}/no.sock --model m --out {out}",
        "error: preflight request failed: connect",
    ),
    (
        "run {s} --endpoint {closed} --unix-socket no.sock --out {out}",
        "error: command line: endpoint.unix_socket: expected an absolute path",
    ),
    ("run {s} --endpoint {ref} --model my-model --out {out}", "error: preflight request failed: HTTP 404"),
    ("run {s} --endpoint {ref_root} --out {out}", "error: no model given and GET"),
    ("run {s} --endpoint {ref_root} --model m --out {out}", "error: preflight request failed: HTTP 404"),
    ("run {s} --endpoint {ref_https} --model m --out {out}", "error: preflight request failed:"),
    (
        "run {messages} --endpoint {models_only} --model m --out {out}",
        "error: preflight request failed: HTTP 404 from POST {models_only}/messages",
    ),
    ("compare {run}", "error: compare: got 1 run directory, expected two or more"),
    ("compare {run} {run} --label a", "error: --label: 1 labels for 2 runs"),
    ("compare {run} nosuchdir", "error: compare nosuchdir: no such run directory"),
    ("report nosuchdir", "error: report nosuchdir: no such run directory"),
    ("report {out}", "error: report {out}: no summary.json in it"),
    ("gate --baseline nosuch --candidate {run}", "error: --baseline nosuch: no such run directory"),
    ("gate --baseline {run} --candidate nosuch", "error: --candidate nosuch: no such run directory"),
    ("gate --baseline {run} --candidate {run} --threshold nosuch=1", "error: --threshold:"),
    ("predict --param nosuch=1", "error: --param: unknown reference model parameter 'nosuch'"),
    ("serve --param nosuch=1", "error: --param: unknown reference model parameter 'nosuch'"),
    ("serve --port {busy}", "error: --host 127.0.0.1 --port {busy}: cannot listen: address already in use"),
]
HINTS = {  # what the message must also say (the server's words, the hint)
    "run {s} --endpoint {closed} --model m --out {out}": "is anything listening on 127.0.0.1:",
    "run {s} --endpoint {closed} --unix-socket {out}/no.sock --model m --out {out}": "no Unix socket at",
    "run {s} --endpoint {ref} --model my-model --out {out}": "serves 'llama-4-maverick-b200-sim'",
    "run {s} --endpoint {ref_root} --out {out}": "the base URL is missing /v1",
    "run {s} --endpoint {ref_root} --model m --out {out}": "the base URL is missing /v1",
    "run {s} --endpoint {key} --out {out}": "",
    "run {messages} --endpoint {models_only} --model m --out {out}": "no endpoint.api: messages route",
}


@pytest.mark.parametrize(("command", "expected"), CASES, ids=[c for c, _ in CASES])
def test_bad_input_is_one_line_and_exit_2(
    command: str, expected: str, files: dict[str, str], reference: str, models_only: str, tmp_path: Path
) -> None:
    Path(files["out"]).mkdir(exist_ok=True)
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    closed = _closed_port()
    names = files | {
        "ref": reference,
        "models_only": models_only,
        "ref_root": reference.removesuffix("/v1"),
        "ref_https": reference.replace("http://", "https://"),
        "closed": f"http://127.0.0.1:{closed}/v1",
        "busy": str(busy.getsockname()[1]),
    }
    names["spaced"] = "http://local host:8000"
    args = [a.format(**names) for a in command.split(" ")]  # split first: a placeholder may hold a space
    before = set(os.listdir(files["out"]))
    try:
        res = CliRunner().invoke(app, args, env={"TPSB_NOPE": ""})
    finally:
        busy.close()
    output = res.output
    assert res.exit_code == 2, output
    assert "Traceback" not in output and (res.exception is None or isinstance(res.exception, SystemExit))
    first = next(
        line for line in output.splitlines() if line.strip() and not line.startswith(("warning", " "))
    )
    assert first.startswith(expected.format(**names)), output
    assert HINTS.get(command, "") in output
    assert set(os.listdir(files["out"])) == before  # nothing measured: no run directory left behind


def test_exit_contract_of_a_run(tmp_path: Path, reference: str) -> None:
    """0 within the error budget; 1 when every request of a level failed (preflight skipped, so the level
    runs against a closed port and stops by itself), with the reason and the error in the last lines."""
    (tmp_path / "s.yaml").write_text(SCENARIO)
    ok = CliRunner().invoke(
        app,
        [
            "run",
            str(tmp_path / "s.yaml"),
            "--endpoint",
            reference,
            "--out",
            str(tmp_path / "r"),
            "--no-report",
        ],
    )
    assert ok.exit_code == 0, ok.output
    assert ok.output.splitlines()[-1] == "outcome: exit 0, every level within the 1% error budget"
    assert "client-bound" not in ok.output or "!c=" in ok.output  # the legend only with a flagged row
    dead = f"http://127.0.0.1:{_closed_port()}/v1"
    args = [
        "run",
        str(tmp_path / "s.yaml"),
        "--endpoint",
        dead,
        "--model",
        "m",
        "--out",
        str(tmp_path / "r"),
        "--no-report",
        "--no-preflight",
        "--concurrency",
        "4",
    ]
    bad = CliRunner().invoke(app, args)
    assert bad.exit_code == 1, bad.output
    lines = bad.output.splitlines()
    assert lines[-2] == "outcome: exit 1, 1 of 1 levels over the 1% error budget"
    assert lines[-1].startswith("  c=4: stopped after 20 consecutive connect failures and no success; ")
    assert "most common: connect" in lines[-1] and "first: connect" in lines[-1]
    assert "client-bound" not in bad.output  # failing fast is not the client's fault


def test_a_planted_secret_is_in_no_file_and_no_output(tmp_path: Path, reference: str) -> None:
    key, password, query = "sk-planted-key-0123456789", "planted-password-42", "planted-query-secret"
    url = reference.replace("http://", f"http://alice:{password}@") + f"?api_key={query}"
    (tmp_path / "s.yaml").write_text(
        SCENARIO.replace("name: t\n", "name: t\nendpoint: {api_key_env: TPSB_KEY}\n")
    )
    res = CliRunner().invoke(
        app,
        ["run", str(tmp_path / "s.yaml"), "--endpoint", url, "--out", str(tmp_path / "r")],
        env={"TPSB_KEY": key},
    )
    assert res.exit_code == 0, res.output
    files = [p for p in (tmp_path / "r").rglob("*") if p.is_file()]
    assert len(files) >= 6  # scenario, metadata, requests, summary json/csv, report files
    for secret in (key, password, query):
        assert secret not in res.output
        for p in files:
            assert secret.encode() not in p.read_bytes(), p
