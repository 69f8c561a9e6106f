"""Scrape the endpoint's Prometheus metrics while a level runs, without ever disturbing the load.

One :class:`Scraper` per run; ``async with scraper.level(index):`` around each level scrapes every URL at
once when the level starts, every ``interval_s`` while it runs, and once more after it ends, so the
level's counters are bracketed. Each scrape is its own task with its own timeout; the text is parsed with
``prometheus_client``'s parser in a worker thread, so neither a slow /metrics nor a large exposition holds
up the event loop that stamps the requests. Samples are stamped on the run's clock (the records' clock)
when the response arrives and handed to ``sink`` (normally :class:`~tpsbench.results.rundir.SampleWriter`).

A URL that answers 404 or something that is not Prometheus text is dropped for the rest of the run;
timeouts and connection errors are counted and the scraping goes on. Either way the level's ``notes``
say what happened, and the summary shows them.

An https URL is fetched with the run's TLS settings (``tls``: the context ``endpoint.tls`` builds, as the
client's, :mod:`tpsbench.core.tls`), so a private CA, a client certificate or ``verify: false`` apply to
the endpoint's /metrics as to its requests; without one, the system's trust store. Each URL goes through
the run's proxy for it (``proxies``: :mod:`tpsbench.client.proxy`, NO_PROXY as curl reads it; none for
the bundled reference endpoint), never through httpx's own reading of the environment.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tpsbench.client.proxy import ProxySettings
from tpsbench.client.transport.httpx import httpx_proxy
from tpsbench.core.record import default_clock
from tpsbench.core.tls import verify_for
from tpsbench.results.telemetry import Sample


def default_url(base_url: str) -> str:
    """The base URL's origin + ``/metrics``: ``http://h:8000/v1`` -> ``http://h:8000/metrics``.

    >>> default_url("http://127.0.0.1:8000/v1")
    'http://127.0.0.1:8000/metrics'
    """
    u = urlsplit(base_url)
    return f"{u.scheme}://{u.netloc}/metrics"


def parse(text: str, *, t_ns: int, level: int, url: str) -> list[Sample]:
    """Every sample of a Prometheus text exposition (raises ValueError when it is not one)."""
    out = []
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out.append(Sample(t_ns, level, url, s.name, dict(s.labels), float(s.value)))
    return out


@dataclass
class _Target:
    url: str
    dropped: str | None = None  # why the URL is no longer scraped
    ok: int = 0
    failed: Counter[str] = field(default_factory=Counter)


class Scraper:
    """Scrapes ``urls`` during levels and passes each scrape's samples to ``sink``; ``tls``: the run's
    context for https URLs (None: the system default); ``proxies``: the run's (None: direct)."""

    def __init__(
        self,
        urls: Sequence[str],
        sink: Callable[[list[Sample]], None],
        *,
        interval_s: float = 1.0,
        timeout_s: float = 2.0,
        clock: Callable[[], int] = default_clock,
        transport: httpx.AsyncBaseTransport | None = None,
        tls: ssl.SSLContext | None = None,
        proxies: ProxySettings | None = None,
    ) -> None:
        self._targets = [_Target(u) for u in urls]
        self._sink = sink
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self._clock = clock
        verify = tls if tls is not None else verify_for(urls)  # endpoint.tls, as the client's connections
        proxies = proxies if proxies is not None else ProxySettings()
        self._http = {  # one client per URL: each has its own proxy (or none)
            u: httpx.AsyncClient(
                timeout=timeout_s,
                transport=transport,
                verify=verify,
                trust_env=False,
                proxy=httpx_proxy(proxies.for_url(u)),
            )
            for u in dict.fromkeys(urls)
        }
        self._task: asyncio.Task[None] | None = None
        self._level = 0
        self._before: dict[str, tuple[int, Counter[str]]] = {}

    async def aclose(self) -> None:
        await self._cancel()
        for http in self._http.values():
            await http.aclose()

    async def _scrape_one(self, target: _Target, level: int) -> None:
        try:
            resp = await asyncio.wait_for(self._http[target.url].get(target.url), self.timeout_s)
            t_ns = self._clock()
        except TimeoutError:
            target.failed[f"timeout after {self.timeout_s:g} s"] += 1
            return
        except httpx.HTTPError as e:
            target.failed[type(e).__name__] += 1
            return
        if resp.status_code != 200:
            if resp.status_code == 404:
                target.dropped = "404 Not Found (no Prometheus metrics there)"
            else:
                target.failed[f"HTTP {resp.status_code}"] += 1
            return
        try:
            samples = await asyncio.to_thread(parse, resp.text, t_ns=t_ns, level=level, url=target.url)
        except ValueError as e:
            target.dropped = f"not Prometheus text ({str(e)[:80]})"
            return
        if not samples:
            target.dropped = "an empty exposition"
            return
        target.ok += 1
        self._sink(samples)

    async def scrape(self, level: int) -> None:
        """Scrape every live URL once, concurrently."""
        live = [t for t in self._targets if t.dropped is None]
        await asyncio.gather(*(self._scrape_one(t, level) for t in live))

    async def _loop(self, level: int) -> None:
        loop = asyncio.get_running_loop()
        due = loop.time() + self.interval_s
        while True:  # a fixed schedule; a scrape slower than the interval delays the next, never stacks
            await asyncio.sleep(max(0.0, due - loop.time()))
            await self.scrape(level)
            due = max(due + self.interval_s, loop.time())

    async def start(self, level: int) -> None:
        """Scrape once (before the level's first request, so its counters are bracketed; at most
        ``timeout_s``), then every ``interval_s`` in a task of its own until :meth:`stop`."""
        if self._task is not None:
            raise RuntimeError("telemetry is already scraping a level; stop() it first")
        self._level = level
        self._before = {t.url: (t.ok, Counter(t.failed)) for t in self._targets}
        await self.scrape(level)
        self._task = asyncio.create_task(self._loop(level), name=f"telemetry-level-{level}")

    async def stop(self) -> list[str]:
        """Stop the level's scraping, scrape once more (bracketing the level's counters) and return the
        level's notes: URLs not scraped and why, failed scrapes by kind."""
        if self._task is None:
            return []
        await self._cancel()
        await self.scrape(self._level)
        return self._notes(self._before)

    async def _cancel(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    @contextlib.asynccontextmanager
    async def level(self, index: int) -> AsyncIterator[list[str]]:
        """``async with scraper.level(i) as notes:``: :meth:`start` and :meth:`stop` around the body; the
        yielded list gets the level's notes on exit."""
        notes: list[str] = []
        await self.start(index)
        try:
            yield notes
        finally:
            notes += await self.stop()

    def _notes(self, before: dict[str, tuple[int, Counter[str]]]) -> list[str]:
        out = []
        for t in self._targets:
            ok0, failed0 = before[t.url]
            failed = t.failed - failed0
            if t.dropped is not None and t.ok == 0:
                out.append(f"{t.url}: not scraped: {t.dropped}")
            elif t.dropped is not None:
                out.append(f"{t.url}: scraping stopped: {t.dropped}")
            if n := sum(failed.values()):
                kinds = ", ".join(f"{k}: {v}" for k, v in failed.items())
                out.append(f"{t.url}: {n} of {t.ok - ok0 + n} scrapes failed ({kinds})")
        return out
