"""Telemetry: Prometheus samples and their per-level derivations on exact numbers; the scraper against
scripted /metrics endpoints (one fine, one 404, one slow), which must never hold up the load."""

from __future__ import annotations

import asyncio
import doctest
import time
from pathlib import Path

import httpx
import pytest

from tpsbench.core.record import RequestRecord, TokenSource
from tpsbench.load import telemetry as scraper_mod
from tpsbench.load.telemetry import Scraper, default_url, parse
from tpsbench.results import telemetry
from tpsbench.results.files import TELEMETRY, read_samples
from tpsbench.results.rundir import SampleWriter
from tpsbench.results.telemetry import Sample, counter_increase, gauge_stats, server_block

S = 1_000_000_000
GEN = "vllm:generation_tokens_total"


def smp(t_s: float, name: str, value: float, **labels: str) -> Sample:
    return Sample(int(t_s * S), 0, "http://h/metrics", name, labels, value)


def test_counter_increase_handles_resets_and_labels() -> None:
    s = [
        smp(0, GEN, 100, engine="0"),
        smp(1, GEN, 150, engine="0"),
        smp(2, GEN, 20, engine="0"),  # restarted: 20 new tokens
        smp(3, GEN, 60, engine="0"),
        smp(0, GEN, 0, engine="1"),
        smp(3, GEN, 30, engine="1"),
    ]
    assert counter_increase(s, GEN) == (50 + 20 + 40) + 30
    assert counter_increase(s, "absent") is None
    assert counter_increase([smp(0, GEN, 5)], GEN) is None  # one scrape is no increase


def test_gauges_sum_label_sets_per_scrape() -> None:
    name = "vllm:num_requests_running"
    s = [smp(0, name, 1, e="0"), smp(0, name, 2, e="1"), smp(1, name, 5, e="0"), smp(1, name, 0, e="1")]
    assert gauge_stats(s, ["sglang:num_running_reqs", name]) == {
        "name": name,
        "mean": 4.0,
        "max": 5.0,
        "n": 2,
    }
    assert gauge_stats(s, ["sglang:num_running_reqs"]) is None


def rec(rid: int, send_s: float, chunks: list[tuple[float, int]], *, warmup: bool = False) -> RequestRecord:
    return RequestRecord(
        request_id=rid,
        level=0,
        send_ns=int(send_s * S),
        end_ns=int(chunks[-1][0] * S),
        warmup=warmup,
        chunk_ns=[int(t * S) for t, _ in chunks],
        chunk_tokens=[float(k) for _, k in chunks],
        output_tokens=sum(k for _, k in chunks),
        token_source=TokenSource.USAGE,
    )


def test_server_block_against_the_clients_counts() -> None:
    # scrapes at 0, 1, 2, 3 s; the server generated 0, 40, 80, 102 tokens; drafts 60 of which 45 accepted
    s = [smp(t, GEN, v) for t, v in [(0, 0), (1, 40), (2, 80), (3, 102)]]
    s += [
        smp(0, "vllm:spec_decode_num_draft_tokens_total", 0),
        smp(3, "vllm:spec_decode_num_draft_tokens_total", 60),
    ]
    s += [smp(0, "vllm:spec_decode_num_accepted_tokens_total", 0)]
    s += [smp(3, "vllm:spec_decode_num_accepted_tokens_total", 45)]
    s += [smp(t, "vllm:kv_cache_usage_perc", v) for t, v in [(0, 0.0), (1, 0.5), (2, 0.25), (3, 0.25)]]
    s += [smp(1, "my_exporter_widgets", 3.0)]
    # the client: a warmup request (2 tokens) and two measured ones, 100 tokens in all
    recs = [
        rec(0, 0.1, [(0.2, 1), (0.3, 1)], warmup=True),
        rec(1, 0.5, [(1.0, 10), (1.5, 40)]),
        rec(2, 1.0, [(2.0, 20), (2.5, 28)]),
    ]
    b = server_block(s, recs, client_output_tps=45.0, notes=["n"])
    assert b["engines"] == ["vLLM"]
    assert b["scrapes"] == 4
    assert b["generated_tokens"] == 102 and b["client_tokens"] == 100
    assert b["tokens_ratio"] == pytest.approx(1.02)
    # active from the first send (0.1 s) to the last end (2.5 s): 2.4 s
    assert b["active_s"] == pytest.approx(2.4)
    assert b["generated_tps"] == pytest.approx(102 / 2.4)
    assert b["client_tps"] == pytest.approx(100 / 2.4)
    assert b["output_tps_ratio"] == pytest.approx(102 / 2.4 / 45)
    assert b["spec_acceptance"] == pytest.approx(0.75)
    assert b["kv_cache_use"] == {"name": "vllm:kv_cache_usage_perc", "mean": 0.25, "max": 0.5, "n": 4}
    assert b["running"] is None
    assert b["unknown_families"] == ["my_exporter_widgets"]
    assert b["notes"] == ["n"]


def test_rate_series_for_the_chart() -> None:
    s = [smp(t, GEN, v) for t, v in [(0, 0), (1, 40), (3, 100)]]
    assert telemetry.series(s, [GEN], rate=True) == (GEN, [(1 * S, 40.0), (3 * S, 30.0)])
    assert telemetry.series(s, ["absent"], rate=False) is None


EXPOSITION = """# HELP vllm:generation_tokens_total Number of generation tokens processed.
# TYPE vllm:generation_tokens_total counter
vllm:generation_tokens_total{{model_name="m"}} {gen}
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{{model_name="m"}} 2
"""


def test_parse_uses_the_prometheus_text_format() -> None:
    got = parse(EXPOSITION.format(gen=12), t_ns=7, level=1, url="u")
    assert got[0] == Sample(7, 1, "u", GEN, {"model_name": "m"}, 12.0)
    with pytest.raises(ValueError):
        parse('{"json": "is not an exposition"}', t_ns=0, level=0, url="u")
    assert default_url("https://x.example:8443/v1?k=1") == "https://x.example:8443/metrics"


def test_scraper_brackets_the_level_and_never_delays_it(tmp_path: Path) -> None:
    served = {"n": 0}

    async def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "slow":
            await asyncio.sleep(5)
        if request.url.host == "missing":
            return httpx.Response(404)
        served["n"] += 1
        return httpx.Response(200, text=EXPOSITION.format(gen=10 * served["n"]))

    async def main() -> tuple[list[str], float]:
        with SampleWriter(tmp_path / TELEMETRY) as out:
            scraper = Scraper(
                ["http://ok/metrics", "http://missing/metrics", "http://slow/metrics"],
                out.write,
                interval_s=0.05,
                timeout_s=0.2,
                transport=httpx.MockTransport(handler),
            )
            t0 = time.perf_counter()
            async with scraper.level(0) as notes:
                body = time.perf_counter()
                await asyncio.sleep(0.3)  # "the load": must run while the slow URL hangs
                body = time.perf_counter() - body
            await scraper.aclose()
        assert time.perf_counter() - t0 < 2.0
        return notes, body

    notes, body = asyncio.run(main())
    assert body < 0.5  # the load's own time, not the slow scrapes'
    samples = list(read_samples(tmp_path / TELEMETRY))
    times = sorted({s.t_ns for s in samples if s.name == GEN})
    assert len(times) >= 4  # one before, a few during, one after
    assert {s.url for s in samples} == {"http://ok/metrics"}
    assert counter_increase(samples, GEN) == 10 * (len(times) - 1)
    assert any("missing" in n and "404" in n for n in notes)
    assert any("slow" in n and "timeout" in n for n in notes)
    assert list(read_samples(tmp_path / "absent.jsonl")) == []


def test_doctests() -> None:
    assert doctest.testmod(telemetry).failed == 0
    assert doctest.testmod(scraper_mod).failed == 0


def test_summary_point_carries_the_server_block_and_warns_on_a_count_mismatch() -> None:
    from tpsbench.config.scenario import Level
    from tpsbench.results.summary import summarize_level

    recs = [rec(0, 0.0, [(0.5, 10), (1.0, 40)]), rec(1, 0.0, [(0.5, 10), (1.0, 40)])]
    level = Level(concurrency=2, requests=2, warmup=0)
    ok = summarize_level(
        recs, level_index=0, level=level, slo={}, gpus=None, samples=[smp(0, GEN, 0), smp(2, GEN, 100)]
    )
    assert ok["server"]["tokens_ratio"] == 1.0
    assert not any("server counted" in w for w in ok["warnings"])
    off = summarize_level(
        recs, level_index=0, level=level, slo={}, gpus=None, samples=[smp(0, GEN, 0), smp(2, GEN, 110)]
    )
    assert any("server counted 110 generated tokens" in w and "10% apart" in w for w in off["warnings"])
    none = summarize_level(recs, level_index=0, level=level, slo={}, gpus=None)
    assert none["server"] is None
    noted = summarize_level(
        recs, level_index=0, level=level, slo={}, gpus=None, telemetry_notes=["u: not scraped"]
    )
    assert noted["server"]["notes"] == ["u: not scraped"] and noted["server"]["generated_tokens"] is None


def test_timeline_chart_draws_server_series_under_the_load() -> None:
    from tpsbench.report.chartkit import figure_bytes
    from tpsbench.report.timeline import timeline_figure

    recs = [rec(0, 0.0, [(0.5, 10), (1.0, 40)]), rec(1, 0.2, [(0.7, 10), (1.5, 40)])]
    s = [smp(t, GEN, v) for t, v in [(0, 0), (1, 60), (2, 100)]]
    s += [smp(t, "vllm:num_requests_running", v) for t, v in [(0, 0), (1, 2), (2, 0)]]
    fig = timeline_figure(recs, s, source="aiperf")
    assert fig is not None
    assert len(fig.axes) == 3
    assert "(aiperf)" in fig.get_suptitle()  # the source names the figure
    labels = [line.get_label() for line in fig.axes[1].get_lines()]
    assert any("vllm:generation_tokens_total" in x for x in labels)
    assert figure_bytes(fig, "png").startswith(b"\x89PNG")
    assert timeline_figure(recs, [smp(0, "my_widgets", 1.0)]) is None  # nothing known to draw
    # KV-cache use gets a panel of its own: at 2 of 2 slots it is 100% while 2 requests run
    kv = s + [smp(t, "vllm:kv_cache_usage_perc", v) for t, v in [(0, 0), (1, 1.0), (2, 0)]]
    fig = timeline_figure(recs, kv)
    assert fig is not None and len(fig.axes) == 4
    running, used = fig.axes[2], fig.axes[3]
    fig.canvas.draw()  # lays the panels out
    assert used.get_position().y1 < running.get_position().y0  # under the running requests, not on them
    assert used.get_lines()[0].get_label() == "vllm:kv_cache_usage_perc"
    assert not any("kv_cache" in str(ln.get_label()) for ln in running.get_lines())
    assert list(used.get_yticks()) == [0, 25, 50, 75, 100] and used.get_ylim() == (0, 130)
    assert timeline_figure([], s) is None


def test_a_run_of_the_reference_endpoint_keeps_the_servers_samples(tmp_path: Path) -> None:
    """End to end: the bundled reference endpoint exposes vLLM-style metrics; per level the server's
    generated-token counter agrees with the client's count within 2%, and the report draws it."""
    from tpsbench.config.scenario import Scenario
    from tpsbench.load.benchmark import run_benchmark
    from tpsbench.report.render import render_report

    scenario = Scenario.model_validate(
        {
            "name": "tel",
            "endpoint": {"api": "chat", "continuous_usage": True},
            "workload": {"input_tokens": 100, "output_tokens": 100},
            "load": [{"concurrency": 4, "requests": 12}],
            "telemetry": {"interval_s": 0.25},
        }
    )
    outcome = asyncio.run(run_benchmark(scenario, out_root=tmp_path))
    server = outcome.points[0]["server"]
    assert server["engines"] == ["vLLM"]
    assert server["scrapes"] >= 3
    assert server["tokens_ratio"] == pytest.approx(1.0, abs=0.02)
    assert server["spec_acceptance"] is not None and 0 < server["spec_acceptance"] <= 1
    assert server["running"]["max"] >= 1
    assert list(read_samples(outcome.run_dir / TELEMETRY))
    files = render_report(outcome.run_dir, formats=("png",))
    assert any(f.name == "server_timeline.png" for f in files)


def test_an_endpoint_without_metrics_is_noted_not_fatal(pace_url: str, tmp_path: Path) -> None:
    from tpsbench.config.scenario import Scenario
    from tpsbench.load.benchmark import run_benchmark

    scenario = Scenario.model_validate(
        {
            "endpoint": {"base_url": pace_url, "model": "pace"},
            "workload": {"input_tokens": 16, "output_tokens": 30},
            "load": [{"concurrency": 2, "requests": 4}],
        }
    )
    outcome = asyncio.run(run_benchmark(scenario, out_root=tmp_path))
    point = outcome.points[0]
    assert point["ok"] == point["measured"]
    assert point["server"]["generated_tokens"] is None
    assert any("not scraped" in n and "404" in n for n in point["server"]["notes"])


def test_the_html_report_shows_the_server_table() -> None:
    from tpsbench.config.scenario import Level
    from tpsbench.report.html import to_html
    from tpsbench.results.summary import summarize_level, summarize_run

    recs = [rec(0, 0.0, [(0.5, 10), (1.0, 40)])]
    p = summarize_level(
        recs,
        level_index=0,
        level=Level(concurrency=1, requests=1, warmup=0),
        slo={},
        gpus=None,
        samples=[smp(0, GEN, 0), smp(2, GEN, 50)],
        telemetry_notes=["http://x/metrics: 1 of 3 scrapes failed (timeout after 2 s: 1)"],
    )
    page = to_html(summarize_run([p], run_info={"name": "t"}, slo={}), [])
    assert "What the server reported (Prometheus)" in page
    assert "50 / 50 (1.000)" in page
    assert "1 of 3 scrapes failed" in page
