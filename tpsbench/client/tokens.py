"""Token accounting: how many output tokens a request produced, and how many each chunk carried.

Pure functions of what the client decoded from the stream. The rules (DESIGN.md, "Metric definitions"):

1. The total ``n``, first source that applies:
   ``usage.completion_tokens`` of the stream (source ``USAGE``); else the last per-chunk cumulative
   ``completion_tokens`` (``CHUNK_USAGE``); else ``count_tokens(full text)`` with a tokenizer
   (``TOKENIZER``); else :func:`estimate_tokens` of the full text (``ESTIMATE``, labelled as such).
2. Per chunk, when *every* token chunk carries a cumulative ``completion_tokens`` ``u_i`` (vLLM's
   ``continuous_usage_stats``): ``t_i = u_i - u_{i-1}`` with ``u_0 = 0`` (tokens delivered in non-text
   events before chunk i are counted in chunk i), and the last chunk also gets ``n - u_k`` (tokens reported
   after the last text, e.g. a held-back final token). Source ``CHUNK_USAGE``.
3. Otherwise per chunk from its text, scaled so the chunks add up to ``n``:
   ``e_i = ceil(chars_i / 4)``, ``t_i = n * e_i / sum_j e_j`` (floats); all texts empty: ``t_i = n / k``.

A chunk is never assumed to be one token (speculative decoding sends several per chunk).

    >>> account_tokens(["Hel", "lo wor", "ld"], usage=4)
    TokenCounts(chunk_tokens=[1.0, 2.0, 1.0], output_tokens=4, source=<TokenSource.USAGE: 'usage'>)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

from tpsbench.core.estimate import estimate_tokens
from tpsbench.core.record import TokenSource

__all__ = ["TokenCounts", "account_tokens", "rescale"]


class TokenCounts(NamedTuple):
    """Tokens per token chunk (adding up to ``output_tokens``), the total, and where it came from."""

    chunk_tokens: list[float]
    output_tokens: int | None
    source: TokenSource


def account_tokens(
    texts: Sequence[str],
    *,
    chunk_usage: Sequence[int | None] | None = None,
    usage: int | None = None,
    count_tokens: Callable[[str], int] | None = None,
) -> TokenCounts:
    """Apply the module's rules to one request.

    ``texts``: the generated text of each token chunk, in order. ``chunk_usage``: the cumulative
    ``completion_tokens`` reported in each of those chunks (``None`` where absent). ``usage``: the stream's
    final ``completion_tokens`` if reported. ``count_tokens``: an optional tokenizer.

    With no token chunk, the total is ``usage`` if reported (source ``USAGE``), else ``None`` (``NONE``).

        >>> account_tokens(["a", "bcd"], chunk_usage=[1, 4], usage=5)
        TokenCounts(chunk_tokens=[1.0, 4.0], output_tokens=5, source=<TokenSource.CHUNK_USAGE: 'chunk_usage'>)
    """
    k = len(texts)
    if k == 0:
        return TokenCounts([], usage, TokenSource.USAGE if usage is not None else TokenSource.NONE)

    cum = _complete_cumulative(chunk_usage, k)
    full = "".join(texts)
    if usage is not None:
        n, source = usage, TokenSource.USAGE
    elif cum is not None:
        n, source = cum[-1], TokenSource.CHUNK_USAGE
    elif count_tokens is not None:
        n, source = count_tokens(full), TokenSource.TOKENIZER
    else:
        n, source = estimate_tokens(full), TokenSource.ESTIMATE

    if cum is not None:
        diffs = [float(c - p) for p, c in zip([0, *cum[:-1]], cum, strict=True)]
        rest = n - cum[-1]
        if rest >= 0:
            diffs[-1] += rest
            return TokenCounts(diffs, n, TokenSource.CHUNK_USAGE)
        # The final usage is below the per-chunk count (an inconsistent server): keep the shape, scale to n.
        return TokenCounts(_scale(diffs, n), n, TokenSource.CHUNK_USAGE)

    # a stream repeats a few chunk texts: estimate each distinct one once
    weight = {t: float(estimate_tokens(t)) for t in set(texts)}
    return TokenCounts(_scale(list(map(weight.__getitem__, texts)), n), n, source)


def rescale(chunk_tokens: Sequence[float], n: int) -> list[float]:
    """Per-chunk counts scaled to a new total ``n``, keeping their shares: ``t_i' = n * t_i / sum(t)``.

    For counts from rule 3 this equals :func:`account_tokens` with the total ``n`` (both are proportional
    to ``ceil(chars_i / 4)``): how a total counted later (a tokenizer called after the load) is applied.

        >>> rescale([1.0, 2.0, 1.0], 8)
        [2.0, 4.0, 2.0]
    """
    return _scale(list(chunk_tokens), n)


def _complete_cumulative(chunk_usage: Sequence[int | None] | None, k: int) -> list[int] | None:
    """The cumulative counts if every chunk has one and they never decrease, else None."""
    if chunk_usage is None or len(chunk_usage) != k:
        return None
    cum: list[int] = []
    prev = 0
    for c in chunk_usage:
        if c is None or c < prev:
            return None
        cum.append(c)
        prev = c
    return cum


def _scale(weights: list[float], n: int) -> list[float]:
    """``t_i = n * w_i / sum(w)`` (``n / k`` each if all weights are 0); the last absorbs rounding."""
    k = len(weights)
    total = math.fsum(weights)
    out = [n / k] * k if total <= 0 else [n * w / total for w in weights]
    if k > 1:
        out[-1] = max(0.0, n - math.fsum(out[:-1]))
    return out
