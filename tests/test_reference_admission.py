"""The reference endpoint's admission: bounded parsing per loop turn, bounded reads per turn, and each
request's arrival stamp (the read that brought its last byte). Exact: counts, orders and stamps, no timing."""

from __future__ import annotations

import asyncio
import json
import socket
from typing import Any

import pytest

from tpsbench.reference.admission import Admission, BoundedEpollSelector, new_event_loop
from tpsbench.reference.api import MODEL_NAME
from tpsbench.reference.engine import Chunk, Engine, Generation
from tpsbench.reference.model import ReferenceModel
from tpsbench.reference.server import ReferenceServer, _HttpConnection, start_server


# --- the queue ------------------------------------------------------------------------------------------
class _Conn:
    def __init__(self, name: int, log: list[int], again: list[_Conn] | None = None) -> None:
        self.queued = False
        self.name, self.log, self.again = name, log, again

    def parse_next(self) -> None:
        self.log.append(self.name)


def test_admission_parses_per_turn_in_fifo_order_and_queues_a_connection_once() -> None:
    async def main() -> None:
        log: list[int] = []
        adm = Admission(asyncio.get_running_loop(), per_turn=3)
        conns = [_Conn(i, log) for i in range(8)]
        for c in conns:
            adm.add(c)
        adm.add(conns[0])  # already queued: not twice
        assert len(adm) == 8 and all(c.queued for c in conns)
        await asyncio.sleep(0)  # one loop turn: the first slice
        assert log == [0, 1, 2] and len(adm) == 5 and not conns[0].queued and conns[3].queued
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert log == list(range(8)) and len(adm) == 0 and adm.turns == 3
        await asyncio.sleep(0)
        assert adm.turns == 3  # nothing queued: no more turns scheduled

    asyncio.run(main())


def test_a_connection_queued_again_while_parsed_goes_to_the_end() -> None:
    async def main() -> None:
        log: list[int] = []
        adm = Admission(asyncio.get_running_loop(), per_turn=2)

        class Again(_Conn):
            def parse_next(self) -> None:
                super().parse_next()
                if self.log.count(self.name) < 2:
                    adm.add(self)  # answered at once, more bytes in its buffer

        for c in (Again(0, log), _Conn(1, log), _Conn(2, log)):
            adm.add(c)
        for _ in range(3):
            await asyncio.sleep(0)
        assert log == [0, 1, 2, 0]

    asyncio.run(main())


def test_per_turn_must_be_positive() -> None:
    async def main() -> None:
        with pytest.raises(ValueError, match="per_turn"):
            Admission(asyncio.get_running_loop(), per_turn=0)

    asyncio.run(main())


# --- the server: a burst is parsed per_turn at a time -----------------------------------------------------
def _request(i: int, max_tokens: int = 3) -> bytes:
    body = json.dumps(
        {
            "model": MODEL_NAME,
            "messages": [{"role": "user", "content": "x" * 4000}],
            "stream": True,
            "max_tokens": max_tokens,
            "ignore_eos": True,
        }
    ).encode()
    head = b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nX-Request-Id: %d\r\nContent-Length: %d\r\n\r\n"
    return head % (i, len(body)) + body


def test_a_burst_of_requests_is_admitted_at_most_per_turn_each_loop_turn_and_all_answered() -> None:
    n = 40

    async def main() -> None:
        handle = await start_server()
        server = handle.server
        engine = server.engine
        turns: list[int] = []
        submit = engine.submit

        def counting_submit(*args: Any, **kwargs: Any) -> Generation:
            turns.append(server.admission.turns)
            return submit(*args, **kwargs)

        engine.submit = counting_submit  # type: ignore[method-assign]
        try:
            streams = [await asyncio.open_connection(handle.host, handle.port) for _ in range(n)]
            for i, (_, writer) in enumerate(streams):
                writer.write(_request(i))  # all in one turn of this loop
            bodies = [await asyncio.wait_for(reader.readuntil(b"0\r\n\r\n"), 30) for reader, _ in streams]
            for _, writer in streams:
                writer.close()
        finally:
            await handle.stop()
        assert len(turns) == n and all(b.count(b" tok") == 3 for b in bodies)
        per_turn = [turns.count(t) for t in sorted(set(turns))]
        assert max(per_turn) <= server.admission.per_turn
        assert sum(per_turn) == n and len(per_turn) >= n // server.admission.per_turn

    asyncio.run(main())


# --- arrival stamps -------------------------------------------------------------------------------------
class _Clock:
    """A loop whose time() is set by the test (everything else from the real one)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop, self.now = loop, 0.0

    def time(self) -> float:
        return self.now

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loop, name)


class _Transport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.out: list[bytes] = []

    def write(self, data: Any) -> None:
        self.out.append(bytes(data))

    def is_closing(self) -> bool:
        return False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default


def test_a_request_arrives_with_the_read_of_its_last_byte_and_ttft_counts_from_there() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        engine = Engine(ReferenceModel(), seed=0)  # not started: submit only queues
        server = ReferenceServer(engine, per_turn=100)
        clock = _Clock(loop)
        conn = _HttpConnection(server, clock)  # type: ignore[arg-type]
        conn.connection_made(_Transport())
        arrivals: list[float] = []
        submit = engine.submit

        def recording_submit(*args: Any, **kwargs: Any) -> Generation:
            arrivals.append(kwargs["arrival"])
            return submit(*args, **kwargs)

        engine.submit = recording_submit  # type: ignore[method-assign]
        a, b, c = _request(0), _request(1), _request(2)
        reads = [(1.0, a[:30]), (2.0, a[30:-10]), (3.0, a[-10:] + b + c[:50]), (4.0, c[50:])]
        for t, data in reads:
            clock.now = t
            conn.data_received(data)
        clock.now = 9.0  # parsing later does not move the stamps
        for _ in range(3):  # one request at a time: the next after the one before it ended
            server.admission.run()
            gen = conn._gen
            assert gen is not None and gen.sink is not None
            gen.sink(Chunk(3, "length", 9.5))  # its whole answer, from a step planned to end at 9.5
            clock.now += 0.5
        assert arrivals == [3.0, 3.0, 4.0]
        assert [g.arrival for g in (engine._waiting.values())] == [3.0, 3.0, 4.0]
        # arrival of the last byte to the first token written: the wait for a turn (and, pipelined, for the
        # request before) counts
        assert server.ttft._recent == pytest.approx([9.0 - 3.0, 9.5 - 3.0, 10.0 - 4.0])
        assert server.delivery.last == pytest.approx(10.0 - 9.5)
        assert not conn._stamps  # every stamp was used

    asyncio.run(main())


def test_engine_submit_keeps_the_given_arrival_but_starts_an_idle_timeline_at_the_submit() -> None:
    async def main() -> None:
        model = ReferenceModel()
        engine = Engine(model, seed=0)
        await engine.start()
        loop = asyncio.get_running_loop()
        chunks: list[Chunk] = []
        submitted = loop.time()
        gen = engine.submit(100, 1, ignore_eos=True, arrival=submitted - 5.0, sink=chunks.append)
        while not chunks:
            await asyncio.sleep(0.001)
        await engine.stop()
        assert gen.arrival == submitted - 5.0 and gen.sink is not None
        assert "queue" not in vars(gen)  # a sink: no queue made
        assert chunks[0].time - submitted == pytest.approx(model.prefill_time(100), abs=1e-3)

    asyncio.run(main())


# --- reads per turn ---------------------------------------------------------------------------------------
def test_the_bounded_selector_reports_at_most_max_events_and_rotates_through_all_ready() -> None:
    selector = BoundedEpollSelector(max_events=3)
    pairs = [socket.socketpair() for _ in range(10)]
    try:
        for i, (a, b) in enumerate(pairs):
            selector.register(a, 1, i)  # EVENT_READ
            b.send(b"x")  # every one ready, and left unread: level-triggered, reported again
        seen: set[int] = set()
        for _ in range(4):
            ready = selector.select(0)
            assert len(ready) == 3
            seen |= {key.data for key, _ in ready}
        assert seen == set(range(10))
    finally:
        selector.close()
        for a, b in pairs:
            a.close()
            b.close()
    with pytest.raises(ValueError, match="max_events"):
        BoundedEpollSelector(max_events=0)


def test_the_serving_loop_uses_the_bounded_selector() -> None:
    loop = new_event_loop(max_events=5)
    try:
        selector = getattr(loop, "_selector", None)
        assert isinstance(selector, BoundedEpollSelector)
        assert loop.run_until_complete(asyncio.sleep(0, result=7)) == 7
    finally:
        loop.close()


def test_metrics_count_requests_still_in_the_admission_queue_as_waiting() -> None:
    async def main() -> bytes:
        engine = Engine(ReferenceModel(), seed=0)  # not started: submits stay queued for a slot
        server = ReferenceServer(engine, per_turn=1)
        loop = asyncio.get_running_loop()
        conns = [_HttpConnection(server, loop) for _ in range(4)]
        transports = [_Transport() for _ in conns]
        for conn, transport in zip(conns, transports, strict=True):
            conn.connection_made(transport)
        conns[0].data_received(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        for i, conn in enumerate(conns[1:]):
            conn.data_received(_request(i))
        server.admission.run()  # one request per turn: /metrics, the three others still queued
        for _ in range(3):
            server.admission.run()
        assert engine.queued == 3 and len(server.admission) == 0
        conns[0].data_received(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        server.admission.run()
        return b"".join(transports[0].out)

    text = asyncio.run(main()).decode()
    waiting = [line for line in text.splitlines() if line.startswith("vllm:num_requests_waiting{")]
    assert [line.rsplit(" ", 1)[1] for line in waiting] == ["3.0", "3.0"]  # pending, then in the engine
