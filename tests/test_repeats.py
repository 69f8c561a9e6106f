"""Repeats of a whole plan: records stamped with their repeat, the pooled point and its run-level
estimates (exact, on real summarize_level outputs over synthetic records), the scenario field, and an
end-to-end run of two repeats against the pace server."""

from __future__ import annotations

import asyncio
import json
import math
from pathlib import Path

import pytest

from tpsbench.config.errors import ScenarioError
from tpsbench.config.scenario import Level, Scenario
from tpsbench.core.record import RequestRecord, TokenSource
from tpsbench.load.benchmark import run_benchmark
from tpsbench.results import files, repeats
from tpsbench.results.summary import summarize_level
from tpsbench.results.views import open_run

LEVEL = Level(concurrency=1, requests=4, warmup=0)


def _records(step_ms: float, repeat: int) -> list[RequestRecord]:
    """Four back-to-back requests: first token at 100 ms, then 10 one-token chunks ``step_ms`` apart."""
    out, t = [], 0
    for i in range(4):
        first = t + 100_000_000
        chunks = [first + round(k * step_ms * 1e6) for k in range(11)]
        out.append(
            RequestRecord(
                request_id=i, level=0, send_ns=t, end_ns=chunks[-1], chunk_ns=chunks, chunk_tokens=[1.0] * 11,
                output_tokens=11, token_source=TokenSource.USAGE, repeat=repeat,
            )
        )  # fmt: skip
        t = chunks[-1]
    return out


def test_pooled_point_and_run_level_estimates_are_exact() -> None:
    recs = {k: _records(step, k) for k, step in enumerate((10.0, 20.0))}
    per = [summarize_level(r, level_index=0, level=LEVEL, slo={}, gpus=2) for r in recs.values()]
    # TPS/user = 10 decode tokens / (10 steps x step): 100 and 50 tok/s
    assert [p["tps_user"]["p50"] for p in per] == pytest.approx([100.0, 50.0])
    whole = summarize_level(recs[0] + recs[1], level_index=0, level=LEVEL, slo={}, gpus=2)
    point = repeats.pool(whole, per)
    est = point["repeats"]["metrics"]["tps_user_p50"]
    assert est["values"] == pytest.approx([100.0, 50.0]) and est["mean"] == pytest.approx(75.0)
    sd = math.sqrt(2 * 25.0**2)  # sample sd of {100, 50}
    assert est["sd"] == pytest.approx(sd)
    half = 12.706204736174707 * sd / math.sqrt(2)  # t_{0.975, 1}
    assert est["ci"] == pytest.approx([max(0.0, 75.0 - half), 75.0 + half])  # a speed is never negative
    # throughputs are the mean over repeats, not tokens over a window spanning both repeats
    assert point["output_tps"] == pytest.approx((per[0]["output_tps"] + per[1]["output_tps"]) / 2)
    assert point["output_tps_per_gpu"] == pytest.approx(point["output_tps"] / 2)
    # the per-request distribution pools both repeats' requests
    assert point["tps_user"]["n"] == 8


def test_records_carry_their_repeat_and_old_formats_read_as_repeat_0() -> None:
    r = _records(10.0, 2)[0]
    line = files.record_line(r)
    assert line["format"] == files.RECORD_FORMAT and line["repeat"] == 2
    assert files.record_from_line(line, "x:1").repeat == 2
    old = {k: v for k, v in r.to_dict().items() if k != "repeat"} | {"format": 2}
    assert files.record_from_line(old, "x:1").repeat == 0


def test_scenario_repeat_field() -> None:
    base = {"load": [{"concurrency": 1, "requests": 4}]}
    assert Scenario.model_validate(base | {"repeat": 3}).repeat.count == 3
    s = Scenario.model_validate(base | {"repeat": {"count": 2, "cooldown_s": 1.5}})
    assert (s.repeat.count, s.repeat.cooldown_s) == (2, 1.5)
    assert s.with_overrides(repeat=4).repeat.count == 4
    with pytest.raises(ValueError, match="repeat works on fixed load levels"):
        Scenario.model_validate({"sweep": {"concurrency": {"start": 1, "max": 8}}, "repeat": 2})
    with pytest.raises(ScenarioError):
        s.with_overrides(repeat=0)


def test_two_repeats_end_to_end(pace_url: str, tmp_path: Path) -> None:
    scenario = Scenario.model_validate(
        {
            "name": "pace-repeats",
            "endpoint": {"base_url": pace_url, "api": "chat", "model": "pace"},
            "workload": {"input_tokens": 16, "output_tokens": 30},
            "load": [{"concurrency": 2, "requests": 8}, {"concurrency": 4, "requests": 8}],
            "repeat": {"count": 2, "cooldown_s": 0.2},
        }
    )
    outcome = asyncio.run(run_benchmark(scenario, out_root=tmp_path))
    summary = json.loads((outcome.run_dir / "summary.json").read_text())
    assert summary["schema"] == 2 and summary["repeats"]["count"] == 2
    runs = summary["repeats"]["runs"]
    assert [r["repeat"] for r in runs] == [0, 1] and runs[0]["prompt_nonce"] != runs[1]["prompt_nonce"]
    assert runs[1]["start_wall"] - runs[0]["end_wall"] >= 0.2  # the cool-down
    run = open_run(outcome.run_dir)
    assert run.repeat_count == 2 and len(run.points) == 2
    assert {(r.repeat, r.level) for r in run.records if not r.warmup} == {(0, 0), (0, 1), (1, 0), (1, 1)}
    p = run.points[1]
    est = p.repeat_estimate("tps_user_p50")
    assert est is not None and len(est.values) == 2 and est.ci is not None
    # the pace server streams at 300 tokens/s per request whatever the load
    assert all(250 < v < 330 for v in est.values)
    assert p.dist("tps_user") is not None and p.dist("tps_user").n == 16  # type: ignore[union-attr]
    assert any("TPS/user p50" in d for d in run.repeat_differences)


def test_reports_show_both_estimates_and_what_differed() -> None:
    from tpsbench.report.html import to_html
    from tpsbench.report.markdown import to_markdown

    run = open_run(Path(__file__).resolve().parents[1] / "results" / "baseline")
    md = to_markdown(run.summary)
    assert "**Run to run (3 repeats)**" in md and "run level: mean of repeats [95% t CI]" in md
    assert "across repeats (CV" in md
    assert "Run to run (3 repeats)" in to_html(run.summary, [])
    est = run.points[0].repeat_estimate("ttft_s_p99")
    assert est is not None and est.ci is not None and est.ci[0] >= 0
