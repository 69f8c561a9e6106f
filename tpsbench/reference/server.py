"""The reference endpoint over HTTP: an OpenAI-compatible aiohttp server in front of the :class:`Engine`.

Endpoints (model ``llama-4-maverick-b200-sim``):

- ``GET /v1/models``; ``POST /v1/chat/completions`` and ``POST /v1/completions``, streaming or not.
- ``GET /metrics``: the engine's lag and counters, the delivery lag (chunk written minus the step's planned
  end) and the server-side TTFT, as JSON; ``POST /metrics/reset`` starts a new window and returns the one
  that ended. :func:`pace_warnings` turns a window into warnings for a benchmark point.

Token accounting: generated text is made of 4-character pieces (" tok"), so ``ceil(chars / 4)`` of any
chunk is its token count; prompt tokens are ``ceil(chars / 4)`` of the prompt text (summed over messages).
Streaming sends one SSE event per engine step per request (1..k+1 tokens), vLLM style: a role-only delta
before the first chat token, ``finish_reason`` on the last token event, cumulative ``usage`` on every event
with ``stream_options.continuous_usage_stats``, a usage-only event with ``include_usage``, then ``[DONE]``.
Bad requests get OpenAI-style error bodies ``{"error": {"message", "type", "param", "code"}}``.

Run it in its own process (the benchmark does, via :class:`ReferenceServerProcess`)::

    python -m tpsbench.reference.server --port 0 --param draft_len=0   # prints http://127.0.0.1:PORT/v1
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import socket
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from aiohttp import web

from tpsbench.core.serverprocess import ServerProcess
from tpsbench.reference.engine import Chunk, Engine, Generation, LagStats
from tpsbench.reference.model import DEFAULT_PARAMS, ModelParams, ReferenceModel

MODEL_NAME = "llama-4-maverick-b200-sim"
PIECE = " tok"  # 4 characters: one token under the ceil(chars / 4) rule

Api = Literal["chat", "completions"]
_JSON_SEPARATORS = (",", ":")


class ApiError(Exception):
    """An OpenAI-style error: HTTP status and the ``error`` object's fields."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        type_: str = "invalid_request_error",
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.type = type_

    def response(self) -> web.Response:
        body = {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}
        return web.json_response(body, status=self.status)


@dataclass(frozen=True)
class ParsedRequest:
    """What the engine and the response writer need from a completion request."""

    api: Api
    prompt_tokens: int
    max_tokens: int
    min_tokens: int
    ignore_eos: bool
    stream: bool
    include_usage: bool
    continuous_usage: bool


def count_tokens(text: str) -> int:
    """ceil(chars / 4): the simulator's tokenizer."""
    return -(-len(text) // 4)


def _content_chars(content: Any, where: str) -> int:
    if content is None:
        return 0
    if isinstance(content, str):
        return len(content)
    if isinstance(content, list):  # content parts: count the text ones
        chars = 0
        for i, part in enumerate(content):
            if not isinstance(part, dict):
                raise ApiError(400, f"{where}[{i}] must be an object", param=where)
            text = part.get("text")
            if isinstance(text, str):
                chars += len(text)
        return chars
    raise ApiError(400, f"{where} must be a string or a list of content parts", param=where)


def _int_field(body: Mapping[str, Any], name: str, minimum: int) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ApiError(400, f"'{name}' must be an integer, got {value!r}", param=name, code="invalid_type")
    if value < minimum:
        raise ApiError(400, f"'{name}' must be >= {minimum}, got {value}", param=name, code="invalid_value")
    return value


def _bool_field(body: Mapping[str, Any], name: str) -> bool:
    value = body.get(name, False)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise ApiError(400, f"'{name}' must be a boolean, got {value!r}", param=name, code="invalid_type")
    return value


def parse_request(api: Api, raw: bytes, params: ModelParams = DEFAULT_PARAMS) -> ParsedRequest:
    """Validate a request body; raise :class:`ApiError` (4xx) with a message naming the field."""
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ApiError(
            400, f"We could not parse the JSON body of your request: {exc}", code="invalid_json"
        ) from None
    if not isinstance(body, dict):
        raise ApiError(400, "the request body must be a JSON object", code="invalid_json")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise ApiError(
            400, "you must provide a model parameter", param="model", code="missing_required_parameter"
        )
    if model != MODEL_NAME:
        raise ApiError(
            404,
            f"The model '{model}' does not exist; this server serves '{MODEL_NAME}'",
            param="model",
            code="model_not_found",
        )
    if api == "chat":
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise ApiError(
                400,
                "'messages' must be a non-empty list",
                param="messages",
                code="missing_required_parameter" if messages is None else "invalid_value",
            )
        chars = 0
        for i, msg in enumerate(messages):
            if not isinstance(msg, dict) or not isinstance(msg.get("role"), str):
                raise ApiError(400, f"messages[{i}] must be an object with a 'role'", param=f"messages[{i}]")
            chars += _content_chars(msg.get("content"), f"messages[{i}].content")
        prompt_tokens = max(1, -(-chars // 4))  # ceil(chars / 4) over all messages
    else:
        prompt = body.get("prompt")
        if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str | list):
            prompt = prompt[0]  # a batch of one
        if isinstance(prompt, str) and prompt:
            prompt_tokens = count_tokens(prompt)
        elif isinstance(prompt, list) and prompt and all(isinstance(t, int) for t in prompt):
            prompt_tokens = len(prompt)  # token ids
        elif prompt is None:
            raise ApiError(
                400, "you must provide a 'prompt'", param="prompt", code="missing_required_parameter"
            )
        else:
            raise ApiError(
                400,
                "'prompt' must be a non-empty string, a list of token ids, or a list of one "
                "of those (batched prompts are not supported)",
                param="prompt",
                code="invalid_value",
            )
    n = _int_field(body, "n", 1)
    if n not in (None, 1):
        raise ApiError(400, "only n=1 is supported", param="n", code="invalid_value")
    name = (
        "max_completion_tokens"
        if api == "chat" and body.get("max_completion_tokens") is not None
        else "max_tokens"
    )
    requested = _int_field(body, name, 1)
    room = params.max_model_len - prompt_tokens
    if room < 1:
        raise ApiError(
            400,
            f"the prompt ({prompt_tokens} tokens) leaves no room in the model's "
            f"{params.max_model_len}-token context",
            param="messages" if api == "chat" else "prompt",
            code="context_length_exceeded",
        )
    if requested is not None and requested > room:
        raise ApiError(
            400,
            f"'{name}' is too large: {requested} + {prompt_tokens} prompt tokens exceed the "
            f"{params.max_model_len}-token context",
            param=name,
            code="context_length_exceeded",
        )
    max_tokens = requested if requested is not None else room
    min_tokens = _int_field(body, "min_tokens", 0) or 0
    if min_tokens > max_tokens:
        raise ApiError(
            400,
            f"'min_tokens' ({min_tokens}) must be <= '{name}' ({max_tokens})",
            param="min_tokens",
            code="invalid_value",
        )
    stream = _bool_field(body, "stream")
    options = body.get("stream_options")
    if options is not None:
        if not isinstance(options, dict):
            raise ApiError(400, "'stream_options' must be an object", param="stream_options")
        if not stream:
            raise ApiError(
                400, "'stream_options' is only allowed when 'stream' is true", param="stream_options"
            )
    opts: Mapping[str, Any] = options or {}
    return ParsedRequest(
        api=api,
        prompt_tokens=prompt_tokens,
        max_tokens=max_tokens,
        min_tokens=min_tokens,
        ignore_eos=_bool_field(body, "ignore_eos"),
        stream=stream,
        include_usage=_bool_field(opts, "include_usage"),
        continuous_usage=_bool_field(opts, "continuous_usage_stats"),
    )


def _usage(prompt: int, completion: int) -> str:
    return (
        f'{{"prompt_tokens":{prompt},"completion_tokens":{completion},"total_tokens":{prompt + completion}}}'
    )


class _Events:
    """SSE events of one streamed response, formatted from fixed text (no json.dumps per chunk)."""

    def __init__(self, req: ParsedRequest, rid: str, created: int) -> None:
        self.req = req
        kind = "chat.completion.chunk" if req.api == "chat" else "text_completion"
        self._head = json.dumps(
            {"id": rid, "object": kind, "created": created, "model": MODEL_NAME}, separators=_JSON_SEPARATORS
        )[:-1]

    def _event(self, choices: str, completion: int) -> str:
        usage = f',"usage":{_usage(self.req.prompt_tokens, completion)}' if self.req.continuous_usage else ""
        return f'data: {self._head},"choices":[{choices}]{usage}}}\n\n'

    def role(self) -> str:
        return self._event(
            '{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}', 0
        )

    def tokens(self, n: int, finish_reason: str | None, completion: int) -> str:
        text = PIECE * n
        fr = "null" if finish_reason is None else f'"{finish_reason}"'
        if self.req.api == "chat":
            choice = f'{{"index":0,"delta":{{"content":"{text}"}},"logprobs":null,"finish_reason":{fr}}}'
        else:
            choice = f'{{"index":0,"text":"{text}","logprobs":null,"finish_reason":{fr}}}'
        return self._event(choice, completion)

    def usage(self, completion: int) -> str:
        return f'data: {self._head},"choices":[],"usage":{_usage(self.req.prompt_tokens, completion)}}}\n\n'


_ABORT = ApiError(503, "the server is shutting down", code="server_shutting_down", type_="server_error")


class ReferenceServer:
    """The aiohttp application: routes, the engine it feeds, and the delivery-lag stats."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.delivery = LagStats()  # chunk write time minus the step's planned end
        self.ttft = LagStats()  # server-side TTFT: handler entry to the first token event written
        self.created = int(time.time())
        self.app = web.Application(middlewares=[_error_middleware], client_max_size=64 * 1024 * 1024)
        self.app.router.add_get("/v1/models", self.models)
        self.app.router.add_post("/v1/chat/completions", self.chat)
        self.app.router.add_post("/v1/completions", self.completions)
        self.app.router.add_get("/metrics", self.metrics)
        self.app.router.add_post("/metrics/reset", self.metrics_reset)
        self.app.router.add_get("/health", self.health)

    async def health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def models(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "object": "list",
                "data": [
                    {
                        "id": MODEL_NAME,
                        "object": "model",
                        "created": self.created,
                        "owned_by": "tpsbench",
                        "max_model_len": self.engine.params.max_model_len,
                    }
                ],
            }
        )

    def _metrics(self) -> dict[str, Any]:
        return {
            "model": MODEL_NAME,
            "engine": self.engine.stats(),
            "delivery_lag_s": self.delivery.summary(),
            "server_ttft_s": self.ttft.summary(),
        }

    async def metrics(self, request: web.Request) -> web.Response:
        return web.json_response(self._metrics())

    async def metrics_reset(self, request: web.Request) -> web.Response:
        before = self._metrics()
        self.engine.reset_stats()
        self.delivery = LagStats()
        self.ttft = LagStats()
        return web.json_response(before)

    async def chat(self, request: web.Request) -> web.StreamResponse:
        return await self._complete(request, "chat")

    async def completions(self, request: web.Request) -> web.StreamResponse:
        return await self._complete(request, "completions")

    async def _complete(self, request: web.Request, api: Api) -> web.StreamResponse:
        entered = asyncio.get_running_loop().time()
        req = parse_request(api, await request.read(), self.engine.params)
        try:
            gen = self.engine.submit(
                req.prompt_tokens, req.max_tokens, min_tokens=req.min_tokens, ignore_eos=req.ignore_eos
            )
        except RuntimeError:
            raise _ABORT from None
        rid = f"{'chatcmpl' if api == 'chat' else 'cmpl'}-sim{gen.id}"
        try:
            if req.stream:
                return await self._stream(request, req, gen, rid, entered)
            return await self._collect(req, gen, rid)
        finally:
            self.engine.cancel(gen)  # the client went away (or we failed): free the slot; no-op when done

    async def _stream(
        self, request: web.Request, req: ParsedRequest, gen: Generation, rid: str, entered: float
    ) -> web.StreamResponse:
        """Stream one SSE event per engine step.

        Fast path: the engine calls ``sink`` at the end of each step, which writes the event as an HTTP/1.1
        chunk frame straight to the socket's transport, so a chunk costs one ``send`` and no task switch.
        Measured on 2 cores at ISL 1000: a handler task awaiting the queue fell behind from about 160
        streams, this path holds about 1.5x as many (docs/reference-endpoint.md).
        aiohttp sends the headers in ``prepare`` and frames the tail and the terminating chunk itself,
        so both write paths interleave correctly on the one transport.
        """
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        chunked = request.version >= (1, 1)  # HTTP/1.0: a raw body that ends when the connection closes
        if chunked:
            resp.enable_chunked_encoding()
        await resp.prepare(request)  # sends the headers now, as real servers do
        transport = request.transport
        events = _Events(req, rid, int(time.time()))
        loop = asyncio.get_running_loop()
        finished: asyncio.Future[str] = loop.create_future()
        completion = 0

        def sink(chunk: Chunk) -> None:
            nonlocal completion
            if finished.done():
                return
            if chunk.finish_reason == "abort":
                finished.set_result("abort")
                return
            first = completion == 0
            # vLLM style: the role-only delta goes out with the first token, not before it
            parts = [events.role()] if first and req.api == "chat" else []
            completion += chunk.tokens
            parts.append(events.tokens(chunk.tokens, chunk.finish_reason, completion))
            if chunk.finish_reason is not None:
                if req.include_usage:
                    parts.append(events.usage(completion))
                parts.append("data: [DONE]\n\n")
            if transport is None or transport.is_closing():  # gone: the handler's finally frees the slot
                finished.set_result("gone")
                return
            body = "".join(parts).encode()
            transport.write(b"%x\r\n%b\r\n" % (len(body), body) if chunked else body)  # one chunk frame
            now = loop.time()
            self.delivery.add(max(0.0, now - chunk.time))
            if first:
                self.ttft.add(now - entered)
            if chunk.finish_reason is not None:
                finished.set_result(chunk.finish_reason)

        while not gen.queue.empty():  # what the engine committed while the headers went out
            sink(gen.queue.get_nowait())
        gen.sink = sink
        try:
            if await finished == "abort":
                await resp.write(f"data: {_ABORT.response().text}\n\ndata: [DONE]\n\n".encode())
        except ConnectionResetError:  # the client disconnected; the caller frees the slot
            pass
        return resp

    async def _collect(self, req: ParsedRequest, gen: Generation, rid: str) -> web.Response:
        completion = 0
        while True:
            chunk = await gen.queue.get()
            if chunk.finish_reason == "abort":
                raise _ABORT
            completion += chunk.tokens
            if chunk.finish_reason is not None:
                break
        text = PIECE * completion
        choice: dict[str, Any] = {"index": 0, "logprobs": None, "finish_reason": chunk.finish_reason}
        if req.api == "chat":
            choice["message"] = {"role": "assistant", "content": text}
        else:
            choice["text"] = text
        return web.json_response(
            {
                "id": rid,
                "object": "chat.completion" if req.api == "chat" else "text_completion",
                "created": int(time.time()),
                "model": MODEL_NAME,
                "choices": [choice],
                "usage": {
                    "prompt_tokens": req.prompt_tokens,
                    "completion_tokens": completion,
                    "total_tokens": req.prompt_tokens + completion,
                },
            }
        )


def pace_warnings(metrics: Mapping[str, Any]) -> list[str]:
    """Warnings for a benchmark point from a ``/metrics`` window: did the host, not the model, set the pace?

    - behind: the median step lag exceeds half a modelled step, or the worst exceeds 10 steps: the engine
      fell behind its schedule, so TPS/user and server TPS are understated.
    - jitter: the p99 delivery lag exceeds a modelled step (and 2 ms): ITL and TTFT tails are the host's.
    """
    engine = metrics.get("engine") or {}
    step = engine.get("step_s_mean")
    lag = engine.get("lag_s") or {}
    delivery = metrics.get("delivery_lag_s") or {}
    if not step or not lag.get("count"):
        return []
    out = []
    hint = "the simulator needs more CPU than this host gives it: fewer streams, or a quieter machine"
    if lag["p50"] > 0.5 * step or lag["max"] > 10 * step:
        out.append(
            f"reference endpoint fell behind its schedule (step lag p50 {lag['p50'] * 1e3:.1f} ms, max "
            f"{lag['max'] * 1e3:.1f} ms, modelled step {step * 1e3:.2f} ms): TPS here is the host's; {hint}"
        )
    p99 = delivery.get("p99")
    if p99 is not None and p99 > max(step, 0.002):
        out.append(
            f"reference endpoint delivery lag p99 {p99 * 1e3:.1f} ms exceeds a modelled step "
            f"({step * 1e3:.2f} ms): ITL and TTFT tails reflect the host; {hint}"
        )
    return out


@web.middleware
async def _error_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Every error as an OpenAI-style JSON body, including aiohttp's own 404 / 405 / 413."""
    try:
        return await handler(request)
    except ApiError as exc:
        return exc.response()
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = {404: "not_found", 405: "method_not_allowed", 413: "request_too_large"}.get(exc.status)
        return ApiError(exc.status, f"{exc.reason}: {request.method} {request.path}", code=code).response()


@dataclass
class ServerHandle:
    """A running in-process server: ``url`` is the OpenAI base URL (``http://127.0.0.1:PORT/v1``)."""

    host: str
    port: int
    server: ReferenceServer
    _runner: web.AppRunner

    @property
    def root(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def url(self) -> str:
        return self.root + "/v1"

    @property
    def engine(self) -> Engine:
        return self.server.engine

    async def stop(self) -> None:
        await self.server.engine.stop()  # streams end (abort events) so the runner need not wait on them
        await self._runner.cleanup()


async def start_server(
    host: str = "127.0.0.1",
    port: int = 0,
    params: ModelParams = DEFAULT_PARAMS,
    seed: int = 0,
    *,
    spin_s: float = 0.001,
) -> ServerHandle:
    """Start the reference endpoint on the running loop; ``port=0`` picks a free port."""
    engine = Engine(ReferenceModel(params), seed=seed, spin_s=spin_s)
    await engine.start()
    server = ReferenceServer(engine)
    # handler_cancellation: a disconnected client cancels its handler at once, which frees its slot.
    runner = web.AppRunner(server.app, handler_cancellation=True, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    # A sweep opens hundreds of connections at once; a short accept queue would drop SYNs (1 s retries).
    site = web.SockSite(runner, sock, backlog=4096)
    await site.start()
    return ServerHandle(host, sock.getsockname()[1], server, runner)


def parse_param_overrides(items: Iterable[str]) -> dict[str, str]:
    """``["draft_len=0", "accept_probs=0.8,0.7,0.6"]`` -> a dict for :meth:`ModelParams.with_overrides`."""
    out: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise ValueError(f"expected NAME=VALUE, got {item!r}")
        out[name.strip()] = value.strip()
    return out


def _param_args(params: ModelParams | Mapping[str, Any]) -> list[str]:
    resolved = params if isinstance(params, ModelParams) else DEFAULT_PARAMS.with_overrides(params)
    args: list[str] = []
    for name, value in resolved.overrides().items():
        text = ",".join(repr(v) for v in value) if isinstance(value, tuple) else repr(value)
        args += ["--param", f"{name}={text}"]
    return args


async def _serve_until_stopped(
    host: str, port: int, params: ModelParams, seed: int, spin_s: float, exit_on_stdin_eof: bool = False
) -> None:
    handle = await start_server(host, port, params, seed, spin_s=spin_s)
    print(handle.url, flush=True)  # the first stdout line is the contract with ServerProcess
    print(
        f"tpsbench reference endpoint ({MODEL_NAME}) on {handle.url}; metrics at {handle.root}/metrics",
        file=sys.stderr,
        flush=True,
    )
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stopped.set)
    if exit_on_stdin_eof:  # the parent holds our stdin: EOF means it is gone

        def watch_stdin() -> None:
            with contextlib.suppress(OSError, ValueError):
                while sys.stdin.buffer.read(4096):
                    pass
            loop.call_soon_threadsafe(stopped.set)

        threading.Thread(target=watch_stdin, name="stdin-watch", daemon=True).start()
    try:
        await stopped.wait()
    finally:
        await handle.stop()


def serve(
    host: str = "127.0.0.1",
    port: int = 8000,
    params: ModelParams = DEFAULT_PARAMS,
    seed: int = 0,
    *,
    spin_s: float = 0.001,
    exit_on_stdin_eof: bool = False,
) -> None:
    """Serve until SIGINT / SIGTERM (``tpsbench serve``). Prints the base URL on stdout first."""
    _raise_fd_limit()
    asyncio.run(_serve_until_stopped(host, port, params, seed, spin_s, exit_on_stdin_eof))


def _raise_fd_limit() -> None:
    """Thousands of streams need thousands of sockets: lift the soft open-files limit to the hard one."""
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft != resource.RLIM_INFINITY and (hard == resource.RLIM_INFINITY or soft < hard):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ImportError, ValueError, OSError):
        pass


class ReferenceServerProcess(ServerProcess):
    """The reference endpoint in a subprocess of its own (its own core, never the load generator's loop).

        with ReferenceServerProcess(params={"draft_len": 0}, seed=0) as server:
            print(server.url)   # http://127.0.0.1:PORT/v1

    The child watches its stdin and exits when that closes, so it cannot outlive its parent.
    """

    name = "reference server"

    def __init__(
        self,
        params: ModelParams | Mapping[str, Any] = DEFAULT_PARAMS,
        *,
        seed: int = 0,
        host: str = "127.0.0.1",
        port: int = 0,
        spin_s: float = 0.001,
        startup_timeout_s: float = 30.0,
    ) -> None:
        super().__init__(
            [
                "-m", "tpsbench.reference.server", "--host", host, "--port", str(port), "--seed", str(seed),
                "--spin-ms", repr(spin_s * 1e3), "--exit-on-stdin-eof", *_param_args(params),
            ],
            startup_timeout_s=startup_timeout_s,
        )  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tpsbench.reference.server", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback only)")
    parser.add_argument("--port", type=int, default=8000, help="port; 0 picks a free one")
    parser.add_argument("--seed", type=int, default=0, help="seed of acceptance and output-length draws")
    parser.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override a model parameter (repeatable), e.g. draft_len=0",
    )
    parser.add_argument(
        "--spin-ms",
        type=float,
        default=1.0,
        help="last part of each step wait spent yielding instead of in epoll (1 ms granularity)",
    )
    parser.add_argument(
        "--exit-on-stdin-eof",
        action="store_true",
        help="stop when stdin closes (set by ReferenceServerProcess: dies with its parent)",
    )
    args = parser.parse_args(argv)
    try:
        params = DEFAULT_PARAMS.with_overrides(parse_param_overrides(args.param))
    except ValueError as exc:
        parser.error(str(exc))
    serve(
        args.host,
        args.port,
        params,
        args.seed,
        spin_s=args.spin_ms / 1e3,
        exit_on_stdin_eof=args.exit_on_stdin_eof,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
