"""Per-request metrics on exact synthetic integer-nanosecond timestamps."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tpsbench.core.record import ErrorKind, RequestRecord, TokenSource
from tpsbench.results import files, metrics

MS = 1_000_000  # ns
T0 = 5_000 * MS  # an arbitrary clock origin: metrics must only use differences


def rec(
    chunks: list[tuple[int, float]],
    *,
    send_ms: int = 0,
    end_ms: int | None = None,
    usage: int | None = None,
    error: ErrorKind | None = None,
    scheduled_ms: int | None = None,
    source: TokenSource = TokenSource.USAGE,
) -> RequestRecord:
    """A record from (arrival ms after T0, tokens) chunks."""
    last = chunks[-1][0] if chunks else send_ms
    return RequestRecord(
        request_id=1,
        level=0,
        send_ns=T0 + send_ms * MS,
        end_ns=T0 + (end_ms if end_ms is not None else last) * MS,
        scheduled_ns=None if scheduled_ms is None else T0 + scheduled_ms * MS,
        chunk_ns=[T0 + t * MS for t, _ in chunks],
        chunk_tokens=[k for _, k in chunks],
        output_tokens=usage,
        token_source=source,
        error=error,
    )


# send at 0; 3 tokens at 100 ms, 2 at 150, 4 at 250, 1 at 300; [DONE] at 310; usage 10.
MULTI = [(100, 3), (150, 2), (250, 4), (300, 1)]


def test_multi_token_chunks_with_a_large_first_chunk() -> None:
    m = metrics.request_metrics(rec(MULTI, end_ms=310, usage=10))
    assert list(m) == list(metrics.METRIC_KEYS)
    # the kinds files.LINE_METRICS is derived from: exactly the LIST_KEYS are lists
    assert [k for k, v in m.items() if isinstance(v, list)] == list(metrics.LIST_KEYS)
    assert set(metrics.RAW_FIELD_KEYS) <= set(m)
    assert m["ttft_s"] == 0.1
    assert m["first_chunk_tokens"] == 3
    assert m["output_tokens"] == 10
    assert m["decode_s"] == 0.2
    assert m["decode_tokens"] == 7  # n - n_first, not n - 1
    assert m["tps_user"] == pytest.approx(35.0)  # 7 tokens / 0.2 s
    assert m["tpot_s"] == pytest.approx(0.2 / 7)
    assert m["e2e_s"] == 0.31  # to end_ns
    assert m["e2e_tps"] == pytest.approx(10 / 0.3)  # to the last token chunk, not [DONE]
    assert m["itl_s"] == [0.05, 0.1, 0.05]
    assert m["itl_per_token_s"] == pytest.approx([0.025, 0.025, 0.05])  # gap / tokens of the later chunk
    assert m["tokens_per_chunk"] == [3, 2, 4, 1]
    assert m["n_chunks"] == 4
    assert m["sched_lag_s"] is None  # closed loop


def test_sum_of_gaps_is_decode_time_and_tpot_inverts_tps() -> None:
    m = metrics.request_metrics(rec(MULTI, usage=10))
    assert isinstance(m["itl_s"], list)
    assert sum(m["itl_s"]) == pytest.approx(m["decode_s"])
    assert isinstance(m["tps_user"], float) and isinstance(m["tpot_s"], float)
    assert m["tps_user"] * m["tpot_s"] == pytest.approx(1.0)


def test_missing_usage_falls_back_to_the_chunk_sum() -> None:
    m = metrics.request_metrics(rec(MULTI, usage=None, source=TokenSource.ESTIMATE))
    assert m["output_tokens"] == 10
    assert m["decode_tokens"] == 7
    assert m["tps_user"] == pytest.approx(35.0)


def test_usage_wins_over_the_chunk_sum() -> None:
    # Chunk counts are estimates; the server's usage is the truth for n.
    m = metrics.request_metrics(rec(MULTI, usage=12))
    assert m["output_tokens"] == 12
    assert m["decode_tokens"] == 9
    assert m["tps_user"] == pytest.approx(45.0)


def test_single_chunk_answer_has_ttft_but_no_speed() -> None:
    m = metrics.request_metrics(rec([(80, 5)], send_ms=20, end_ms=90, usage=5))
    assert m["ttft_s"] == 0.06
    assert m["decode_s"] == 0.0
    assert m["decode_tokens"] == 0
    assert m["tps_user"] is None
    assert m["tpot_s"] is None
    assert m["itl_s"] == []
    assert m["itl_per_token_s"] == []
    assert m["e2e_s"] == 0.07
    assert m["e2e_tps"] == pytest.approx(5 / 0.06)
    assert m["n_chunks"] == 1


def test_two_chunks_at_the_same_instant_have_no_speed() -> None:
    m = metrics.request_metrics(rec([(100, 1), (100, 4)], usage=5))
    assert m["decode_s"] == 0.0
    assert m["tps_user"] is None and m["tpot_s"] is None
    assert m["itl_s"] == [0.0]


@pytest.mark.parametrize(
    "error, chunks",
    [
        (ErrorKind.HTTP_5XX, []),
        (ErrorKind.STREAM_CUT, [(100, 2), (200, 3)]),  # partial answer: still a failed request
    ],
)
def test_failed_records_have_no_response_metrics(error: ErrorKind, chunks: list[tuple[int, float]]) -> None:
    m = metrics.request_metrics(
        rec(chunks, end_ms=500, error=error, scheduled_ms=-3, source=TokenSource.NONE)
    )
    facts = {"n_chunks", "sched_lag_s"}
    assert all(m[k] is None for k in metrics.METRIC_KEYS if k not in facts)
    assert m["n_chunks"] == len(chunks)
    assert m["sched_lag_s"] == 0.003  # the client's lateness is known even when the server failed


def test_sched_lag_in_open_loop() -> None:
    m = metrics.request_metrics(rec(MULTI, send_ms=2, scheduled_ms=0, usage=10))
    assert m["sched_lag_s"] == 0.002
    assert m["ttft_s"] == 0.098


def test_zero_token_chunks_are_skipped_in_per_token_itl() -> None:
    m = metrics.request_metrics(rec([(100, 2.0), (110, 0.0), (130, 3.0)], usage=5))
    assert m["itl_s"] == [0.01, 0.02]
    assert m["itl_per_token_s"] == pytest.approx([0.02 / 3])


def test_mismatched_chunk_lists_are_rejected() -> None:
    r = rec(MULTI, usage=10)
    r.chunk_tokens.pop()
    with pytest.raises(ValueError, match="4 chunk times but 3 chunk token counts"):
        metrics.request_metrics(r)


def test_direction() -> None:
    assert metrics.higher_is_better("tps_user")
    assert not metrics.higher_is_better("ttft_s")
    assert not metrics.higher_is_better("itl_s")


def test_record_line_keeps_raw_fields_and_round_trips() -> None:
    r = rec(MULTI, usage=None, source=TokenSource.ESTIMATE, scheduled_ms=-1)
    row = files.record_line(r)
    assert row["output_tokens"] is None  # raw stays raw: the metric's fallback must not overwrite it
    assert row["ttft_s"] == 0.1 and row["tps_user"] == pytest.approx(35.0)
    assert set(files.LINE_METRICS) <= set(row) and "itl_s" not in row  # lists are stored once
    assert files.record_from_line(json.loads(json.dumps(row)), "line") == r


def test_record_format_4_delta_encodes_chunk_times_exactly() -> None:
    r = RequestRecord(request_id=1, level=0, send_ns=10**13, end_ns=10**13 + 90, chunk_ns=[10**13 + 7,
                      10**13 + 7, 10**13 + 50, 10**13 + 90], chunk_tokens=[1.0, 2.0, 0.5, 3.0])  # fmt: skip
    row = files.record_line(r)
    assert row["format"] == files.RECORD_FORMAT >= 4 and "chunk_ns" not in row
    assert row["chunk_dns"] == [7, 0, 43, 40] and row["chunk_tokens"] == [1, 2, 0.5, 3]
    assert files.record_from_line(json.loads(json.dumps(row)), "line") == r
    empty = RequestRecord(request_id=2, level=0, send_ns=5, end_ns=9, error=ErrorKind.HTTP_5XX)
    assert files.record_from_line(files.record_line(empty), "line") == empty
    for bad in ({"chunk_dns": [1.5]}, {"chunk_dns": None}, {"send_ns": None}):
        with pytest.raises(files.RunFileError, match=r"^f:3: not a request record \(format 4"):
            files.record_from_line(row | bad, "f:3")
    old = {"format": 3, **r.to_dict()}  # formats 1-3 stored chunk_ns as written
    assert files.record_from_line(old, "line") == r


@pytest.mark.parametrize("run", ["reference", "baseline"])
def test_published_runs_in_old_formats_still_read(run: str) -> None:
    path = Path(__file__).resolve().parents[1] / "results" / run / files.REQUESTS
    records = list(files.read_records(path))
    assert records and all(r.chunk_ns == sorted(r.chunk_ns) for r in records)
    assert all(files.record_from_line(files.record_line(r), "x") == r for r in records[:50])


@settings(max_examples=60, deadline=None)
@given(
    gaps=st.lists(st.integers(0, 10**9), min_size=1, max_size=30),
    tokens=st.lists(st.integers(1, 8), min_size=31, max_size=31),
    ttft=st.integers(1, 10**10),
)
def test_invariants(gaps: list[int], tokens: list[int], ttft: int) -> None:
    t = [ttft]
    for g in gaps:
        t.append(t[-1] + g)
    k = tokens[: len(t)]
    r = RequestRecord(
        request_id=0,
        level=0,
        send_ns=0,
        end_ns=t[-1],
        chunk_ns=t,
        chunk_tokens=[float(x) for x in k],
        output_tokens=sum(k),
    )
    m = metrics.request_metrics(r)
    assert m["decode_tokens"] == sum(k) - k[0]
    assert isinstance(m["itl_s"], list) and len(m["itl_s"]) == len(t) - 1
    assert sum(m["itl_s"]) == pytest.approx(m["decode_s"])
    if m["tps_user"] is not None:
        assert isinstance(m["tpot_s"], float)
        assert m["tps_user"] * m["tpot_s"] == pytest.approx(1.0)
    else:
        assert m["decode_s"] == 0.0 and m["tpot_s"] is None


def test_scalar_metrics_are_the_full_set_without_the_lists() -> None:
    r = rec(MULTI, end_ms=310, usage=10)
    full, scalars = metrics.request_metrics(r), metrics.request_metrics(r, lists=False)
    assert list(full) == list(metrics.METRIC_KEYS)
    assert scalars == {k: v for k, v in full.items() if k not in metrics.LIST_KEYS}
    assert list(scalars) == [k for k in metrics.METRIC_KEYS if k not in metrics.LIST_KEYS]


def test_record_line_writes_integral_counts_as_integers_and_keeps_the_rest() -> None:
    r = rec([(100, 3.0), (150, 1.5), (250, 3), (300, 1.5)], end_ms=310, usage=9)
    line = files.record_line(r)
    assert line["chunk_tokens"] == [3, 1.5, 3, 1.5]
    assert [type(k) for k in line["chunk_tokens"]] == [int, float, int, float]


def test_list_metric_is_what_request_metrics_holds() -> None:
    r = rec(MULTI, end_ms=310, usage=10)
    full = metrics.request_metrics(r)
    assert all(metrics.list_metric(r, k) == full[k] for k in metrics.LIST_KEYS)
    with pytest.raises(KeyError, match="not a list metric"):
        metrics.list_metric(r, "ttft_s")
