"""End to end against a real HTTP server on 127.0.0.1 streaming on a known schedule: 50 ms to the first
token, then a chunk of 3 tokens every 10 ms. Request by request (matched by ``X-Request-Id``), tpsbench's
TTFT and TPS/user must match what the server actually did (its own send log, on the same clock): medians
and means within 2%, at concurrency 1, 16 and 64, or, on a machine where other processes take the CPU,
within 2% plus the lateness the client's own self-check reported (event-loop lag p99), with the level
flagged client-bound. What the client controls is that its error is small or visible, never silent.

Truth per request: TTFT = server's first token write - client's ``send_ns``; TPS/user = (n - n_first) /
(last write - first write) from the server's write times."""

from __future__ import annotations

import asyncio
import statistics
from pathlib import Path

import httpx
import pytest
from conftest import PACE_INTERVAL_MS, PACE_TOKENS

from tpsbench.config.scenario import Scenario
from tpsbench.load.benchmark import run_benchmark
from tpsbench.reference.pace import truth_by_id
from tpsbench.results import files, metrics
from tpsbench.results.views import open_run


def _scenario(url: str, concurrency: int, api: str = "chat") -> Scenario:
    return Scenario.model_validate(
        {
            "name": f"pace-c{concurrency}",
            "endpoint": {"base_url": url, "api": api, "model": "pace"},
            "workload": {"input_tokens": 16, "output_tokens": 60},
            "load": [{"concurrency": concurrency, "requests": max(16, 2 * concurrency)}],
        }
    )


# Anthropic Messages and OpenAI Responses too: their opening events go out with the headers, 50 ms before
# the first token, so a decoder that counted them as the first token would fail the TTFT check.
@pytest.mark.parametrize(
    ("concurrency", "api"), [(1, "chat"), (16, "chat"), (64, "chat"), (16, "messages"), (16, "responses")]
)
def test_measured_requests_match_the_server_send_log(
    pace_url: str, concurrency: int, api: str, tmp_path: Path
) -> None:
    root = pace_url.removesuffix("/v1")
    httpx.post(root + "/log/reset")
    outcome = asyncio.run(run_benchmark(_scenario(pace_url, concurrency, api), out_root=tmp_path))
    truths = truth_by_id(httpx.get(root + "/log").json())

    point = outcome.summary["points"][0]
    assert point["ok"] == point["measured"] == max(16, 2 * concurrency)
    records = list(open_run(outcome.run_dir).records)
    assert sorted(truths) == sorted(r.request_id for r in records)  # every request's id reached the server
    measured = [r for r in records if not r.warmup]
    client_ttft = [metrics.ttft_s(r) or 0.0 for r in measured]
    true_ttft = [truths[r.request_id].ttft_s(r.send_ns) for r in measured]
    client_tps = [metrics.tps_user(r) or 0.0 for r in measured]
    true_tps = [truths[r.request_id].tps_user or 0.0 for r in measured]
    check = point["self_check"]
    lag = check["loop_lag_p99_s"] or 0.0  # how late this client's loop woke, by its own probe
    decode_s = statistics.median((r.chunk_ns[-1] - r.chunk_ns[0]) / 1e9 for r in measured)
    # a stamp late by `lag` moves TTFT by up to lag, and a decode time (hence TPS/user) by lag / decode_s
    for client, true, slack in ((client_ttft, true_ttft, lag), (client_tps, true_tps, None)):
        for stat in (statistics.median, statistics.fmean):
            got, want = stat(client), stat(true)
            if abs(got - want) <= 0.02 * abs(want):
                continue
            allowed = 0.02 * abs(want) + (slack if slack is not None else abs(want) * lag / decode_s)
            assert check["client_bound"] and abs(got - want) <= allowed, (stat.__name__, got, want, check)
    # the request itself leaves at once: received by the server within 5 ms of send_ns (issue 6's TTFT bound;
    # a transport that writes the body from another task fails this, not the checks above)
    # (or, on a host where other processes take the CPU, within that plus the loop lag the client reported,
    # with the level flagged: the same rule as above)
    send_to_received = statistics.median(truths[r.request_id].received_ns - r.send_ns for r in measured)
    assert send_to_received < 5_000_000 or (
        check["client_bound"] and send_to_received < 5_000_000 + lag * 1e9
    ), (send_to_received, check)
    # and the schedule itself: 3 tokens / 10 ms = 300 tokens/s, all 60 tokens counted
    pace_tps = PACE_TOKENS / PACE_INTERVAL_MS * 1000
    assert point["tps_user"]["p50"] == pytest.approx(pace_tps, rel=0.05 + lag / decode_s)
    assert all(r.output_tokens == 60 for r in records)


def test_completions_api_and_run_directory_contract(pace_url: str, tmp_path: Path) -> None:
    outcome = asyncio.run(run_benchmark(_scenario(pace_url, 4, api="completions"), out_root=tmp_path))
    names = {p.name for p in outcome.run_dir.iterdir()}
    assert {files.SCENARIO, files.METADATA, files.REQUESTS, files.SUMMARY_JSON, files.SUMMARY_CSV} <= names
    summary = files.read_summary(outcome.run_dir / files.SUMMARY_JSON)
    assert summary["schema"] == 1
    point = summary["points"][0]
    assert point["concurrency"] == 4
    for block in ("ttft_s", "tps_user", "tpot_s", "itl_s", "e2e_s"):
        assert {"mean", "p50", "p90", "p99"} <= set(point[block])
    for key in ("output_tps", "output_tps_per_gpu", "request_rate", "error_rate", "goodput"):
        assert key in point
    # a second run never overwrites the first
    again = asyncio.run(run_benchmark(_scenario(pace_url, 4, api="completions"), out_root=tmp_path))
    assert again.run_dir != outcome.run_dir and outcome.run_dir.exists()
