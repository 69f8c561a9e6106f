"""Token accounting rules: totals by source, per-chunk counts that add up to n."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tpsbench.client.tokens import account_tokens
from tpsbench.core.estimate import estimate_tokens
from tpsbench.core.record import TokenSource


def test_estimate_tokens_is_ceil_chars_over_4() -> None:
    assert [estimate_tokens("x" * n) for n in (0, 1, 4, 5, 8, 9)] == [0, 1, 1, 2, 2, 3]


def test_no_chunks() -> None:
    assert account_tokens([]) == ([], None, TokenSource.NONE)
    assert account_tokens([], usage=0) == ([], 0, TokenSource.USAGE)


def test_usage_total_with_chunks_scaled_by_text() -> None:
    # e = [1, 2, 1] (ceil(chars/4)), scaled to n = 8: t = 8 * e / 4.
    got = account_tokens(["abc", "defgh", "i"], usage=8)
    assert got == ([2.0, 4.0, 2.0], 8, TokenSource.USAGE)


def test_never_one_token_per_chunk() -> None:
    got = account_tokens(["a", "b"], usage=10)
    assert got.chunk_tokens == [5.0, 5.0]


def test_cumulative_chunk_usage_differences() -> None:
    got = account_tokens(["a", "bb", "ccc"], chunk_usage=[3, 4, 7], usage=7)
    assert got == ([3.0, 1.0, 3.0], 7, TokenSource.CHUNK_USAGE)


def test_cumulative_without_final_usage_uses_last_cumulative() -> None:
    assert account_tokens(["a", "b"], chunk_usage=[2, 5]) == ([2.0, 3.0], 5, TokenSource.CHUNK_USAGE)


def test_tokens_after_the_last_text_go_to_the_last_chunk() -> None:
    got = account_tokens(["a", "b"], chunk_usage=[1, 2], usage=3)
    assert got == ([1.0, 2.0], 3, TokenSource.CHUNK_USAGE)


def test_final_usage_below_cumulative_is_scaled() -> None:
    got = account_tokens(["a", "b"], chunk_usage=[2, 4], usage=2)
    assert got.chunk_tokens == [1.0, 1.0]
    assert got.source is TokenSource.CHUNK_USAGE


def test_partial_or_decreasing_chunk_usage_falls_back_to_text() -> None:
    assert account_tokens(["aaaa", "bbbb"], chunk_usage=[1, None], usage=6).chunk_tokens == [3.0, 3.0]
    assert account_tokens(["aaaa", "bbbb"], chunk_usage=[3, 2], usage=6).source is TokenSource.USAGE


def test_tokenizer_then_estimate() -> None:
    got = account_tokens(["hello ", "world"], count_tokens=lambda s: len(s.split()))
    assert got == ([1.0, 1.0], 2, TokenSource.TOKENIZER)
    est = account_tokens(["hello ", "world"])  # 11 chars -> 3 tokens; e = [2, 2]
    assert est == ([1.5, 1.5], 3, TokenSource.ESTIMATE)


def test_all_empty_texts_split_evenly() -> None:
    assert account_tokens(["", "", ""], usage=3).chunk_tokens == [1.0, 1.0, 1.0]


@given(
    texts=st.lists(st.text(max_size=12), min_size=1, max_size=30),
    n=st.integers(0, 5000),
)
def test_chunks_always_sum_to_n(texts: list[str], n: int) -> None:
    got = account_tokens(texts, usage=n)
    assert got.output_tokens == n
    assert len(got.chunk_tokens) == len(texts)
    assert all(t >= 0 for t in got.chunk_tokens)
    assert math.fsum(got.chunk_tokens) == pytest.approx(n, rel=1e-12, abs=1e-9)
