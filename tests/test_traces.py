"""Trace files (workload/traces.py): reading, windows, speed-up, and prompts that share exactly the blocks
the trace says are shared."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tpsbench.config.scenario import Trace, Workload
from tpsbench.core.estimate import estimate_tokens
from tpsbench.workload.traces import TraceError, read_trace, trace_prompts

DATA = Path(__file__).parent / "data" / "workloads"


def test_mooncake_times_window_and_speedup() -> None:
    reqs = read_trace(Trace(path=DATA / "mooncake.jsonl", format="mooncake"))
    assert len(reqs) == 24 and reqs[1].offset_s == pytest.approx(0.05)
    assert reqs[0].hash_ids == (0, 1, 100) and reqs[0].input_tokens == 1224
    win = read_trace(
        Trace(path=DATA / "mooncake.jsonl", format="mooncake", start_s=0.1, duration_s=0.2, speedup=4)
    )
    assert [r.index for r in win] == [2, 3, 4, 5]
    assert [r.offset_s for r in win] == pytest.approx([0.0, 0.0125, 0.025, 0.0375])


def test_azure_and_plain() -> None:
    az = read_trace(Trace(path=DATA / "azure.csv", format="azure"))
    assert len(az) == 12 and az[11].offset_s == pytest.approx(1.1, abs=1e-6)
    assert (az[3].input_tokens, az[3].output_tokens) == (300 + 3 * 37, 23)
    plain = read_trace(Trace(path=DATA / "plain.csv", format="plain"))
    assert [r.input_tokens for r in plain[:3]] == [100, 110, 120]


def test_plain_jsonl_and_sorting(tmp_path: Path) -> None:
    f = tmp_path / "t.jsonl"
    rows = [
        {"time_s": 2.0, "input_tokens": 5, "output_tokens": 1},
        {"time_s": 1.0, "input_tokens": 7, "output_tokens": 2},
    ]
    f.write_text("".join(json.dumps(r) + "\n" for r in rows))
    reqs = read_trace(Trace(path=f, format="plain"))
    assert [(r.index, r.offset_s) for r in reqs] == [(1, 0.0), (0, 1.0)]


def test_bad_rows_name_file_line_field(tmp_path: Path) -> None:
    f = tmp_path / "t.jsonl"
    f.write_text(
        '{"timestamp": 0, "input_length": 10, "output_length": 2, "hash_ids": [1]}\n'
        '{"timestamp": 5, "input_length": 0, "output_length": 2}\n'
        '{"timestamp": 9, "input_length": 10, "output_length": 2, "hash_ids": ["a"]}\n'
        "[1]\n"
    )
    with pytest.raises(TraceError) as e:
        read_trace(Trace(path=f, format="mooncake"))
    assert str(e.value).splitlines() == [
        f"{f}:2: input_length: expected an integer >= 1, got 0",
        f"{f}:3: hash_ids: expected a list of integers",
        f"{f}:4: expected a JSON object with 'timestamp', 'input_length', 'output_length'",
    ]
    c = tmp_path / "a.csv"
    c.write_text("TIMESTAMP,ContextTokens\n2023-11-16 18:15:46.1,3\n")
    with pytest.raises(TraceError, match=r"a.csv:1: the header lacks 'GeneratedTokens'"):
        read_trace(Trace(path=c, format="azure"))


def test_empty_window() -> None:
    with pytest.raises(
        TraceError, match=r"no usable rows in the window \[100, inf\) s: the trace spans 1.15 s"
    ):
        read_trace(Trace(path=DATA / "mooncake.jsonl", format="mooncake", start_s=100))


def test_prompts_share_exactly_the_trace_blocks() -> None:
    reqs = read_trace(Trace(path=DATA / "mooncake.jsonl", format="mooncake"))
    specs = trace_prompts(reqs, Workload(), "chat", block_tokens=512, nonce=3)
    texts = [s.messages[0]["content"] for s in specs]  # type: ignore[index]
    for r, s, t in zip(reqs, specs, texts, strict=True):
        assert estimate_tokens(t) == r.input_tokens == s.input_tokens
        assert s.max_tokens == r.output_tokens and s.prompt_index == r.index
    block = 512 * 4  # characters per block (the estimate: 4 per token)

    def common(a: str, b: str) -> int:
        n = 0
        while n < min(len(a), len(b)) and a[n] == b[n]:
            n += 1
        return n

    # 0 and 2 share blocks (0, 1); 0 and 1 share block 0 only; their own blocks differ at once.
    assert block * 2 - 1 <= common(texts[0], texts[2]) < block * 2 + 4
    assert block - 1 <= common(texts[0], texts[1]) < block + 4
    # A new nonce (another run) changes every block, so one run cannot warm the cache for the next.
    again = trace_prompts(reqs, Workload(), "chat", block_tokens=512, nonce=4)
    assert common(texts[0], again[0].messages[0]["content"]) < 8  # type: ignore[index]


def test_prompts_without_hash_ids_share_nothing() -> None:
    reqs = read_trace(Trace(path=DATA / "plain.csv", format="plain"))
    specs = trace_prompts(reqs, Workload(), "completions", block_tokens=512)
    assert [s.input_tokens for s in specs] == [estimate_tokens(s.prompt or "") for s in specs]
    assert specs[0].prompt is not None and specs[1].prompt is not None
    assert specs[0].prompt[:40] != specs[1].prompt[:40]


def test_a_trace_the_client_cannot_keep_up_with_says_so() -> None:
    from tpsbench.config.scenario import Level
    from tpsbench.core.record import RequestRecord, TokenSource
    from tpsbench.results.summary import summarize_level

    level = Level(trace=Trace(path=DATA / "plain.csv", format="plain"))
    ms = 1_000_000
    records = [
        RequestRecord(
            request_id=i, level=0, scheduled_ns=i * 50 * ms, send_ns=i * 50 * ms + 20 * ms,  # 20 ms late
            end_ns=i * 50 * ms + 60 * ms, chunk_ns=[i * 50 * ms + 30 * ms, i * 50 * ms + 60 * ms],
            chunk_tokens=[1, 1], output_tokens=2, token_source=TokenSource.USAGE,
        )
        for i in range(10)
    ]  # fmt: skip
    point = summarize_level(records, level_index=0, level=level, slo={}, gpus=None)
    assert point["trace"] == "plain.csv" and point["sched_lag_s"]["p99"] == pytest.approx(0.02)
    assert point["self_check"]["client_bound"]
    assert any("scheduling lag" in w for w in point["warnings"])
