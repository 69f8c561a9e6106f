"""The one way to build what drives a run's levels in a process: tokenizer, transport, :class:`Client` and
each level's prompts. The single-process path (:mod:`.benchmark`) and every worker (:mod:`.worker`) use
:class:`LevelSession`, so both send exactly the same requests.

A *deferred* tokenizer (``endpoint.tokenizer: server``) is too slow to count while the load runs: the
session then asks the client to keep each estimated request's text (in its
:class:`~tpsbench.core.record.Reply`), and the caller counts it after the level. Worker processes cannot
defer (the driver refuses the combination).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tpsbench.client.client import Client
from tpsbench.client.network import network_for
from tpsbench.client.transport import make_transport
from tpsbench.config.scenario import Level, Scenario
from tpsbench.core.record import Reply
from tpsbench.workload.levelwork import LevelWork, level_work
from tpsbench.workload.tokenizer import Tokenizer, load_tokenizer

__all__ = ["LevelSession", "RunContext"]


@dataclass(frozen=True)
class RunContext:
    """What every level of one run shares, resolved once by the driver. Picklable: each worker gets a copy
    (the API key travels in memory only, never to disk)."""

    scenario: Scenario
    base_url: str
    model: str
    api_key: str | None
    nonce: int  # per run, in every prompt: the same scenario run twice must not hit a prompt cache
    unix_socket: str | None = None  # every connection to the endpoint goes through it (endpoint.py)


class LevelSession:
    """One process's tokenizer, transport and client for a run; :meth:`prompts` per level, :meth:`send`
    per request (the runner's ``send``). Close it with :meth:`aclose`."""

    def __init__(self, ctx: RunContext, tokenizer: Tokenizer | None) -> None:
        self.ctx = ctx
        self.tokenizer = tokenizer
        self.deferred = tokenizer is not None and tokenizer.deferred
        ep = ctx.scenario.endpoint
        self.network = network_for(ep, ctx.unix_socket)  # proxy, endpoint.tls, socket: in every process
        self.client = Client(
            ep,
            ctx.base_url,
            ctx.model,
            make_transport(
                ep.transport,
                proxies=self.network.proxies,
                tls=self.network.tls,
                unix_socket=self.network.unix_socket,
            ),
            api_key=ctx.api_key,
            count_tokens=tokenizer.count if tokenizer is not None and not self.deferred else None,
            # a deferred count needs the text after the level; a multi-turn session, for its next turn
            keep_text=self.deferred or ctx.scenario.workload.sessions is not None,
        )

    @classmethod
    def open(cls, ctx: RunContext) -> LevelSession:
        """A session with the tokenizer the scenario names (raises ``TokenizerError`` if it cannot load)."""
        ep = ctx.scenario.endpoint
        return cls(
            ctx,
            load_tokenizer(
                ep.tokenizer,
                base_url=ctx.base_url,
                model=ctx.model,
                api_key=ctx.api_key,
                unix_socket=ctx.unix_socket,
            ),
        )

    def work(self, level_index: int, level: Level, count: int) -> LevelWork:
        """The seeded prompts of one level, and a trace level's schedule (the same in every process:
        seeded by the level's index); see :func:`tpsbench.workload.levelwork.level_work`."""
        s = self.ctx.scenario
        return level_work(
            s.workload,
            level,
            s.endpoint.api,
            count,
            stream_id=level_index,
            nonce=self.ctx.nonce,
            tokenizer=self.tokenizer,
        )

    async def send(self, prompt: Any, **kw: Any) -> Reply:
        return await self.client.send(prompt, workload=self.ctx.scenario.workload, **kw)

    async def aclose(self) -> None:
        await self.client.transport.aclose()
