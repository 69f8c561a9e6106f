"""Seeded prompts: exact synthetic token counts, reproducibility, distributions, JSONL files."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tpsbench.config.scenario import Distribution, ScenarioError, Workload
from tpsbench.core.estimate import estimate_tokens
from tpsbench.workload.prompts import (
    PromptsFileError,
    PromptSpec,
    build_prompts,
    draw_token_counts,
)

PIECES = re.compile(r"^( [a-z]{3})*$")


def text_of(spec: PromptSpec) -> str:
    if spec.prompt is not None:
        assert spec.messages is None
        return spec.prompt
    assert spec.messages is not None
    return "".join(m["content"] for m in spec.messages)


def test_estimate_tokens_is_ceil_of_chars_over_4() -> None:
    assert [estimate_tokens("x" * n) for n in (0, 1, 3, 4, 5, 8, 9)] == [0, 1, 1, 1, 2, 2, 3]


@settings(max_examples=30, deadline=None)
@given(
    n=st.integers(1, 300),
    unique=st.booleans(),
    api=st.sampled_from(["chat", "completions"]),
    seed=st.integers(0, 2**32),
)
def test_synthetic_prompts_have_exactly_the_requested_tokens(
    n: int, unique: bool, api: str, seed: int
) -> None:
    w = Workload(input_tokens=n, output_tokens=7, seed=seed, unique_prompts=unique)
    for spec in build_prompts(w, api, 3):  # type: ignore[arg-type]
        text = text_of(spec)
        assert PIECES.match(text)
        assert len(text) == 4 * n
        assert estimate_tokens(text) == spec.input_tokens == n
        assert spec.max_tokens == 7


def test_api_shapes() -> None:
    w = Workload(input_tokens=5)
    chat = build_prompts(w, "chat", 1)[0]
    assert chat.prompt is None and chat.messages is not None
    assert [m["role"] for m in chat.messages] == ["user"]
    completion = build_prompts(w, "completions", 1)[0]
    assert completion.messages is None and completion.prompt is not None
    # Same seed and stream: the same text whichever API carries it.
    assert chat.messages[0]["content"] == completion.prompt


def test_unique_prefixes_differ_and_share_the_body() -> None:
    specs = build_prompts(Workload(input_tokens=50), "completions", 200)
    prompts = [s.prompt or "" for s in specs]
    assert len({p[:16] for p in prompts}) == 200  # the first 4 pieces differ per request
    assert len({p[16:] for p in prompts}) == 1  # the rest is one shared body


def test_non_unique_prompts_are_prefixes_of_one_text() -> None:
    w = Workload(input_tokens=Distribution(mean=40, std=15, min=5), unique_prompts=False)
    prompts = [s.prompt or "" for s in build_prompts(w, "completions", 50)]
    longest = max(prompts, key=len)
    assert all(longest.startswith(p) for p in prompts)
    # Across streams too: only the lengths differ.
    other = build_prompts(w, "completions", 50, stream_id=3)
    assert all(longest.startswith(s.prompt or "") or (s.prompt or "").startswith(longest) for s in other)


def test_deterministic_per_seed_and_stream() -> None:
    w = Workload(input_tokens=Distribution(mean=30, std=10), output_tokens=Distribution(mean=20, std=8))
    a = build_prompts(w, "chat", 40, stream_id=2)
    assert a == build_prompts(w, "chat", 40, stream_id=2)
    assert a[:10] == build_prompts(w, "chat", 10, stream_id=2)  # request i does not depend on count
    assert a != build_prompts(w, "chat", 40, stream_id=3)
    assert a != build_prompts(w.model_copy(update={"seed": 1}), "chat", 40, stream_id=2)
    # The nonce changes only the unique prefixes, never the token counts.
    b = build_prompts(w, "chat", 40, stream_id=2, nonce=99)
    assert [(s.input_tokens, s.max_tokens) for s in a] == [(s.input_tokens, s.max_tokens) for s in b]
    assert all(text_of(x)[:16] != text_of(y)[:16] for x, y in zip(a, b, strict=True))


def test_output_distribution_does_not_move_input_lengths() -> None:
    w1 = Workload(input_tokens=Distribution(mean=30, std=10), output_tokens=10)
    w2 = w1.model_copy(update={"output_tokens": Distribution(mean=50, std=20)})
    a, b = build_prompts(w1, "chat", 30), build_prompts(w2, "chat", 30)
    assert [s.input_tokens for s in a] == [s.input_tokens for s in b]


def test_distribution_is_rounded_and_clipped() -> None:
    d = Distribution(mean=100, std=50, min=80, max=120)
    x = draw_token_counts(d, 20_000, np.random.default_rng(0))
    assert x.dtype == np.int64
    assert x.min() == 80 and x.max() == 120
    assert (x == 80).mean() == pytest.approx(0.345, abs=0.02)  # P(N(100, 50) < 79.5)
    free = draw_token_counts(Distribution(mean=100, std=10), 20_000, np.random.default_rng(0))
    assert free.mean() == pytest.approx(100, abs=0.5) and free.std() == pytest.approx(10, abs=0.5)
    assert draw_token_counts(Distribution(mean=3, std=50), 1000, np.random.default_rng(0)).min() == 1
    assert draw_token_counts(Distribution(mean=7.4), 3, np.random.default_rng(0)).tolist() == [7, 7, 7]
    assert draw_token_counts(12, 3, np.random.default_rng(0)).tolist() == [12, 12, 12]


def write_jsonl(path: Path, rows: list[object]) -> Path:
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")
    return path


def test_jsonl_prompts(tmp_path: Path) -> None:
    f = write_jsonl(
        tmp_path / "p.jsonl",
        [
            {"prompt": "abcdefgh", "id": 1},
            "",
            {
                "messages": [{"role": "system", "content": "be short"}, {"role": "user", "content": "hi"}],
                "max_tokens": 7,
            },
            {"prompt": "x" * 9, "output_tokens": 3},
        ],
    )
    w = Workload(prompts_file=f, output_tokens=11, unique_prompts=False)
    specs = build_prompts(w, "completions", 9)
    by_text = {s.prompt: s for s in specs}
    assert set(by_text) == {"abcdefgh", "be short\n\nhi", "x" * 9}
    assert [specs[i : i + 3] for i in (0, 3, 6)] and all(
        {s.prompt for s in specs[i : i + 3]} == set(by_text) for i in (0, 3, 6)
    )  # each pass uses every line once
    assert (by_text["abcdefgh"].input_tokens, by_text["abcdefgh"].max_tokens) == (2, 11)
    assert (by_text["x" * 9].input_tokens, by_text["x" * 9].max_tokens) == (3, 3)
    assert by_text["be short\n\nhi"].max_tokens == 7

    chat = build_prompts(w, "chat", 3)
    shapes = sorted([m["role"] for m in s.messages or []] for s in chat)
    assert shapes == [["system", "user"], ["user"], ["user"]]
    assert {s.input_tokens for s in chat if s.messages and len(s.messages) == 2} == {3}  # ceil(10 / 4)


def test_jsonl_relative_to_base_dir_and_unique_prefix(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "p.jsonl", [{"messages": [{"role": "user", "content": "hello"}]}])
    w = Workload(prompts_file=Path("p.jsonl"), output_tokens=5)
    specs = build_prompts(w, "chat", 3, base_dir=tmp_path)
    contents = [s.messages[0]["content"] for s in specs if s.messages]
    assert all(re.fullmatch(r"[a-z]{3}( [a-z]{3}){3}\nhello", c) for c in contents)
    assert len(set(contents)) == 3
    assert all(s.input_tokens == 4 + 2 for s in specs)  # 16-char prefix + ceil(5 / 4)


def test_jsonl_bad_lines_are_reported_with_line_numbers(tmp_path: Path) -> None:
    f = write_jsonl(
        tmp_path / "bad.jsonl",
        [
            {"prompt": "fine"},
            "not json",
            [1, 2],
            {"prompt": 3},
            {"messages": [{"role": "user"}]},
            {"prompt": "x", "max_tokens": 0},
            {"prompt": "x", "messages": []},
            {"messages": []},
            {"prompt": "x", "max_tokens": 2, "output_tokens": 2},
        ],
    )
    with pytest.raises(PromptsFileError) as info:
        build_prompts(Workload(prompts_file=f), "chat", 1)
    err = info.value
    assert isinstance(err, ScenarioError)
    got = [(i.line, i.field, i.message) for i in err.issues]
    assert got == [
        (2, "", "invalid JSON: Expecting value (column 1)"),
        (3, "", "expected a JSON object with 'messages' or 'prompt', got a list"),
        (4, "prompt", "expected a non-empty string, got a number"),
        (5, "messages[0].content", "expected a string, got nothing"),
        (6, "max_tokens", "expected an integer >= 1, got 0"),
        (7, "", "expected exactly one of 'messages' or 'prompt'"),
        (8, "messages", "expected a non-empty list of messages, got a list"),
        (9, "", "set 'max_tokens' or 'output_tokens', not both"),
    ]
    assert str(err).splitlines()[0] == f"{f}:2: invalid JSON: Expecting value (column 1)"


def test_jsonl_missing_or_empty(tmp_path: Path) -> None:
    with pytest.raises(PromptsFileError, match="prompts file not found"):
        build_prompts(Workload(prompts_file=tmp_path / "none.jsonl"), "chat", 1)
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n")
    with pytest.raises(PromptsFileError, match="no prompts"):
        build_prompts(Workload(prompts_file=empty), "chat", 1)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="count"):
        build_prompts(Workload(), "chat", -1)
    with pytest.raises(ValueError, match="stream_id"):
        build_prompts(Workload(), "chat", 1, stream_id=-1)
    assert build_prompts(Workload(), "chat", 0) == []


# --- exact lengths with a tokenizer, shared prefixes -----------------------------------------------------


class FakeTokenizer:
    """Words split on whitespace; a word with a 'q' or longer than 3 letters is 2 tokens, and a text that
    does not start with a space costs one more token (like a tokenizer's start-of-text piece)."""

    deferred = False

    def __init__(self, name: str = "fake") -> None:
        self.name = name
        self.calls = 0

    def count(self, text: str) -> int:
        self.calls += 1
        words = text.split()
        return sum(2 if "q" in w or len(w) > 3 else 1 for w in words) + (1 if words and text[0] != " " else 0)


def test_synthetic_prompts_have_exact_lengths_for_the_tokenizer() -> None:
    tok = FakeTokenizer()
    w = Workload(input_tokens={"mean": 60, "std": 30, "min": 1, "max": 200}, output_tokens=5, seed=4)
    specs = build_prompts(w, "completions", 40, tokenizer=tok)
    drawn = draw_token_counts(w.input_tokens, 40, np.random.default_rng([4, 0, 1]))
    assert [s.input_tokens for s in specs] == drawn.tolist()
    assert all(tok.count(s.prompt or "") == s.input_tokens for s in specs)
    assert tok.calls < 40 * 3 + 2 * 6000  # vocabulary once, then about two counts per prompt
    assert all("q" not in s.prompt for s in specs if s.prompt)  # only one-token words are used
    chat = build_prompts(w, "chat", 40, tokenizer=tok)
    assert [tok.count(text_of(s)) for s in chat] == drawn.tolist()
    again = build_prompts(w, "completions", 40, tokenizer=FakeTokenizer("fake"))
    assert again == specs  # seeded
    other = build_prompts(w, "completions", 40, tokenizer=tok, nonce=1)
    assert [s.prompt for s in other] != [s.prompt for s in specs]
    assert [s.input_tokens for s in other] == drawn.tolist()


def test_a_tokenizer_without_one_token_words_is_refused() -> None:
    class AllLong(FakeTokenizer):
        def count(self, text: str) -> int:
            return 2 * len(text.split())

    with pytest.raises(ValueError, match="too few to build exact-length prompts"):
        build_prompts(Workload(input_tokens=10), "completions", 1, tokenizer=AllLong("long"))


def test_shared_prefix_with_a_tokenizer() -> None:
    tok = FakeTokenizer("fake-shared")
    w = Workload(input_tokens={"mean": 80, "std": 10, "min": 50}, shared_prefix_tokens=40, seed=2)
    specs = build_prompts(w, "completions", 10, tokenizer=tok)
    words = [(s.prompt or "").split() for s in specs]
    assert all(ws[:40] == words[0][:40] for ws in words)  # the same 40 one-token words everywhere
    assert tok.count(" " + " ".join(words[0][:40])) == 40
    assert len({tuple(ws[40:46]) for ws in words}) == 10  # then a unique prefix per request
    assert all(tok.count(s.prompt or "") == s.input_tokens for s in specs)
    other_level = build_prompts(w, "completions", 3, tokenizer=tok, stream_id=5)
    assert all((s.prompt or "").split()[:40] == words[0][:40] for s in other_level)


def test_shared_prefix_without_a_tokenizer() -> None:
    w = Workload(input_tokens={"mean": 40, "std": 10, "min": 20}, shared_prefix_tokens=20, seed=1)
    specs = build_prompts(w, "completions", 8)
    texts = [s.prompt or "" for s in specs]
    assert all(t[:80] == texts[0][:80] for t in texts) and PIECES.match(texts[0])
    assert len({t[80:96] for t in texts}) == 8  # unique after the shared 20 pieces
    assert all(estimate_tokens(t) == s.input_tokens for t, s in zip(texts, specs, strict=True))
    # without shared_prefix_tokens the prompts are unchanged from what they always were
    plain = Workload(input_tokens=30, seed=1)
    assert build_prompts(plain, "completions", 2) == build_prompts(plain.model_copy(), "completions", 2)
    with pytest.raises(ValueError, match="input_tokens must be >= 20, got min 10"):
        Workload(input_tokens={"mean": 40, "min": 10}, shared_prefix_tokens=20)
    with pytest.raises(ValueError, match="input_tokens must be >= 64, got 8"):
        Workload(input_tokens=8, shared_prefix_tokens=64)


def test_shared_prefix_goes_in_front_of_file_prompts(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    path.write_text('{"messages": [{"role": "user", "content": "hi"}]}\n{"prompt": "there"}\n')
    w = Workload(prompts_file=path, shared_prefix_tokens=6, unique_prompts=False)
    specs = build_prompts(w, "chat", 4)
    firsts = [s.messages[0]["content"] for s in specs if s.messages]
    shared = firsts[0].split("\n")[0] + "\n"
    assert estimate_tokens(shared.rstrip("\n")) == 6 and all(f.startswith(shared) for f in firsts)
    tok = FakeTokenizer("fake-file")
    counted = build_prompts(w, "completions", 2, tokenizer=tok)
    assert all(s.input_tokens == tok.count(s.prompt or "") for s in counted)
