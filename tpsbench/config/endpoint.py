"""The ``endpoint`` block of a scenario: where requests go and how (URL, API, model, key, headers,
timeouts, TLS, Unix socket, transport, token counting)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from tpsbench.config.base import Strict as _Strict
from tpsbench.config.urls import check_base_url
from tpsbench.core.timeouts import Timeouts as _CoreTimeouts

__all__ = ["MAX_UNIX_SOCKET_PATH", "Api", "Endpoint", "Timeouts", "Tls"]


Api = Literal["chat", "completions", "messages", "responses"]
"""The streaming APIs ``endpoint.api`` can name."""


class Timeouts(_Strict):
    """The ``endpoint.timeouts`` block; :meth:`resolve` gives the transports' :class:`core.timeouts.Timeouts`
    (which holds the defaults)."""

    connect_s: float = Field(default=_CoreTimeouts.connect_s, gt=0)
    first_token_s: float = Field(default=_CoreTimeouts.first_token_s, gt=0)  # until the first body byte
    # the whole request, from its first byte sent to the end of the stream
    request_s: float = Field(default=_CoreTimeouts.request_s, gt=0)

    def resolve(self) -> _CoreTimeouts:
        """The plain timeouts the transports take."""
        return _CoreTimeouts(self.connect_s, self.first_token_s, self.request_s)


class Tls(_Strict):
    """``endpoint.tls``: how https connections are checked (tpsbench/core/tls.py). Paths are relative to
    the scenario file."""

    ca_bundle: Path | None = None  # PEM certificates to trust instead of the system store
    client_cert: Path | None = None  # PEM client certificate (mutual TLS), with its key unless client_key
    client_key: Path | None = None
    verify: bool = True  # false: no certificate check at all (a loud warning, recorded in metadata)

    @model_validator(mode="after")
    def _consistent(self) -> Tls:
        if self.client_key is not None and self.client_cert is None:
            raise ValueError("'client_key' needs 'client_cert' (the certificate the key belongs to)")
        if not self.verify and self.ca_bundle is not None:
            raise ValueError("'ca_bundle' has no effect with 'verify: false'; remove one of them")
        return self


MAX_UNIX_SOCKET_PATH = 107  # sun_path is 108 bytes on Linux, the last one a NUL


class Endpoint(_Strict):
    base_url: str | None = None  # None: the bundled reference endpoint, started and stopped by tpsbench
    # chat: /chat/completions; completions: /completions; messages: Anthropic /messages; responses: OpenAI
    # /responses (tpsbench/client/apis/)
    api: Api = "chat"
    model: str | None = None  # None: ask /v1/models for the first model
    api_key_env: str | None = None  # the NAME of the environment variable; its value is never stored
    headers: dict[str, str] = Field(default_factory=dict)
    timeouts: Timeouts = Field(default_factory=Timeouts)
    tls: Tls = Field(default_factory=Tls)  # https only; proxies come from HTTPS_PROXY / HTTP_PROXY / NO_PROXY
    # A server on this host listening on a Unix socket (vLLM's `--uds`, llama-server's `--host PATH.sock`):
    # every connection to the endpoint goes there, and base_url gives the Host header and the paths.
    unix_socket: str | None = None
    # h11 (tpsbench/client/transport/h11.py) is the only transport that meets issue 6's targets on one core
    # (benchmarks/results/client_accuracy.txt; TTFT p50 over the server's / TPS/user mean, p50 error):
    #   256 streams:  h11 +2.3 ms / +0.06%, +0.20%   aiohttp +9.1 ms / +1.45%, +0.80%   httpx +5 s
    #   1024 streams: h11 +2.0 ms / +0.15%, +0.69%   aiohttp +285 ms / +80%, +11%       httpx +21 s
    # (all three within 2 ms and 0.2% up to 16 streams). It stamps bytes in the protocol callback and
    # writes the request synchronously after send_ns; aiohttp writes it from another task and stamps reads
    # when its reading task runs; one httpx client runs out of CPU.
    transport: Literal["aiohttp", "httpx", "h11"] = "h11"
    continuous_usage: bool = False  # ask for per-chunk usage (vLLM's stream_options.continuous_usage_stats)
    extra_body: dict[str, Any] = Field(default_factory=dict)  # merged into every request body
    # How to count tokens the server does not report (workload/tokenizer.py): None or "estimate" (labelled
    # ceil(chars/4)), "server" (its tokenize endpoint), "gguf:PATH" (the model file's vocabulary through
    # llama-cpp-python) or a tokenizer.json path (the `tokenizers` library). Relative paths are relative to
    # the scenario file.
    tokenizer: str | None = None

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, v: str | None) -> str | None:
        if v is not None:
            check_base_url(v)
        return v

    @field_validator("unix_socket")
    @classmethod
    def _socket_path(cls, v: str | None) -> str | None:
        if v is None:
            return v
        if not os.path.isabs(v):
            raise ValueError(f"expected an absolute path to a Unix socket, got {v!r}")
        if len(os.fsencode(v)) > MAX_UNIX_SOCKET_PATH:
            raise ValueError(f"a Unix socket path has at most {MAX_UNIX_SOCKET_PATH} bytes, got {v!r}")
        return v

    @model_validator(mode="after")
    def _socket_needs_url(self) -> Endpoint:
        if self.unix_socket is not None and not (self.base_url or "").startswith("http://"):
            raise ValueError(
                "'unix_socket' needs an http:// base_url (it gives the Host header and the paths; "
                "TLS over a Unix socket is not supported)"
            )
        return self

    @field_validator("tokenizer")
    @classmethod
    def _tokenizer_kind(cls, v: str | None) -> str | None:
        if v is None or v in ("estimate", "server"):
            return v
        if v.removeprefix("gguf:") and (v.startswith("gguf:") or v.endswith(".json")):
            return v
        raise ValueError(
            f"expected 'estimate', 'server', 'gguf:PATH' or a path to a tokenizer.json, got {v!r}"
        )
