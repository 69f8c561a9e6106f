"""The decoder's fast paths (whole-event reads, replayed effects) give exactly the general parser's scan."""

from __future__ import annotations

import itertools
import json

from hypothesis import given, settings
from hypothesis import strategies as st

from tpsbench.client.apis.base import Scan, walk_events
from tpsbench.client.apis.chat import _apply_chunk

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
