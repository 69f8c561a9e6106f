"""A minimal streaming server with a known pace, that logs its own send times.

It speaks OpenAI chat and completions, Anthropic Messages (``/v1/messages``) and OpenAI Responses
(``/v1/responses``): for the typed-event APIs it writes the opening events (``message_start`` ...,
``response.created`` ...) with the headers, long before the first token, as real servers do, so a client that
took them for the first token would show it.

It is the ground truth for measuring tpsbench itself (tests, benchmarks/): after ``ttft_ms`` it sends a
chunk of ``tokens`` tokens every ``interval_ms`` until ``max_tokens`` are sent, on absolute deadlines (a
late chunk does not delay the next ones), and records the clock time of every write. Because the clock is
CLOCK_MONOTONIC (``time.perf_counter_ns`` on Linux), its times compare directly with the client's when both
run on one host.

``tokens`` may be a range "1-4": each chunk then carries a seeded random count in that range (what
speculative decoding looks like on the wire).

Run it in its own process so it never shares an event loop with the client under test::

    python -m tpsbench.reference.pace --port 0 --ttft-ms 50 --interval-ms 10 --tokens 3

It prints ``http://127.0.0.1:PORT/v1`` on its first stdout line. ``GET /log`` returns the send log,
``POST /log/reset`` clears it. ``--cpu N`` pins the server to one core (benchmarks give the client another).

Ground truth per request: every log entry carries the request's ``X-Request-Id`` header, so
:func:`truth_by_id` matches it to tpsbench's record of the same request (the id is the header's last
``-``-separated field). With the client's ``send_ns`` (same CLOCK_MONOTONIC):
true TTFT = server's first token write - client's ``send_ns``; true TPS/user = (n - n_first) /
(last write - first write) from the server's own write times.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import random
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tpsbench.core import collector

PIECE = " tok"  # 4 characters = 1 token under the ceil(chars/4) estimate


@dataclass
class Pace:
    ttft_ms: float = 50.0
    interval_ms: float = 10.0
    tokens_min: int = 3
    tokens_max: int = 3
    seed: int = 0

    @classmethod
    def parse_tokens(cls, text: str) -> tuple[int, int]:
        lo, _, hi = text.partition("-")
        return int(lo), int(hi or lo)


@dataclass
class SendLog:
    """Per request: its ``X-Request-Id``, receive time, when its first chunk was due, and the time and
    token count of every token chunk written (stamped right after the write returned)."""

    entries: list[dict[str, Any]] = field(default_factory=list)


def _typed(kind: str, **data: Any) -> bytes:
    return b"event: %b\ndata: %b\n\n" % (kind.encode(), json.dumps({"type": kind, **data}).encode())


_USAGE0 = {"input_tokens": 1, "output_tokens": 1}
_OPENING = {
    "messages": _typed("message_start", message={"id": "pace", "usage": _USAGE0})
    + _typed("content_block_start", index=0, content_block={"type": "text", "text": ""})
    + _typed("ping"),
    "responses": _typed("response.created", response={"id": "pace", "status": "in_progress"})
    + _typed("response.in_progress", response={"id": "pace", "status": "in_progress"})
    + _typed("response.output_item.added", output_index=0, item={"type": "message", "content": []})
    + _typed("response.content_part.added", output_index=0, content_index=0, part={"type": "output_text"}),
}


def _closing(api: str, sent: int) -> bytes:
    """The end of a typed-event stream: the usage and the end event (no ``[DONE]``)."""
    if api == "messages":
        return (
            _typed("content_block_stop", index=0)
            + _typed("message_delta", delta={"stop_reason": "max_tokens"}, usage={"output_tokens": sent})
            + _typed("message_stop")
        )
    usage = {"input_tokens": 1, "output_tokens": sent, "total_tokens": 1 + sent}
    return _typed("response.completed", response={"id": "pace", "status": "completed", "usage": usage})


@functools.lru_cache(maxsize=64)
def _chunk(api: str, text: str, usage: tuple[int, int] | None = None) -> bytes:
    """One SSE event (cached: the pace server's CPU per chunk is what lets it keep its pace under load)."""
    if api == "messages":
        return _typed("content_block_delta", index=0, delta={"type": "text_delta", "text": text})
    if api == "responses":
        return _typed(
            "response.output_text.delta", item_id="pace", output_index=0, content_index=0, delta=text
        )
    if api == "chat":
        choices = [{"index": 0, "delta": {"content": text}, "finish_reason": None}] if text else []
        obj: dict[str, Any] = {"id": "pace", "object": "chat.completion.chunk", "choices": choices}
    else:
        choices = [{"index": 0, "text": text, "finish_reason": None}] if text else []
        obj = {"id": "pace", "object": "text_completion", "choices": choices}
    if usage is not None:
        prompt, completion = usage
        obj["usage"] = {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        }
    return b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n"


def truth(entries: list[dict[str, Any]]) -> dict[str, list[float]]:
    """What the server actually sent, per request, with tpsbench's metric definitions applied to the
    server's own send times: TTFT = first write - request received; TPS/user = (n - n_first) /
    (last write - first write)."""
    ttft, tps = [], []
    for e in entries:
        sends, toks = e["send_ns"], e["tokens"]
        if not sends:
            continue
        ttft.append((sends[0] - e["received_ns"]) / 1e9)
        if len(sends) > 1 and sends[-1] > sends[0]:
            tps.append((sum(toks) - toks[0]) / ((sends[-1] - sends[0]) / 1e9))
    return {"ttft_s": ttft, "tps_user": tps}


@dataclass(frozen=True, slots=True)
class Truth:
    """What the server did for one request, on the shared monotonic clock (ns)."""

    received_ns: int
    first_ns: int  # first token chunk written
    last_ns: int  # last token chunk written
    tokens: int
    first_tokens: int
    chunks: int
    max_lag_ns: int  # how late its latest chunk left against the server's own schedule

    def ttft_s(self, send_ns: int) -> float:
        """True TTFT of the request the client sent at ``send_ns``."""
        return (self.first_ns - send_ns) / 1e9

    @property
    def tps_user(self) -> float | None:
        decode_ns = self.last_ns - self.first_ns
        return (self.tokens - self.first_tokens) / (decode_ns / 1e9) if decode_ns > 0 else None


def request_key(header: str | None) -> int | None:
    """The record id in an ``X-Request-Id`` value: its last ``-``-separated field (tpsbench's UUID-shaped
    ids end with the id in decimal digits), or a bare ``<id>``."""
    if not header:
        return None
    tail = header.rsplit("-", 1)[-1]
    return int(tail) if tail.isdigit() else None


def truth_by_id(entries: list[dict[str, Any]]) -> dict[int, Truth]:
    """The server's truth per request id, for entries that sent at least one token chunk."""
    out: dict[int, Truth] = {}
    for e in entries:
        rid = request_key(e.get("request_id"))
        sends, toks = e["send_ns"], e["tokens"]
        if rid is None or not sends:
            continue
        interval = e["interval_ns"]
        lag = max(t - (e["due_ns"] + i * interval) for i, t in enumerate(sends))
        out[rid] = Truth(e["received_ns"], sends[0], sends[-1], sum(toks), toks[0], len(sends), lag)
    return out


class _Sender:
    """Writes one response's token chunks from timer callbacks, not a task per stream.

    A chunk costs a timer callback and a ``transport.write`` of one chunked-encoding frame (the response
    was prepared with chunked encoding, so aiohttp writes the rest, and the final frame, the same way).
    About three times cheaper than a task that sleeps and awaits ``resp.write``: what lets one core keep
    the pace for hundreds of streams, so the client, not the server, is what the benchmark stresses.
    """

    def __init__(
        self,
        transport: asyncio.Transport,
        api: str,
        n: int,
        due_ns: int,
        interval_ns: int,
        pace: Pace,
        rng: random.Random,
        entry: dict[str, Any],
    ) -> None:
        self.loop = asyncio.get_running_loop()
        self.transport = transport
        self.api = api
        self.n = n
        self.due_ns = due_ns
        self.interval_ns = interval_ns
        self.pace = pace
        self.rng = rng
        self.sends: list[int] = entry["send_ns"]
        self.tokens: list[int] = entry["tokens"]
        self.sent = 0
        self.done: asyncio.Future[None] = self.loop.create_future()
        self._schedule()

    def _schedule(self) -> None:
        self.loop.call_at(self.loop.time() + (self.due_ns - time.perf_counter_ns()) / 1e9, self._tick)

    def _tick(self) -> None:
        if self.transport.is_closing():  # the client went away
            self.done.set_result(None)
            return
        k = min(self.n - self.sent, self.rng.randint(self.pace.tokens_min, self.pace.tokens_max))
        data = _chunk(self.api, PIECE * k)
        self.transport.write(b"%x\r\n%b\r\n" % (len(data), data))
        self.sends.append(time.perf_counter_ns())  # after the write returned: the bytes are in the kernel
        self.tokens.append(k)
        self.sent += k
        if self.sent < self.n:
            self.due_ns += self.interval_ns
            self._schedule()
        else:
            self.done.set_result(None)


def make_app(pace: Pace) -> web.Application:
    log = SendLog()
    rng = random.Random(pace.seed)

    async def stream(request: web.Request) -> web.StreamResponse:
        received = time.perf_counter_ns()
        body = await request.json()
        api = request.path.rsplit("/", 1)[-1]  # completions, messages, responses
        if request.path.endswith("/chat/completions"):
            api = "chat"
        n = int(
            body.get("max_tokens")
            or body.get("max_completion_tokens")
            or body.get("max_output_tokens")
            or 100
        )
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        if api in _OPENING:
            await resp.write(_OPENING[api])  # with the headers: long before the first token
        # Absolute deadlines on the log's own clock: a late chunk does not delay the next ones.
        interval = round(pace.interval_ms * 1e6)
        due = time.perf_counter_ns() + round(pace.ttft_ms * 1e6)
        entry: dict[str, Any] = {
            "request_id": request.headers.get("X-Request-Id"),
            "received_ns": received,
            "due_ns": due,
            "interval_ns": interval,
            "send_ns": [],
            "tokens": [],
        }
        log.entries.append(entry)
        assert request.transport is not None
        sender = _Sender(request.transport, api, n, due, interval, pace, rng, entry)
        await sender.done
        if api in _OPENING:
            await resp.write(_closing(api, sender.sent))
        else:
            if include_usage:
                await resp.write(_chunk(api, "", (1, sender.sent)))
            await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp

    async def get_log(_: web.Request) -> web.Response:
        return web.json_response(log.entries)

    async def reset_log(_: web.Request) -> web.Response:
        log.entries.clear()
        return web.json_response({"ok": True})

    async def models(_: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": "pace", "object": "model"}]})

    app = web.Application()
    app.router.add_post("/v1/chat/completions", stream)
    app.router.add_post("/v1/completions", stream)
    app.router.add_post("/v1/messages", stream)
    app.router.add_post("/v1/responses", stream)
    app.router.add_get("/v1/models", models)
    app.router.add_get("/log", get_log)
    app.router.add_post("/log/reset", reset_log)
    return app


async def start(pace: Pace, host: str = "127.0.0.1", port: int = 0) -> tuple[web.AppRunner, str]:
    """Start in the current event loop; returns the runner (``await runner.cleanup()`` stops it) and URL."""
    runner = web.AppRunner(make_app(pace), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port, backlog=4096)
    await site.start()
    bound = runner.addresses[0][1]
    return runner, f"http://{host}:{bound}/v1"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--ttft-ms", type=float, default=50.0)
    ap.add_argument("--interval-ms", type=float, default=10.0)
    ap.add_argument("--tokens", default="3", help="tokens per chunk, N or MIN-MAX")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cpu", type=int, default=None, help="pin the server to this CPU (Linux)")
    a = ap.parse_args()
    if a.cpu is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {a.cpu})
    lo, hi = Pace.parse_tokens(a.tokens)
    pace = Pace(a.ttft_ms, a.interval_ms, lo, hi, a.seed)

    async def serve() -> None:
        runner, url = await start(pace, a.host, a.port)
        collector.quiet()  # no full GC pass mid-stream: it would delay every chunk (core/collector.py)
        print(url, flush=True)
        try:
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()

    asyncio.run(serve())


if __name__ == "__main__":
    main()
