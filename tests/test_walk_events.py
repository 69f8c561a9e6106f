"""The decoder's fast paths (whole-event reads, replayed effects) give exactly the general parser's scan;
the client decodes in steps, a few bodies at a time."""

from __future__ import annotations

import asyncio
import itertools
import json

from hypothesis import given, settings
from hypothesis import strategies as st

from tpsbench.client.apis.base import SCAN_SLICE, Scan, ScanSteps, walk_events
from tpsbench.client.apis.chat import CHAT, _apply_chunk
from tpsbench.client.client import DECODERS, Client
from tpsbench.client.transport.h11 import H11Transport
from tpsbench.config.scenario import Endpoint

EVENTS = [
    b'data: {"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}\n\n',
    b'data: {"choices":[{"index":0,"delta":{"content":" tok"},"finish_reason":null}]}\n\n',
    b'data: {"choices":[{"index":0,"delta":{"content":" tok tok"}}],"usage":{"completion_tokens":3}}\n\n',
    b'data:{"choices":[{"index":0,"text":" tok"}]}\n\n',
    b": keepalive\n\n",
    b"data: \n\n",
    b'event: message\ndata: {"choices":[{"index":0,"text":"a"}]}\n\n',
    b'data: {"choices":[{"index":0,"delta":{"content":"\xc3\xa9"}}]}\r\n\r\n',
    b'data: {"choices":[],"usage":{"prompt_tokens":7,"completion_tokens":9}}\n\n',
]


def _fields(scan: Scan) -> tuple[object, ...]:
    return tuple(getattr(scan, f) for f in Scan.__slots__)


@settings(max_examples=300, deadline=None)
@given(
    picks=st.lists(st.integers(0, len(EVENTS) - 1), max_size=30),
    cuts=st.lists(st.integers(0, 3000), max_size=10),
    done=st.booleans(),
    whole_reads=st.booleans(),
)
def test_fast_paths_agree_with_the_general_parser(
    picks: list[int], cuts: list[int], done: bool, whole_reads: bool
) -> None:
    events = [EVENTS[i] for i in picks] + ([b"data: [DONE]\n\n"] if done else [])
    if whole_reads:  # one event per read, as servers write them
        reads = [(i, ev) for i, ev in enumerate(events)]
    else:
        wire = b"".join(events)
        bounds = sorted({0, len(wire), *(c for c in cuts if c < len(wire))})
        reads = [(b, wire[a:b]) for a, b in itertools.pairwise(bounds)]
    fast = walk_events(reads, _apply_chunk, done_data="[DONE]", pure=True)
    slow = walk_events(reads, _apply_chunk, done_data="[DONE]")
    assert _fields(fast) == _fields(slow)


def test_a_repeated_chunk_is_replayed_with_its_own_arrival_time() -> None:
    chunk = b'data: {"choices":[{"index":0,"text":" tok"}]}\n\n'
    bad = b"data: {not json}\n\n"
    scan = walk_events([(t, chunk) for t in range(5)] + [(9, bad)], _apply_chunk, pure=True)
    assert scan.chunk_ns == [0, 1, 2, 3, 4] and scan.texts == [" tok"] * 5
    assert scan.error is not None and "not JSON" in (scan.error_detail or "")
    assert json.loads(chunk[6:])["choices"][0]["text"] == " tok"


def _usage_stream(n: int) -> list[tuple[int, bytes]]:
    """n one-token chunks that each carry their own usage (no two payloads alike: nothing is replayed)."""
    return [
        (
            i,
            b'data: {"choices":[{"index":0,"delta":{"content":" tok"}}],"usage":{"completion_tokens":%d}}\n\n'
            % i,
        )
        for i in range(1, n + 1)
    ] + [(n + 1, b"data: [DONE]\n\n")]


def test_a_stepped_decode_pauses_every_slice_and_gives_the_same_scan() -> None:
    reads = _usage_stream(4 * SCAN_SLICE + 10)
    steps = CHAT.scan_steps(reads)
    pauses = 0
    while True:
        try:
            next(steps)
        except StopIteration as done:
            stepped: Scan = done.value
            break
        pauses += 1
    assert pauses == len(reads) // SCAN_SLICE
    assert _fields(stepped) == _fields(CHAT.scan(reads))
    assert len(stepped.chunk_ns) == 4 * SCAN_SLICE + 10 and stepped.done_ns == len(reads)


class _CountingApi(type(CHAT)):  # type: ignore[misc]
    """Chat, counting the bodies being decoded at once (the client's own scan_steps seam)."""

    active = 0
    most = 0

    def scan_steps(self, reads: list[tuple[int, bytes]]) -> ScanSteps:
        inner = super().scan_steps(reads)

        def counted() -> ScanSteps:
            cls = _CountingApi
            cls.active += 1
            cls.most = max(cls.most, cls.active)
            try:
                scan: Scan = yield from inner
                return scan
            finally:
                cls.active -= 1

        return counted()


def test_bodies_that_end_together_are_decoded_a_few_at_a_time() -> None:
    """64 requests ending in the same read burst: each would add a slice to every loop iteration."""
    client = Client(Endpoint(), "http://127.0.0.1:1/v1", "m", H11Transport())
    client.api = _CountingApi()
    reads = _usage_stream(3 * SCAN_SLICE)

    async def all_at_once() -> list[Scan]:
        return await asyncio.gather(*(client._scan(reads) for _ in range(64)))

    scans = asyncio.run(all_at_once())
    assert _CountingApi.most == DECODERS < 64
    assert all(_fields(s) == _fields(scans[0]) for s in scans)
