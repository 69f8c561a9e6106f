"""What the client spends per streamed chunk, stage by stage, in CPU time (no network, no server).

At the throughput end the load generator's one core is the bound (2,048 streams of about 35 chunks/s
each: 72k chunks/s, so at most ~12 us a chunk all-in, the kernel's own read path included). This splits
the Python side of that budget, on the exact bytes the reference endpoint sends (its own encoder,
:class:`tpsbench.reference.api.StreamEncoder`, one HTTP chunk per token):

- ``read``: the h11 transport's protocol callback (``data_received``: stamp, chunked framing, keep the
  read) for every chunk of a response, through a fake socket transport;
- ``decode``: the API's stream decoder over the kept reads (what :meth:`Client.send` runs in steps);
- ``record``: the raw record from the decoded stream (:func:`decode_exchange_text`: token accounting),
  then the ``requests.jsonl`` line (:func:`record_line`, metrics included) and its JSON;
- ``body``: building and serializing one request (the prompt, ``json.dumps``), per chunk of its answer.

CPU time (``time.process_time``) is used, so the figures hold while other processes share the host.

    python benchmarks/client_cost.py [--tokens 1000] [--requests 200] [--api chat]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from collections.abc import Callable
from typing import Any

from tpsbench.client.apis import api_for
from tpsbench.client.client import Client, decode_exchange_text
from tpsbench.client.transport.base import RawExchange
from tpsbench.client.transport.connect import origin_for
from tpsbench.client.transport.h11 import _Connection, _Pool
from tpsbench.config.scenario import Endpoint, Workload
from tpsbench.reference.api import MODEL_NAME, StreamEncoder, parse_request
from tpsbench.results.files import record_line
from tpsbench.workload.prompts import PromptSpec

_HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n"
    b"connection: keep-alive\r\n\r\n"
)


class _FakeSocket:
    """The asyncio transport a :class:`_Connection` writes to: it keeps nothing."""

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default

    def write(self, data: bytes) -> None:
        pass

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        pass


def wire_frames(tokens: int, api: str) -> list[bytes]:
    """The HTTP chunks of one streamed answer of ``tokens`` tokens, one per engine step."""
    body: dict[str, Any] = {"model": MODEL_NAME, "max_tokens": tokens, "stream": True}
    body["stream_options"] = {"include_usage": True}
    body |= {"messages": [{"role": "user", "content": "hi"}]} if api == "chat" else {"prompt": "hi"}
    enc = StreamEncoder(parse_request(api, json.dumps(body).encode()), "cmpl-bench", 1_700_000_000)  # type: ignore[arg-type]
    return [enc.frame(1, None) for _ in range(tokens - 1)] + [enc.frame(1, "length")]


def read_cost(frames: list[bytes], clock: Callable[[], int]) -> RawExchange:
    """One response through the protocol callback, as the event loop would deliver it (called from a
    running loop: the connection makes its futures on it)."""
    pool = _Pool()
    origin = origin_for("http://127.0.0.1:1/v1/chat/completions", None)
    conn = _Connection(pool, origin.key, clock)
    conn.connection_made(_FakeSocket())  # type: ignore[arg-type]
    ex = RawExchange(send_ns=clock(), end_ns=0)
    conn.attach(ex, origin, {}, b"{}")
    conn.data_received(_HEAD)
    receive = conn.data_received
    for frame in frames:
        receive(frame)
    return ex


async def measure() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tokens", type=int, default=1000, help="tokens (chunks) per answer")
    ap.add_argument("--requests", type=int, default=200, help="answers per stage")
    ap.add_argument("--api", default="chat", choices=("chat", "completions"))
    args = ap.parse_args()

    frames = wire_frames(args.tokens, args.api)
    endpoint = Endpoint(api=args.api)
    workload = Workload(input_tokens=1000, output_tokens=args.tokens)
    api = api_for(args.api)
    prompt = PromptSpec(
        messages=[{"role": "user", "content": "word " * 800}], prompt=None, input_tokens=1000,
        max_tokens=args.tokens, prompt_index=0,
    )  # fmt: skip
    client = Client(endpoint, "http://127.0.0.1:1/v1", "m", transport=None)  # type: ignore[arg-type]
    t = iter(range(10**12))
    clock = lambda: next(t) * 28_000_000  # noqa: E731  (a chunk every 28 ms, as at batch 2,048)

    stages: dict[str, list[float]] = {"read": [], "decode": [], "record": [], "body": []}
    for _ in range(args.requests):
        c0 = time.process_time()
        raw = read_cost(frames, clock)
        c1 = time.process_time()
        scan = api.scan(raw.reads)
        c2 = time.process_time()
        record, _ = decode_exchange_text(raw, prompt=prompt, request_id=1, level=0, api=api, scan=scan)
        json.dumps(record_line(record), separators=(",", ":"))
        c3 = time.process_time()
        json.dumps(client.build_body(prompt, workload), separators=(",", ":")).encode()
        c4 = time.process_time()
        for name, (a, b) in zip(stages, ((c0, c1), (c1, c2), (c2, c3), (c3, c4)), strict=True):
            stages[name].append((b - a) / len(frames) * 1e6)
        assert record.ok and record.output_tokens == args.tokens, record.error_detail

    n, k = args.requests, args.tokens
    print(f"# client CPU per chunk, us (median of {n} answers of {k} chunks, {args.api})")
    total = 0.0
    for name, values in stages.items():
        med = statistics.median(values)
        total += med
        print(f"{name:>8} {med:6.2f}")
    print(f"{'python':>8} {total:6.2f}   (+ the event loop's own read: epoll, recv, the callback)")


if __name__ == "__main__":
    asyncio.run(measure())
