"""The one token estimate: ``ceil(chars / 4)``, used wherever no tokenizer counts.

The client falls back to it for output counts (labelled ``TokenSource.ESTIMATE``), the workload sizes
synthetic prompts with it (its pieces are 4 characters, so the estimate is exact for them), and the
reference endpoint uses it as its tokenizer, so synthetic prompts there are exact too.

    >>> estimate_tokens("hello"), estimate_tokens(""), tokens_for_chars(9)
    (2, 0, 3)
"""

from __future__ import annotations

__all__ = ["CHARS_PER_TOKEN", "estimate_tokens", "tokens_for_chars"]

CHARS_PER_TOKEN = 4


def tokens_for_chars(chars: int) -> int:
    """``ceil(chars / 4)``."""
    return -(-chars // CHARS_PER_TOKEN)


def estimate_tokens(text: str) -> int:
    """Estimated token count of ``text``: ``ceil(len(text) / 4)`` (0 for empty text)."""
    return tokens_for_chars(len(text))
