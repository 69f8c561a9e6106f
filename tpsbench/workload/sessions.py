"""Multi-turn sessions: conversations whose every turn sends the whole history so far.

    >>> from tpsbench.config.scenario import Workload
    >>> w = Workload.model_validate({"input_tokens": 4, "output_tokens": 8, "sessions": {"turns": 2}})
    >>> s = build_sessions(w, "chat", 1)[0]
    >>> (s.turns, s.max_tokens)
    (2, (8, 8))
    >>> [m["role"] for m in s.prompt(1, ["the first answer"]).messages]
    ['user', 'assistant', 'user']

A :class:`SessionSpec` holds what is known before the run: each turn's user message, the number of
tokens to ask for, and the think time before it. The assistant turns are only known once the server has
answered: :meth:`SessionSpec.prompt` builds turn ``k``'s request from the texts the server actually
returned for turns ``0..k-1`` (the runner keeps them), so a server's prefix cache sees exactly the
conversation a real client would send.

- From ``workload.dataset`` (:mod:`.datasets`): each conversation's user turns (at most
  ``sessions.max_turns``), its system message first; each turn asks for as many tokens as the dataset's
  answer to it has (``dataset.output_tokens: answer``), else draws from ``workload.output_tokens``.
  Conversations are used in seeded passes, like a prompts file's lines.
- Synthetic: ``sessions.turns`` turns (drawn per session), each user message of ``workload.input_tokens``
  tokens (drawn per turn; random text, exact for the estimate or the tokenizer), each answer of
  ``workload.output_tokens``.

The first user message of every session starts with the workload's shared prefix (if any) and, with
``unique_prompts``, a prefix unique to the session: sessions never share a cache entry with each other,
while each session's later turns extend its own earlier ones.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from tpsbench.config.scenario import Api, ThinkTime, Workload
from tpsbench.core.estimate import estimate_tokens
from tpsbench.workload.datasets import select_conversations
from tpsbench.workload.prompts import PromptSpec, draw_token_counts, random_text
from tpsbench.workload.tokenizer import Tokenizer

__all__ = ["SessionSpec", "build_sessions", "draw_think_s"]

# Seed purposes (prompts.py uses 1-6, datasets.py 7, traces.py 8-9).
_TURNS, _USER, _ANSWER, _THINK, _LEAD, _ORDER, _SHARED = 10, 11, 12, 13, 14, 15, 6


@dataclass(frozen=True)
class SessionSpec:
    """One conversation to play: ``users[k]`` is turn k's user message, ``max_tokens[k]`` the output
    length to ask for, ``think_s[k]`` the seconds to wait after turn k-1's answer (``think_s[0]`` is 0).
    ``prompt_index`` is the dataset row (None: synthetic)."""

    api: Api
    system: str | None
    users: tuple[str, ...]
    max_tokens: tuple[int, ...]
    think_s: tuple[float, ...]
    prompt_index: int | None = None
    measure: Callable[[str], int] = estimate_tokens

    @property
    def turns(self) -> int:
        return len(self.users)

    def prompt(self, k: int, answers: Sequence[str]) -> PromptSpec:
        """Turn ``k``'s request: the system message, then user and assistant messages of turns ``0..k-1``
        (``answers`` = what the server returned), then turn k's user message. For the completions API the
        contents are joined with blank lines. ``input_tokens`` counts every content with ``measure``."""
        if len(answers) < k:
            raise ValueError(f"turn {k} needs the {k} earlier answers, got {len(answers)}")
        messages = [{"role": "system", "content": self.system}] if self.system else []
        for j in range(k):
            messages.append({"role": "user", "content": self.users[j]})
            messages.append({"role": "assistant", "content": answers[j]})
        messages.append({"role": "user", "content": self.users[k]})
        n = sum(self.measure(m["content"]) for m in messages)
        out, index = self.max_tokens[k], self.prompt_index
        if self.api == "completions":
            return PromptSpec(None, "\n\n".join(m["content"] for m in messages), n, out, index)
        return PromptSpec(messages, None, n, out, index)


def draw_think_s(spec: float | ThinkTime, n: int, rng: np.random.Generator) -> list[float]:
    """``n`` think times in seconds: the number itself, or draws of the :class:`ThinkTime`
    distribution clipped to ``[min, max]``."""
    if not isinstance(spec, ThinkTime):
        return [float(spec)] * n
    if spec.distribution == "exponential":
        x = rng.exponential(spec.mean, size=n) if spec.mean > 0 else np.zeros(n)
    else:
        x = rng.normal(spec.mean, spec.std, size=n)
    hi = np.inf if spec.max is None else spec.max
    return [float(v) for v in np.clip(x, spec.min, hi)]


def build_sessions(
    workload: Workload,
    api: Api,
    count: int,
    *,
    stream_id: int = 0,
    nonce: int = 0,
    tokenizer: Tokenizer | None = None,
) -> list[SessionSpec]:
    """``count`` sessions (module docstring), seeded by ``(workload.seed, stream_id)``; session ``i`` does
    not depend on ``count``. ``nonce`` (per run) changes only the per-session unique prefixes."""
    sessions = workload.sessions
    if sessions is None:
        raise ValueError("the workload has no 'sessions' block")

    def rng(purpose: int, *extra: int) -> np.random.Generator:
        return np.random.default_rng([workload.seed, stream_id, purpose, *extra])

    measure = tokenizer.count if tokenizer is not None else estimate_tokens
    shared = ""
    if workload.shared_prefix_tokens:
        shared_rng = np.random.default_rng([workload.seed, _SHARED])
        shared = random_text(shared_rng, workload.shared_prefix_tokens, tokenizer).lstrip(" ") + "\n"

    def lead(i: int) -> str:
        if not workload.unique_prompts:
            return shared
        return shared + random_text(rng(_LEAD, nonce, i), 4, tokenizer).lstrip(" ") + "\n"

    out: list[SessionSpec] = []
    if workload.dataset is not None:
        ds = workload.dataset
        convs = select_conversations(ds, measure, workload.seed)
        order: list[int] = []
        while len(order) < count:
            order.extend(rng(_ORDER, len(order)).permutation(len(convs)).tolist())
        for i, c_idx in enumerate(order[:count]):
            c = convs[c_idx]
            turns = c.turns[: sessions.max_turns] if sessions.max_turns is not None else c.turns
            drawn = draw_token_counts(workload.output_tokens, len(turns), rng(_ANSWER, i)).tolist()
            from_answer = ds.output_tokens == "answer"
            max_tokens = tuple(
                max(1, measure(t.answer)) if from_answer and t.answer and t.answer.strip() else int(m)
                for t, m in zip(turns, drawn, strict=True)
            )
            users = (lead(i) + turns[0].user, *(t.user for t in turns[1:]))
            think = _think(sessions.think_s, len(turns), rng(_THINK, i))
            out.append(SessionSpec(api, c.system, users, max_tokens, think, c.index, measure))
        return out

    n_turns = np.maximum(draw_token_counts(sessions.turns, count, rng(_TURNS)), 1).tolist()
    for i, n in enumerate(n_turns):
        lengths = draw_token_counts(workload.input_tokens, n, rng(_USER, i)).tolist()
        body_rng = rng(_USER, i, 1)
        users = tuple(random_text(body_rng, int(m), tokenizer).lstrip(" ") for m in lengths)
        users = (lead(i) + users[0], *users[1:])
        outs = draw_token_counts(workload.output_tokens, n, rng(_ANSWER, i)).tolist()
        think = _think(sessions.think_s, n, rng(_THINK, i))
        out.append(SessionSpec(api, None, users, tuple(int(m) for m in outs), think, None, measure))
    return out


def _think(spec: float | ThinkTime, turns: int, rng: np.random.Generator) -> tuple[float, ...]:
    return (0.0, *draw_think_s(spec, turns - 1, rng)) if turns > 0 else ()
