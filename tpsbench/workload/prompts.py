"""Seeded prompts: the ``workload`` block of a scenario turned into one :class:`PromptSpec` per request.

    >>> from tpsbench.config.scenario import Workload
    >>> specs = build_prompts(Workload(input_tokens=8, output_tokens=16), "completions", 2)
    >>> [(estimate_tokens(s.prompt or ""), s.input_tokens, s.max_tokens) for s in specs]
    [(8, 8, 16), (8, 8, 16)]

Everything is a pure function of ``(workload, api, count, stream_id, nonce)``: the same arguments give the
same prompts, and request ``i`` does not depend on ``count`` (``build_prompts(..., 10)[:5]`` equals
``build_prompts(..., 5)``). Give each level (and each worker) its own ``stream_id`` so they draw different
prompts and token counts.

Without a tokenizer, synthetic prompts are made of 4-character pieces, a space and 3 lowercase letters
(``" qzk"``), so the estimate of :func:`estimate_tokens` (1 token per 4 characters) gives exactly the
requested input token count. Real tokenizers split such text differently; the server's
``usage.prompt_tokens``, when reported, is the authoritative count.

With a tokenizer (:mod:`.tokenizer`) synthetic prompts are exact for it: they are made of words that
are one token each for that tokenizer (2- and 3-letter words, picked once per tokenizer by counting them),
joined by spaces; the text is then counted whole and words are added or dropped at the end until the count
is the requested one (:func:`exact_text`). ``input_tokens`` is then that count. It counts the prompt text
only: a chat template (and a BOS token) added by the server come on top.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from tpsbench.config.scenario import Api, Distribution, ScenarioError, ScenarioIssue, TokenCount, Workload
from tpsbench.core.estimate import CHARS_PER_TOKEN, estimate_tokens
from tpsbench.workload.datasets import select_conversations
from tpsbench.workload.tokenizer import Tokenizer, TokenizerError

__all__ = [
    "PromptSpec",
    "PromptsFileError",
    "build_prompts",
    "draw_token_counts",
    "exact_text",
    "random_text",
    "single_token_words",
]

PREFIX_PIECES = 4  # pieces of the request-unique prefix: 12 random letters, 26**12 (about 2**56) values
_MAX_REPORTED = 20  # bad lines listed in one PromptsFileError

# Purposes mixed into the seed so each kind of draw has its own stream: changing the output-token
# distribution must not change the input lengths, and the prefix nonce must not change either.
_INPUT, _OUTPUT, _BODY, _PREFIX, _ORDER, _SHARED = 1, 2, 3, 4, 5, 6

# Exact-length prompts (with a tokenizer): a vocabulary of VOCAB_WORDS one-token words; a request-unique
# prefix of UNIQUE_WORDS of them (256**6 = 2**48 values).
VOCAB_WORDS = 256
UNIQUE_WORDS = 6
MAX_CANDIDATES = 6000  # words tried when building the vocabulary (all 2- and 3-letter words: 18,252)
MIN_VOCAB = 16
ADJUST_ROUNDS = 8  # count-and-fix rounds of exact_text; one or two suffice for one-token words


@dataclass(frozen=True, slots=True)
class PromptSpec:
    """One request's prompt. Exactly one of ``messages`` (chat API) and ``prompt`` (completions API) is
    set. ``input_tokens`` is the estimate ``ceil(chars / 4)`` of the text sent (message contents added
    up); ``max_tokens`` is the output length to ask for."""

    messages: list[dict[str, str]] | None
    prompt: str | None
    input_tokens: int
    max_tokens: int
    prompt_index: int | None = None  # the row of the prompts file or dataset (0-based); None: synthetic


class PromptsFileError(ScenarioError):
    """A prompts file that cannot be used: ``file:line: field: message`` for each bad line."""


def draw_token_counts(spec: TokenCount, n: int, rng: np.random.Generator) -> NDArray[np.int64]:
    """``n`` token counts: the int itself, or ``clip(rint(normal(mean, std)), min, max)`` per draw (no upper
    clip when ``max`` is None). Draw ``i`` does not depend on ``n``."""
    if not isinstance(spec, Distribution):
        return np.full(n, spec, dtype=np.int64)
    x = np.rint(rng.normal(spec.mean, spec.std, size=n))
    hi = np.inf if spec.max is None else spec.max
    return np.clip(x, spec.min, hi).astype(np.int64)


def build_prompts(
    workload: Workload,
    api: Api,
    count: int,
    *,
    stream_id: int = 0,
    base_dir: Path | None = None,
    nonce: int = 0,
    tokenizer: Tokenizer | None = None,
) -> list[PromptSpec]:
    """``count`` prompts for ``api``, seeded by ``(workload.seed, stream_id)``.

    - Synthetic (no ``prompts_file``): input and output lengths drawn from ``workload.input_tokens`` and
      ``workload.output_tokens``. Request ``i`` of ``n`` tokens is ``n`` pieces of 4 characters: with
      ``unique_prompts`` the first ``min(4, n)`` pieces are random per request (a unique prefix, so prefix
      caches cannot reuse earlier requests) and the rest is a body shared by all requests of the same seed;
      without it every prompt is a prefix of that shared body (cache-friendly on purpose).
    - ``dataset`` (:mod:`.datasets`): each usable row's first turn (system message, then the user
      message); ``max_tokens`` is the token count of the row's answer (the tokenizer's, else the
      estimate) with ``dataset.output_tokens: answer`` and an answer, else drawn from
      ``workload.output_tokens``. Rows are cycled like a prompts file's lines, with the same prefixes.
    - ``prompts_file`` (JSONL): each line ``{"messages": [...]}`` or ``{"prompt": "..."}``, optionally with
      ``"max_tokens"`` or ``"output_tokens"`` (else drawn from ``workload.output_tokens``); other keys are
      ignored. Each pass over the lines is a seeded permutation; passes repeat while ``count`` exceeds the
      lines. With ``unique_prompts`` a 16-character prefix (``"qzk abc def ghi\\n"``, 4 estimated tokens)
      goes in front of the first message (or the prompt). A relative path is taken from ``base_dir``
      (default: the current directory; ``load_scenario`` already made it absolute).

    With ``workload.shared_prefix_tokens = N`` every prompt starts with the same N tokens (seeded by
    ``workload.seed`` only, so every level and worker shares them), then the unique prefix: a server's
    prefix cache can reuse exactly those N tokens. Synthetic prompts count them in their input length;
    file prompts get them in front of the first message (or the prompt).

    With a ``tokenizer``, synthetic prompts have exactly the drawn number of tokens for it (module
    docstring) and every ``input_tokens`` is that tokenizer's count of the text sent.

    For the chat API a text prompt becomes one user message; for the completions API message contents are
    joined with blank lines. ``nonce`` only changes the unique prefixes: pass a per-run value (and record
    it) so that repeating a run against the same server misses the prompt cache too.
    """
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    if stream_id < 0 or nonce < 0:
        raise ValueError(f"stream_id and nonce must be >= 0, got {stream_id} and {nonce}")

    def rng(purpose: int, *extra: int) -> np.random.Generator:
        return np.random.default_rng([workload.seed, stream_id, purpose, *extra])

    max_tokens = draw_token_counts(workload.output_tokens, count, rng(_OUTPUT))
    n_shared = workload.shared_prefix_tokens
    shared_rng = np.random.default_rng([workload.seed, _SHARED])
    measure = tokenizer.count if tokenizer is not None else estimate_tokens

    if workload.prompts_file is None and workload.dataset is None:
        input_tokens = draw_token_counts(workload.input_tokens, count, rng(_INPUT))
        if tokenizer is not None:
            words = single_token_words(tokenizer)
            shared_words = _draw_words(shared_rng, words, n_shared)
            unique_rng = rng(_PREFIX, nonce)
            body: list[str] = []  # shared by every prompt: grown by exact_text, seeded by workload.seed
            specs = []
            for n, m in zip(input_tokens.tolist(), max_tokens.tolist(), strict=True):
                k = min(UNIQUE_WORDS, n - n_shared) if workload.unique_prompts else 0
                head = shared_words + _draw_words(unique_rng, words, UNIQUE_WORDS)[:k]
                text, got = exact_text(tokenizer, n, head, body, words, seed=workload.seed)
                specs.append(_spec(api, None, text, int(m), got))
            return specs
        prefixes = _prefix_texts(rng(_PREFIX, nonce), count) if workload.unique_prompts else None
        texts = _synthetic_texts(input_tokens, prefixes, workload.seed, _pieces(shared_rng, n_shared))
        return [_spec(api, None, t, int(m)) for t, m in zip(texts, max_tokens, strict=True)]

    prefixes = _prefix_texts(rng(_PREFIX, nonce), count) if workload.unique_prompts else None
    shared = ""
    if n_shared:
        shared = (
            " ".join(_draw_words(shared_rng, single_token_words(tokenizer), n_shared))
            if tokenizer is not None
            else _pieces(shared_rng, n_shared).lstrip(" ")
        ) + "\n"

    if workload.dataset is not None:
        lines = dataset_lines(workload, measure)
    else:
        path = workload.prompts_file
        assert path is not None  # the synthetic case returned above
        if not path.is_absolute():
            path = (base_dir or Path.cwd()) / path
        lines = _read_prompts_file(path)
    order = _cycle_order(len(lines), count, rng(_ORDER))
    specs = []
    for i, k in enumerate(order):
        entry = lines[k]
        messages = entry.message_dicts  # fresh dicts: specs never share mutable state
        prompt = entry.prompt
        # 16 characters (a whole number of estimated tokens) after the shared prefix, if any
        lead = shared + (prefixes[i].lstrip(" ") + "\n" if prefixes is not None else "")
        if lead:
            if messages is not None:
                messages[0]["content"] = lead + messages[0]["content"]
            else:
                prompt = lead + (prompt or "")
        out = entry.max_tokens if entry.max_tokens is not None else int(max_tokens[i])
        specs.append(_spec(api, messages, prompt, out, measure=measure, index=entry.index))
    return specs


def dataset_lines(workload: Workload, measure: Callable[[str], int]) -> list[_Line]:
    """The first turn of each conversation :func:`.datasets.select_conversations` keeps, as prompt lines
    (``max_tokens``: the answer's count under ``dataset.output_tokens: answer``)."""
    ds = workload.dataset
    assert ds is not None
    lines = []
    for c in select_conversations(ds, measure, workload.seed):
        first = c.turns[0]
        msgs: tuple[tuple[tuple[str, str], ...], ...] = (
            ((("role", "system"), ("content", c.system)),) if c.system else ()
        )
        msgs += ((("role", "user"), ("content", first.user)),)
        out = None
        if ds.output_tokens == "answer" and first.answer is not None and first.answer.strip():
            out = max(1, measure(first.answer))
        lines.append(_Line(msgs, None, out, c.index))
    return lines


def _spec(
    api: Api,
    messages: list[dict[str, str]] | None,
    prompt: str | None,
    out: int,
    tokens: int | None = None,
    *,
    measure: Callable[[str], int] = estimate_tokens,
    index: int | None = None,
) -> PromptSpec:
    """The spec for one API; ``input_tokens`` is ``tokens`` if known, else ``measure`` of the text sent
    (message contents added up for chat)."""
    if api != "completions":  # every other API sends messages
        if messages is None:
            messages = [{"role": "user", "content": prompt or ""}]
        n = tokens if tokens is not None else sum(measure(m["content"]) for m in messages)
        return PromptSpec(messages, None, n, out, index)
    if prompt is None:
        prompt = "\n\n".join(m["content"] for m in messages or [])
    return PromptSpec(None, prompt, tokens if tokens is not None else measure(prompt), out, index)


_VOCAB_CACHE: dict[str, list[str]] = {}


def single_token_words(tokenizer: Tokenizer) -> list[str]:
    """Up to :data:`VOCAB_WORDS` lowercase 2- and 3-letter words that are one token each for
    ``tokenizer``, both after a space and repeated (``count(" w") == 1`` and ``count(" w w") == 2``), in a
    fixed pseudo-random order of candidates (so the list depends on the tokenizer only). Cached per
    tokenizer name.

    Raises :class:`~tpsbench.workload.tokenizer.TokenizerError` when fewer than 16 such words exist.
    """
    cached = _VOCAB_CACHE.get(tokenizer.name)
    if cached is not None:
        return cached
    letters = [chr(c) for c in range(ord("a"), ord("z") + 1)]
    candidates = [a + b for a in letters for b in letters] + [
        a + b + c for a in letters for b in letters for c in letters
    ]
    order = np.random.default_rng(0).permutation(len(candidates))[:MAX_CANDIDATES]
    words: list[str] = []
    for i in order.tolist():
        w = candidates[i]
        if tokenizer.count(" " + w) == 1 and tokenizer.count(f" {w} {w}") == 2:
            words.append(w)
            if len(words) == VOCAB_WORDS:
                break
    if len(words) < MIN_VOCAB:
        raise TokenizerError(
            f"tokenizer {tokenizer.name}: only {len(words)} of {len(order)} short words are one token each, "
            f"too few to build exact-length prompts (need {MIN_VOCAB}). Hint: use endpoint.tokenizer "
            "'estimate' for estimated lengths."
        )
    _VOCAB_CACHE[tokenizer.name] = words
    return words


def _draw_words(rng: np.random.Generator, words: list[str], n: int) -> list[str]:
    return [words[i] for i in rng.integers(0, len(words), size=n).tolist()]


def exact_text(
    tokenizer: Tokenizer, n: int, head: list[str], body: list[str], words: list[str], *, seed: int = 0
) -> tuple[str, int]:
    """A text of ``n`` tokens for ``tokenizer``: the words of ``head``, then ``body`` (extended
    from ``words`` as needed, seeded by ``seed``), joined by spaces, cut or extended at the end until the
    count is ``n``. Returns the text and its count (``n`` unless no word count reaches it exactly, then the
    closest found). ``body`` is extended in place, so every prompt shares one body.
    """
    m = n  # words: one token each, so the first guess is (almost always) right
    best: tuple[int, str, int] | None = None
    for _ in range(ADJUST_ROUNDS):
        while len(body) < m - len(head):  # the body grows by a seeded continuation, the same for every prompt
            more = _draw_words(np.random.default_rng([seed, _BODY, len(body)]), words, max(64, m - len(body)))
            body.extend(more)
        text = " ".join((head + body[: max(m - len(head), 0)])[:m])
        got = tokenizer.count(text)
        if best is None or abs(got - n) < best[0]:
            best = (abs(got - n), text, got)
        if got == n:
            break
        m = max(m + (n - got), 0)
    assert best is not None
    return best[1], best[2]


def random_text(rng: np.random.Generator, n: int, tokenizer: Tokenizer | None = None) -> str:
    """A random text of ``n`` tokens: ``n`` pieces of a space and 3 letters (exact for the estimate), or,
    with a tokenizer, ``n`` of its one-token words, each after a space (one token each, so texts
    concatenate to the sum of their counts). Starts with a space."""
    if tokenizer is None:
        return _pieces(rng, n)
    return "".join(" " + w for w in _draw_words(rng, single_token_words(tokenizer), n))


def _pieces(rng: np.random.Generator, n: int) -> str:
    """``n`` pieces of a space and 3 random lowercase letters (4 characters each)."""
    buf = np.full((n, CHARS_PER_TOKEN), ord(" "), dtype=np.uint8)
    buf[:, 1:] = rng.integers(ord("a"), ord("z") + 1, size=(n, CHARS_PER_TOKEN - 1), dtype=np.uint8)
    return buf.tobytes().decode("ascii")


def _prefix_texts(rng: np.random.Generator, count: int) -> list[str]:
    text = _pieces(rng, count * PREFIX_PIECES)
    w = PREFIX_PIECES * CHARS_PER_TOKEN
    return [text[i * w : (i + 1) * w] for i in range(count)]


def _synthetic_texts(
    tokens: NDArray[np.int64], prefixes: list[str] | None, seed: int, shared: str = ""
) -> list[str]:
    """Estimated-length texts: ``shared`` (the shared prefix, whole pieces), then the unique prefix, then
    the body, ``n`` pieces in all."""
    n_shared = len(shared) // CHARS_PER_TOKEN
    longest = int(tokens.max(initial=0))
    # The body depends on the seed only (not the stream), so requests share it; uniqueness is the prefix's.
    body = _pieces(np.random.default_rng([seed, _BODY]), longest)
    out = []
    for i, n in enumerate(tokens.tolist()):
        rest = n - n_shared  # >= 0: the scenario checks input_tokens >= shared_prefix_tokens
        if prefixes is None:
            out.append(shared + body[: rest * CHARS_PER_TOKEN])
        else:
            p = min(rest, PREFIX_PIECES) * CHARS_PER_TOKEN
            out.append(shared + prefixes[i][:p] + body[p : rest * CHARS_PER_TOKEN])
    return out


def _cycle_order(n_lines: int, count: int, rng: np.random.Generator) -> list[int]:
    """Line index of each request: consecutive seeded permutations of the lines, so every line is used
    once per pass."""
    order: list[int] = []
    while len(order) < count:
        order.extend(rng.permutation(n_lines).tolist())
    return order[:count]


@dataclass(frozen=True, slots=True)
class _Line:
    messages: tuple[tuple[tuple[str, str], ...], ...] | None  # immutable: parsed files are cached
    prompt: str | None
    max_tokens: int | None
    index: int | None = None  # row of the file

    @property
    def message_dicts(self) -> list[dict[str, str]] | None:
        return None if self.messages is None else [dict(m) for m in self.messages]


def _read_prompts_file(path: Path) -> list[_Line]:
    try:
        st = path.stat()
    except FileNotFoundError:
        raise PromptsFileError(str(path), None, "", "prompts file not found") from None
    except OSError as e:
        raise PromptsFileError(str(path), None, "", f"cannot read prompts file: {e.strerror or e}") from None
    return list(_parse_prompts_file(str(path), st.st_mtime_ns, st.st_size))


@lru_cache(maxsize=4)
def _parse_prompts_file(file: str, _mtime_ns: int, _size: int) -> tuple[_Line, ...]:
    # Cached per (path, mtime, size): a run builds prompts for every level and worker from the same file.
    try:
        text = Path(file).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise PromptsFileError(file, None, "", f"cannot read prompts file: {e}") from None
    entries: list[_Line] = []
    issues: list[ScenarioIssue] = []
    for lineno, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            entries.append(replace(_parse_line(raw), index=len(entries) + len(issues)))
        except _LineError as e:
            issues.append(ScenarioIssue(file, lineno, e.field, e.message))
    if issues:
        shown = issues[:_MAX_REPORTED]
        if len(issues) > _MAX_REPORTED:
            more = len(issues) - _MAX_REPORTED
            shown.append(ScenarioIssue(file, None, "", f"... and {more} more bad lines"))
        raise PromptsFileError.from_issues(shown)
    if not entries:
        raise PromptsFileError(file, None, "", "the prompts file has no prompts (one JSON object per line)")
    return tuple(entries)


class _LineError(Exception):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def _kind(v: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(v), "a number")


def _parse_line(raw: str) -> _Line:
    try:
        obj = json.loads(raw)
    except json.JSONDecodeError as e:
        raise _LineError("", f"invalid JSON: {e.msg} (column {e.colno})") from None
    if not isinstance(obj, dict):
        raise _LineError("", f"expected a JSON object with 'messages' or 'prompt', got {_kind(obj)}")
    if ("messages" in obj) == ("prompt" in obj):
        raise _LineError("", "expected exactly one of 'messages' or 'prompt'")
    if "max_tokens" in obj and "output_tokens" in obj:
        raise _LineError("", "set 'max_tokens' or 'output_tokens', not both")
    out_key = "max_tokens" if "max_tokens" in obj else "output_tokens"
    out = obj.get(out_key)
    if out is not None and (isinstance(out, bool) or not isinstance(out, int) or out < 1):
        raise _LineError(out_key, f"expected an integer >= 1, got {json.dumps(out)}")

    if "prompt" in obj:
        prompt = obj["prompt"]
        if not isinstance(prompt, str) or not prompt:
            raise _LineError("prompt", f"expected a non-empty string, got {_kind(prompt)}")
        return _Line(None, prompt, out)

    messages = obj["messages"]
    if not isinstance(messages, list) or not messages:
        raise _LineError("messages", f"expected a non-empty list of messages, got {_kind(messages)}")
    parsed = []
    for j, m in enumerate(messages):
        if not isinstance(m, dict):
            msg = f"expected an object with 'role' and 'content', got {_kind(m)}"
            raise _LineError(f"messages[{j}]", msg)
        for key in ("role", "content"):
            if not isinstance(m.get(key), str):
                got = "nothing" if key not in m else _kind(m[key])
                raise _LineError(f"messages[{j}].{key}", f"expected a string, got {got}")
        parsed.append((("role", m["role"]), ("content", m["content"])))
    return _Line(tuple(parsed), None, out)
