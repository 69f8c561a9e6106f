"""Every published TPS/user definition on exact integer timestamps, including multi-token chunks."""

from __future__ import annotations

import doctest
from dataclasses import replace

import pytest

from tpsbench.config.scenario import Level
from tpsbench.core.record import RequestRecord, TokenSource
from tpsbench.results import definitions, metrics
from tpsbench.results.summary import summarize_level

MS = 1_000_000  # ns


def rec(chunks: list[tuple[int, int]], *, send_ms: int = 0, end_ms: int, rid: int = 0) -> RequestRecord:
    return RequestRecord(
        request_id=rid,
        level=0,
        send_ns=send_ms * MS,
        end_ns=end_ms * MS,
        chunk_ns=[t * MS for t, _ in chunks],
        chunk_tokens=[float(k) for _, k in chunks],
        output_tokens=sum(k for _, k in chunks),
        token_source=TokenSource.USAGE,
    )


def test_one_token_per_chunk_the_decode_definitions_agree() -> None:
    # send 0; tokens at 100, 110, ..., 190 ms (10 chunks of 1); stream ends at 200 ms
    r = rec([(100 + 10 * i, 1) for i in range(10)], end_ms=200)
    assert metrics.tps_user(r) == pytest.approx(9 / 0.09)  # (n - n_first) / (t_last - t_first)
    assert metrics.tps_user_aiperf(r) == pytest.approx(9 / 0.09)  # (n - 1) / (t_last - t_first): same
    assert metrics.tpot_inferencex_s(r) == pytest.approx(0.1 / 9)  # (t_end - t_first) / (n - 1)
    assert metrics.tps_user_inferencex(r) == pytest.approx(90.0)
    assert metrics.tps_user_guidellm(r) == pytest.approx(10 / 0.2)  # n / (t_end - t_send)


def test_speculative_chunks_make_the_osl_minus_one_formulas_differ() -> None:
    # 3 tokens per chunk (speculative decoding): 100, 200, 300 ms; end at 310 ms; n = 9
    r = rec([(100, 3), (200, 3), (300, 3)], end_ms=310)
    assert metrics.tps_user(r) == pytest.approx(6 / 0.2)  # 30: the first chunk's 3 tokens excluded
    assert metrics.tps_user_aiperf(r) == pytest.approx(8 / 0.2)  # 40: (OSL - 1) credits 2 of them
    assert metrics.tpot_inferencex_s(r) == pytest.approx(0.21 / 8)
    assert metrics.tps_user_inferencex(r) == pytest.approx(8 / 0.21)
    assert metrics.tps_user_guidellm(r) == pytest.approx(9 / 0.31)
    assert metrics.tps_user_aiperf(r) / metrics.tps_user(r) == pytest.approx(4 / 3)  # type: ignore[operator]


def test_undefined_cases() -> None:
    one_chunk = rec([(100, 5)], end_ms=120)
    assert metrics.tps_user_aiperf(one_chunk) is None
    assert metrics.tpot_inferencex_s(one_chunk) is None
    assert metrics.tps_user_inferencex(one_chunk) is None
    assert metrics.tps_user_guidellm(one_chunk) == pytest.approx(5 / 0.12)
    single_token = rec([(100, 1), (100, 0)], end_ms=100)
    assert metrics.tps_user_aiperf(single_token) is None  # n - 1 = 0
    assert metrics.tps_user_guidellm(rec([(0, 1)], end_ms=0)) is None  # zero latency


def test_point_level_definitions() -> None:
    assert definitions.tps_user_mlperf(0.025) == pytest.approx(40.0)
    assert definitions.tps_user_mlperf(None) is None
    assert definitions.tps_user_vllm(900.0, 3) == pytest.approx(300.0)
    assert definitions.tps_user_vllm(900.0, None) is None
    assert definitions.tps_user_vllm(None, 3) is None


def test_open_loop_vllm_per_user_shares_the_throughput_among_the_requests_it_counts() -> None:
    """Open loop: output TPS counts every request's tokens inside the window (warmup and cooldown too), so
    tps_user_vllm divides by the same requests' mean in flight. Each request streams 1 token/s (a token at
    every half second: none on the window's edges), so the per-user share is exactly 1 token/s."""
    S = 1000  # ms

    def one_per_s(rid: int, send: int, end: int, **kind: bool) -> RequestRecord:
        r = rec([(send * S + S // 2 + k * S, 1) for k in range(end - send)], send_ms=send * S, end_ms=end * S)
        return replace(r, request_id=rid, **kind)

    records = [
        one_per_s(0, 0, 4, warmup=True),  # in flight over [2, 4] of the window
        one_per_s(1, 0, 2, warmup=True),  # ends as the window opens
        one_per_s(2, 2, 6),  # measured: window [2, 8]
        one_per_s(3, 4, 8),
        one_per_s(4, 6, 12, cooldown=True),  # in flight over [6, 8]
    ]
    level = Level(rate=0.5, requests=2, warmup=2, cooldown=True)
    p = summarize_level(records, level_index=0, level=level, slo={}, gpus=None)
    assert p["window_s"] == 6.0 and p["output_tps"] == pytest.approx((2 + 4 + 4 + 2) / 6)
    assert p["self_check"]["in_flight_mean"] == pytest.approx(12 / 6)
    assert p["self_check"]["achieved_concurrency"] == pytest.approx(8 / 6)  # measured only: 1.5 tok/s
    assert p["tps_user_vllm"] == pytest.approx(1.0)
    assert p["tps_user_definitions"]["tps_user_vllm"]["value"] == p["tps_user_vllm"]


def test_summary_labels_every_definition() -> None:
    # two users; request i sends at 0, first chunk of 2 tokens at 100 ms, then 1-token chunks every
    # (10 + i) ms, 11 tokens in all; the stream ends 5 ms after the last chunk
    recs = []
    for i in range(2):
        gap = 10 + i
        chunks = [(100, 2)] + [(100 + gap * j, 1) for j in range(1, 10)]
        recs.append(rec(chunks, end_ms=100 + gap * 9 + 5, rid=i))
    p = summarize_level(
        recs, level_index=0, level=Level(concurrency=2, requests=2, warmup=0), slo={}, gpus=None
    )
    table = p["tps_user_definitions"]
    assert list(table) == list(definitions.KEYS)
    assert all(set(v) == {"source", "per", "formula", "value"} for v in table.values())
    assert table["tps_user"]["source"].startswith("Artificial Analysis")
    # per-request medians
    aa = sorted(9 / (0.001 * (10 + i) * 9) for i in range(2))
    assert table["tps_user"]["value"] == pytest.approx(sum(aa) / 2)
    ax = sorted(10 / (0.001 * (10 + i) * 9) for i in range(2))
    assert table["tps_user_aiperf"]["value"] == pytest.approx(sum(ax) / 2)
    # point-level: MLPerf = 1 / p90 of TPOT; vLLM = output TPS / concurrency (2)
    tpots = sorted(0.001 * ((10 + i) * 9 + 5) / 10 for i in range(2))
    p90 = tpots[0] + 0.9 * (tpots[1] - tpots[0])
    assert p["tpot_inferencex_s"]["p90"] == pytest.approx(p90)
    assert p["tps_user_mlperf"] == pytest.approx(1 / p90)
    assert table["tps_user_mlperf"]["value"] == p["tps_user_mlperf"]
    assert p["tps_user_vllm"] == pytest.approx(p["output_tps"] / 2)
    assert p["output_tps"] == pytest.approx(22 / 0.204)  # 22 tokens over the window 0..204 ms


def test_doctests() -> None:
    assert doctest.testmod(definitions).failed == 0


def test_report_shows_a_definitions_table_per_level() -> None:
    from tpsbench.report.html import to_html
    from tpsbench.report.markdown import to_markdown
    from tpsbench.results.summary import summarize_run

    r = rec([(100, 3), (200, 3), (300, 3)], end_ms=310)
    p = summarize_level(
        [r], level_index=0, level=Level(concurrency=1, requests=1, warmup=0), slo={}, gpus=None
    )
    doc = summarize_run([p], run_info={"name": "t"}, slo={})
    md = to_markdown(doc)
    assert "TPS/user as each harness defines it" in md
    assert "| AIPerf output token throughput per user | request |" in md
    assert "40.0" in md and "30.0" in md  # AIPerf (n - 1) vs Artificial Analysis (n - n_first)
    assert "MLPerf Endpoints tps_per_user" in to_html(doc, [])
