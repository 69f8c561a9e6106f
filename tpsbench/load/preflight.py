"""Before any level: is the endpoint usable at all? If not, say so in the server's own words, with a hint.

:func:`resolve_model` asks ``/models`` when the scenario names no model; :func:`preflight` sends one
unmeasured request shaped like the scenario's (the same API, body fields, prompt length and max_tokens,
through its own fresh connection) and checks that it streams generated text. Either raises
:class:`EndpointUnusable`, and nothing is measured (the run directory is not even created), with:

- the status (``HTTP 404`` or the transport's error kind) and the URL (redacted);
- ``server:`` the server's own message (its JSON ``error.message`` if it sent one, else its body; cut short,
  redacted);
- ``hint:`` for the usual causes: a base URL missing ``/v1`` (the same server answers under ``/v1``), an
  unknown model (with what ``/models`` serves), an API the server does not serve (404 on its path while
  ``/models`` answers: names ``endpoint.api``), 401/403 (the ``api_key_env`` to set), https against a
  plain-http server, connection refused ("is anything listening on host:port?"), an unknown host.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from tpsbench.client.apis import APIS, api_for
from tpsbench.client.client import Client, EndpointError, join_url, list_models
from tpsbench.client.network import Network, network_for
from tpsbench.client.transport import make_transport
from tpsbench.config.scenario import Scenario
from tpsbench.core.record import NS_PER_S, ErrorKind, RequestRecord
from tpsbench.core.redact import redact_text, redact_url
from tpsbench.workload.prompts import build_prompts
from tpsbench.workload.tokenizer import Tokenizer

__all__ = ["PREFLIGHT_STREAM", "EndpointUnusable", "preflight", "resolve_model", "server_words"]

PREFLIGHT_STREAM = 999_999  # the prompt seed stream of the preflight request (levels use their index)
SERVER_WORDS_CHARS = 300


class EndpointUnusable(Exception):
    """The endpoint cannot serve the scenario; ``str()`` is the message (first line: what failed)."""

    def __init__(self, what: str, server: str | None = None, hint: str | None = None) -> None:
        self.what, self.server, self.hint = what, server, hint
        lines = [what]
        if server:
            lines.append(f"  server: {server}")
        if hint:
            lines.append(f"  hint: {hint}")
        super().__init__("\n".join(lines))


def server_words(detail: str | None, secrets: tuple[str, ...] = ()) -> str | None:
    """The server's own message from an error body: ``error.message`` (or ``message``, ``detail``) of a
    JSON body, else the text; whitespace collapsed, cut to 300 characters, redacted."""
    if not detail:
        return None
    text = detail
    try:
        obj = json.loads(detail)
    except ValueError:
        obj = None
    if isinstance(obj, dict):
        err = obj.get("error", obj)
        msg = err.get("message") or err.get("detail") if isinstance(err, dict) else err
        if msg is None:
            msg = obj.get("message") or obj.get("detail")
        if isinstance(msg, str) and msg:
            text = msg
    text = " ".join(text.split())
    if len(text) > SERVER_WORDS_CHARS:
        text = text[:SERVER_WORDS_CHARS] + "..."
    return redact_text(text, secrets)


@dataclass(frozen=True)
class _Target:
    base_url: str
    api_key: str | None
    api_key_env: str | None
    timeout_s: float
    net: Network  # the run's proxy and TLS settings
    api: str = "chat"  # endpoint.api

    @property
    def shown(self) -> str:
        return redact_url(self.base_url)

    @property
    def host_port(self) -> str:
        parts = urlsplit(self.base_url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        host = parts.hostname or "?"
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    def with_v1(self) -> str | None:
        """The base URL with ``/v1`` appended, if its path does not end in it already."""
        parts = urlsplit(self.base_url)
        if parts.path.rstrip("/").endswith("/v1"):
            return None
        return urlunsplit(parts._replace(path=parts.path.rstrip("/") + "/v1"))


async def _listed(base_url: str, target: _Target) -> list[str]:
    net = target.net
    return await list_models(
        base_url,
        target.api_key,
        target.timeout_s,
        proxies=net.proxies,
        tls=net.tls,
        transport=net.httpx_transport(),
    )


async def _models(base_url: str, target: _Target) -> list[str] | None:
    try:
        return await _listed(base_url, target)
    except EndpointError:
        return None


def _connect_hint(detail: str, target: _Target) -> str:
    low = detail.lower()
    if "ssl" in low or "wrong version number" in low or "certificate" in low:
        if "wrong version number" in low or "record layer" in low:
            plain = urlsplit(target.base_url)._replace(scheme="http")
            return (
                f"the server at {target.host_port} does not speak TLS: use {redact_url(urlunsplit(plain))} "
                "(http, not https)"
            )
        return "TLS failed: check the certificate, or the scheme (http vs https)"
    if "name or service not known" in low or "nodename nor servname" in low or "gaierror" in low:
        return f"cannot resolve the host of {target.host_port}: check its spelling"
    if target.net.unix_socket is not None:
        where = target.net.unix_socket
        if "no such file" in low or "errno 2]" in low:
            return f"no Unix socket at {where} (endpoint.unix_socket): is the server started with it?"
        return f"connection refused: is anything listening on the Unix socket {where}?"
    return f"connection refused: is anything listening on {target.host_port}?"


async def _http_hint(status: int, words: str | None, model: str, target: _Target) -> str | None:
    """A hint for an HTTP error status; for 4xx it asks ``/models`` (and ``/v1/models``) what is served."""
    if status in (401, 403):
        if target.api_key_env:
            return (
                f"the server refused the credentials: check the key in ${target.api_key_env} "
                "(endpoint.api_key_env)"
            )
        return (
            "the server wants credentials: put the key in an environment variable and name it in "
            "endpoint.api_key_env"
        )
    if status in (400, 404, 405, 422):
        served = await _models(target.base_url, target)
        if model and served is not None and model not in served:
            return (
                f"unknown model {model!r}: {target.shown}/models serves {', '.join(map(repr, served[:10]))} "
                "(use --model or endpoint.model)"
            )
        v1 = target.with_v1()
        if v1 is not None and (await _models(v1, target)) is not None:
            return f"the base URL is missing /v1: use --endpoint {redact_url(v1)}"
        if status == 404 and served is None:
            return (
                "no such route: the base URL should be the OpenAI-compatible root, e.g. http://host:8000/v1"
            )
        if status == 404:  # the base URL is right (it serves /models) and so is the model: not this API
            return (
                f"this server has no endpoint.api: {target.api} route (POST {api_for(target.api).path} is "
                f"not found, {target.shown}/models answers): set endpoint.api to an API it serves "
                f"({' | '.join(APIS)})"
            )
    if status == 429:
        return "rate limited before the run started: wait, or ask for a higher limit"
    if status >= 500:
        return "the server failed: see its logs"
    return None


async def resolve_model(scenario: Scenario, base_url: str, api_key: str | None) -> str:
    """The scenario's model, else the first one ``/models`` lists; :class:`EndpointUnusable` if neither."""
    ep = scenario.endpoint
    if ep.model:
        return ep.model
    target = _Target(base_url, api_key, ep.api_key_env, ep.timeouts.connect_s, network_for(ep))
    try:
        return (await _listed(base_url, target))[0]
    except EndpointError as exc:
        where = f"error: no model given and GET {redact_url(join_url(base_url, '/models'))} failed"
        secrets = (api_key or "",)
        if exc.status is None:
            hint = _connect_hint(str(exc), target) if exc.connect else None
            what = f"{where} (nothing measured)"
            raise EndpointUnusable(what, redact_text(str(exc), secrets), hint) from None
        hint = None
        if exc.status in (401, 403):
            hint = await _http_hint(exc.status, None, "", target)
        elif (v1 := target.with_v1()) is not None and (await _models(v1, target)) is not None:
            hint = f"the base URL is missing /v1: use --endpoint {redact_url(v1)}"
        else:
            hint = "name the model with --model NAME (or endpoint.model in the scenario)"
        what = f"{where}: HTTP {exc.status} (nothing measured)"
        raise EndpointUnusable(what, server_words(exc.body, secrets), hint) from None


async def preflight(
    scenario: Scenario,
    base_url: str,
    model: str,
    api_key: str | None,
    *,
    tokenizer: Tokenizer | None = None,
    nonce: int = 0,
    unix_socket: str | None = None,
) -> dict[str, Any]:
    """Send one unmeasured request shaped like the scenario's, the way the load will (``unix_socket``:
    through it); return what it saw (for metadata.json) or raise :class:`EndpointUnusable`."""
    ep = scenario.endpoint
    net = network_for(ep, unix_socket)
    target = _Target(base_url, api_key, ep.api_key_env, ep.timeouts.connect_s, net, ep.api)
    prompt = build_prompts(
        scenario.workload,
        ep.api,
        1,
        stream_id=PREFLIGHT_STREAM,
        nonce=nonce,
        tokenizer=tokenizer if tokenizer is not None and not tokenizer.deferred else None,
    )[0]
    transport = make_transport(ep.transport, proxies=net.proxies, tls=net.tls, unix_socket=net.unix_socket)
    client = Client(ep, base_url, model, transport, api_key=api_key)
    started = time.perf_counter()
    try:
        reply = await client.send(prompt, request_id=0, level=-1, warmup=True, workload=scenario.workload)
    finally:
        await transport.aclose()
    record = reply.record
    info = {
        "ok": record.ok,
        "status": record.status,
        "seconds": round(time.perf_counter() - started, 3),
        "ttft_s": (record.chunk_ns[0] - record.send_ns) / NS_PER_S if record.chunk_ns else None,
        "output_tokens": record.output_tokens,
        "token_source": record.token_source.value,
    }
    if not record.ok:
        raise await _failure(record, client.url, model, target)
    return info


async def _failure(record: RequestRecord, url: str, model: str, target: _Target) -> EndpointUnusable:
    secrets = (target.api_key or "",)
    kind = record.error or ErrorKind.OTHER
    shown = redact_url(url)
    words = server_words(record.error_detail, secrets)
    if record.status is not None and not 200 <= record.status < 300:
        what = f"error: preflight request failed: HTTP {record.status} from POST {shown} (nothing measured)"
        return EndpointUnusable(what, words, await _http_hint(record.status, words, model, target))
    what = f"error: preflight request failed: {kind.value} at POST {shown} (nothing measured)"
    hint: str | None
    if kind is ErrorKind.CONNECT:
        hint = _connect_hint(record.error_detail or "", target)
    elif kind is ErrorKind.TIMEOUT_CONNECT and urlsplit(target.base_url).scheme == "https":
        plain = redact_url(urlunsplit(urlsplit(target.base_url)._replace(scheme="http")))
        hint = (
            f"no TLS handshake with {target.host_port} within endpoint.timeouts.connect_s: if the server "
            f"speaks plain HTTP, use {plain}"
        )
    elif kind is ErrorKind.TIMEOUT_CONNECT:
        hint = f"no connection within endpoint.timeouts.connect_s: is {target.host_port} reachable?"
    elif kind is ErrorKind.TIMEOUT_FIRST_TOKEN:
        hint = "no first token within endpoint.timeouts.first_token_s: the server is overloaded or stuck"
    elif kind in (ErrorKind.MALFORMED_SSE, ErrorKind.MALFORMED_JSON, ErrorKind.NO_TOKENS):
        hint = "the answer is not an OpenAI-style token stream: is this an OpenAI-compatible endpoint?"
    elif kind is ErrorKind.SERVER_ERROR_EVENT:
        hint = "the server reported an error inside the stream: see its message and logs"
    else:
        hint = None
    return EndpointUnusable(what, words, hint)
