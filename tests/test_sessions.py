"""Multi-turn sessions: the specs (workload/sessions.py) and how the runner plays them (history carries the
server's real answers, think time between turns, closed loop counts sessions in flight, open loop starts
sessions on the schedule, records carry session id and turn)."""

from __future__ import annotations

import asyncio
import itertools
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tpsbench.config.scenario import Level, ThinkTime, Workload
from tpsbench.core.estimate import estimate_tokens
from tpsbench.core.record import ErrorKind, Reply, RequestRecord
from tpsbench.load.runner import run_level
from tpsbench.results.summary import summarize_level
from tpsbench.workload.sessions import build_sessions, draw_think_s

DATA = Path(__file__).parent / "data" / "workloads"


def _workload(**kw: Any) -> Workload:
    return Workload.model_validate(kw)


def test_synthetic_sessions_are_seeded_and_sized() -> None:
    w = _workload(input_tokens=10, output_tokens=5, sessions={"turns": {"mean": 3, "std": 1, "min": 1}})
    a = build_sessions(w, "chat", 6)
    assert a == build_sessions(w, "chat", 6) and a[:3] == build_sessions(w, "chat", 3)
    assert len({s.turns for s in a}) > 1  # drawn per session
    s = a[0]
    assert all(m == 5 for m in s.max_tokens)
    assert [estimate_tokens(u) for u in s.users] == [14] + [10] * (s.turns - 1)  # + a 4-token unique lead
    other = build_sessions(w, "chat", 2)[1]
    assert s.users[0][:16] != other.users[0][:16]  # sessions never share a prefix


def test_prompt_carries_the_history_with_the_servers_answers() -> None:
    w = _workload(input_tokens=4, output_tokens=3, sessions={"turns": 3}, unique_prompts=False)
    s = build_sessions(w, "chat", 1)[0]
    p = s.prompt(2, ["first answer", "second answer"])
    assert p.messages is not None
    assert [m["role"] for m in p.messages] == ["user", "assistant", "user", "assistant", "user"]
    assert [m["content"] for m in p.messages][1::2] == ["first answer", "second answer"]
    assert p.input_tokens == sum(estimate_tokens(m["content"]) for m in p.messages)
    c = build_sessions(w, "completions", 1)[0].prompt(1, ["ok"])
    assert c.prompt is not None and c.prompt.split("\n\n")[1] == "ok"
    with pytest.raises(ValueError, match="needs the 2 earlier answers"):
        s.prompt(2, ["only one"])


def test_dataset_sessions_use_the_conversation_turns() -> None:
    w = _workload(
        dataset={"path": DATA / "sharegpt.json", "format": "sharegpt"},
        sessions={"max_turns": 2},
        output_tokens=9,
        unique_prompts=False,
    )
    by_row = {s.prompt_index: s for s in build_sessions(w, "chat", 3)}
    s0 = by_row[0]
    assert s0.system == "You are a terse assistant."
    assert s0.users == ("Name three prime numbers.", "And the next one?")  # capped at max_turns
    assert s0.max_tokens == (
        estimate_tokens("Two, three and five are the first three primes."),
        estimate_tokens("Seven."),
    )
    assert by_row[3].turns == 1


def test_think_time_draws() -> None:
    rng = np.random.default_rng(0)
    assert draw_think_s(0.5, 3, rng) == [0.5, 0.5, 0.5]
    x = draw_think_s(ThinkTime(mean=1.0, std=2.0, min=0.1, max=2.0), 500, rng)
    assert min(x) == 0.1 and max(x) == 2.0
    e = draw_think_s(ThinkTime(mean=0.2, distribution="exponential"), 4000, rng)
    assert np.mean(e) == pytest.approx(0.2, rel=0.1)


class Chat:
    """Answers every turn with ``answer <request id>`` (or fails request ids in ``fail``) after ``delay_s``;
    keeps what each request sent and the sessions in flight."""

    def __init__(self, delay_s: float = 0.005, fail: frozenset[int] = frozenset()) -> None:
        self.delay_s = delay_s
        self.fail = fail
        self.sent: dict[int, Any] = {}
        self.starts: dict[int, int] = {}

    async def __call__(self, prompt: Any, **kw: Any) -> Reply:
        rid = kw["request_id"]
        self.sent[rid] = prompt
        self.starts[rid] = time.perf_counter_ns()
        await asyncio.sleep(self.delay_s)
        now = time.perf_counter_ns()
        rec = RequestRecord(
            request_id=rid,
            level=kw["level"],
            send_ns=self.starts[rid],
            end_ns=now,
            scheduled_ns=kw["scheduled_ns"],
            warmup=kw["warmup"],
            chunk_ns=[now - 1000, now],
            chunk_tokens=[1, 1],
            output_tokens=2,
        )
        if rid in self.fail:
            rec.error = ErrorKind.HTTP_5XX
            return Reply(rec)
        return Reply(rec, f"answer {rid}")


def _play(level: Level, w: Workload, chat: Chat) -> list[RequestRecord]:
    got: list[RequestRecord] = []
    sessions = build_sessions(w, "chat", 64)
    asyncio.run(run_level(chat, level, 0, [], sink=lambda r: got.append(r.record), sessions=sessions))
    return sorted(got, key=lambda r: r.request_id)


def test_closed_loop_plays_sessions_with_real_answers() -> None:
    w = _workload(input_tokens=4, output_tokens=2, sessions={"turns": 3})
    chat = Chat()
    got = _play(Level(concurrency=2, requests=12, warmup=0), w, chat)
    assert len(got) == 12
    by_session: dict[int, list[RequestRecord]] = {}
    for r in got:
        assert r.session_id is not None and r.turn is not None
        by_session.setdefault(r.session_id, []).append(r)
    assert sorted(by_session) == [0, 1, 2, 3]  # 2 users x 2 sessions of 3 turns
    for recs in by_session.values():
        assert [r.turn for r in recs] == [0, 1, 2]
        for prev, r in itertools.pairwise(recs):
            msgs = chat.sent[r.request_id].messages
            assert msgs[-2] == {"role": "assistant", "content": f"answer {prev.request_id}"}
            assert r.send_ns >= prev.end_ns  # a turn starts once the previous answer is in
    # at most 2 sessions (users) in flight: the first turns of sessions 2 and 3 wait for 0 and 1 to end
    firsts = {s: recs[0].send_ns for s, recs in by_session.items()}
    lasts = {s: recs[-1].end_ns for s, recs in by_session.items()}
    assert min(firsts[2], firsts[3]) >= min(lasts[0], lasts[1])


def test_think_time_and_a_failed_turn_ends_the_session() -> None:
    w = _workload(input_tokens=4, output_tokens=2, sessions={"turns": 3, "think_s": 0.05})
    chat = Chat(fail=frozenset({1}))
    got = _play(Level(concurrency=1, requests=4, warmup=0), w, chat)
    assert [(r.session_id, r.turn) for r in got] == [(0, 0), (0, 1), (1, 0), (1, 1)]  # turn (0, 1) failed
    assert got[1].send_ns - got[0].end_ns >= 0.045e9  # thought for 50 ms
    assert got[2].send_ns - got[1].end_ns < 0.04e9  # a new session does not think first


def test_open_loop_starts_sessions_on_the_schedule() -> None:
    w = _workload(input_tokens=4, output_tokens=2, sessions={"turns": 2, "think_s": 0.02})
    got = _play(Level(rate=50, arrival="constant", requests=8, warmup=0), w, Chat())
    assert len(got) == 8
    starts = sorted((r.scheduled_ns or 0) for r in got if r.turn == 0)
    assert np.diff(starts).tolist() == [20_000_000] * (len(starts) - 1)  # 1 / 50 s apart
    later = [r for r in got if r.turn == 1]
    assert later and all(r.scheduled_ns is not None and r.send_ns >= r.scheduled_ns for r in later)


def test_summary_breaks_down_by_turn() -> None:
    w = _workload(input_tokens=4, output_tokens=2, sessions={"turns": 3})
    got = _play(Level(concurrency=2, requests=12, warmup=0), w, Chat())
    point = summarize_level(
        got, level_index=0, level=Level(concurrency=2, requests=12, warmup=0), slo={}, gpus=None
    )
    turns = point["by_turn"]
    assert [t["turn"] for t in turns] == [0, 1, 2] and [t["n"] for t in turns] == [4, 4, 4]
    assert turns[0]["ttft_s"]["n"] == 4 and turns[2]["tps_user"]["p50"] is not None
    plain = summarize_level(
        [RequestRecord(request_id=0, level=0, send_ns=0, end_ns=1)],
        level_index=0,
        level=Level(concurrency=1, requests=1),
        slo={},
        gpus=None,
    )
    assert plain["by_turn"] is None
