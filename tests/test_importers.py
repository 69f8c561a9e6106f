"""``tpsbench import``: real aiperf, GuideLLM, inference-perf and vLLM output (tests/data/importers/, made
by running the tools against tpsbench's pace server, see the README there) imported into run directories.
Per request, the recomputed numbers must reproduce each tool's own within 1%; the recomputed Artificial
Analysis TPS/user is set against the pace server's own send log."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest

from tpsbench import importers
from tpsbench.importers.imported import ImportFormatError
from tpsbench.results import metrics
from tpsbench.results.files import SOURCE, read_records, read_summary

DATA = Path(__file__).parent / "data" / "importers"


def _pace_truth(log: list[dict[str, object]]) -> list[float]:
    """True AA TPS/user per request from the pace server's send log: (n - n_first) / (last - first)."""
    out = []
    for e in log:
        sends, toks = e["send_ns"], e["tokens"]
        assert isinstance(sends, list) and isinstance(toks, list)
        if len(sends) > 1:
            out.append((sum(toks) - toks[0]) / ((sends[-1] - sends[0]) / 1e9))
    return out


def _run(tmp_path: Path, src: Path, fmt: str | None = None) -> Path:
    return importers.write_run(importers.read(src, fmt), tmp_path)


def test_detects_each_format() -> None:
    assert importers.detect(DATA / "aiperf") == "aiperf"
    assert importers.detect(DATA / "guidellm" / "benchmarks.json") == "guidellm"
    assert importers.detect(DATA / "vllm" / "vllm-bench-serve.json") == "vllm"
    with pytest.raises(ImportFormatError, match="not a format tpsbench imports"):
        importers.detect(DATA / "guidellm" / "scenario.json")
    with pytest.raises(ImportFormatError, match="not found"):
        importers.read(DATA / "absent")


def test_aiperf_import_reproduces_aiperf_per_request(tmp_path: Path) -> None:
    run = _run(tmp_path, DATA / "aiperf")
    source = json.loads((run / SOURCE).read_text())
    assert source["tool"] == "aiperf" and "raw" in source["format"]
    by_id = {v: int(k) for k, v in source["request_ids"].items()}
    recs = {r.request_id: r for r in read_records(run / "requests.jsonl")}
    theirs = [json.loads(x) for x in (DATA / "aiperf" / "profile_export.jsonl").read_text().splitlines()]
    assert len(theirs) == len(recs) == 32
    worst = 0.0
    for t in theirs:
        m = {k: v["value"] for k, v in t["metrics"].items()}
        r = recs[by_id[t["metadata"]["x_request_id"]]]
        pairs = [
            (metrics.ttft_s(r) * 1000, m["time_to_first_token"]),  # type: ignore[operator]
            # AIPerf's request latency ends at the last response with content (not usage or [DONE])
            ((r.chunk_ns[-1] - r.send_ns) / 1e6, m["request_latency"]),
            (metrics.output_tokens(r), m["output_token_count"]),
            (metrics.tps_user_aiperf(r), m["output_token_throughput_per_user"]),
            (1000 / metrics.tps_user_aiperf(r), m["inter_token_latency"]),  # type: ignore[operator]
            (metrics.e2e_tps(r), m["e2e_output_token_throughput"]),  # n / (t_last - t_send)
        ]
        for ours, tool in pairs:
            assert ours == pytest.approx(tool, rel=0.01)
            worst = max(worst, abs(ours / tool - 1))  # type: ignore[operator]
    assert worst < 1e-6  # the same timestamps, the same formulas
    summary = read_summary(run / "summary.json")
    point = summary["points"][0]
    assert summary["run"]["source_tool"] == "aiperf"
    assert point["concurrency"] == 4 and point["ok"] == 32
    headline = source["aggregates"]["output_token_throughput_per_user"]["p50"]
    assert point["tps_user_aiperf"]["p50"] == pytest.approx(headline, rel=0.01)
    truth = statistics.median(_pace_truth(json.loads((DATA / "aiperf" / "pace_log.json").read_text())))
    # the pace server sent 1-4 tokens a chunk: AIPerf's (OSL - 1) headline overstates the true AA speed,
    # the AA definition recomputed from AIPerf's own response times lands near the truth
    assert headline > truth * 1.015
    assert point["tps_user"]["p50"] == pytest.approx(truth, rel=0.02)


def test_guidellm_import_reproduces_guidellm_per_request(tmp_path: Path) -> None:
    run = _run(tmp_path, DATA / "guidellm" / "benchmarks.json")
    source = json.loads((run / SOURCE).read_text())
    by_id = {v: int(k) for k, v in source["request_ids"].items()}
    recs = {r.request_id: r for r in read_records(run / "requests.jsonl")}
    doc = json.loads((DATA / "guidellm" / "benchmarks.json").read_text())
    theirs = doc["benchmarks"][0]["requests"]["successful"]
    assert len(theirs) == len(recs) == 32
    for t in theirs:
        r = recs[by_id[t["request_id"]]]
        assert metrics.ttft_s(r) * 1000 == pytest.approx(t["time_to_first_token_ms"], rel=0.01)  # type: ignore[operator]
        assert metrics.e2e_s(r) == pytest.approx(t["request_latency"], rel=0.01)
        assert metrics.tps_user_guidellm(r) == pytest.approx(t["output_tokens_per_second"], rel=0.01)
        # GuideLLM's ITL is (t_last - t_first) / (n - 1): AIPerf's ITL
        assert 1000 / metrics.tps_user_aiperf(r) == pytest.approx(t["inter_token_latency_ms"], rel=0.01)  # type: ignore[operator]
    point = read_summary(run / "summary.json")["points"][0]
    headline = statistics.median(t["output_tokens_per_second"] for t in theirs)
    truth = statistics.median(_pace_truth(json.loads((DATA / "guidellm" / "pace_log.json").read_text())))
    assert point["tps_user_guidellm"]["p50"] == pytest.approx(headline, rel=0.01)
    assert headline < truth * 0.9  # TTFT inside the denominator: far below the streaming speed


def test_vllm_import_reproduces_vllm_per_request(tmp_path: Path) -> None:
    """Real ``vllm bench serve`` 0.33.0 output against the pace server (make_fixture.sh beside it)."""
    src = DATA / "vllm" / "vllm-bench-serve.json"
    run = _run(tmp_path, src)
    doc = json.loads(src.read_text())
    recs = sorted(read_records(run / "requests.jsonl"), key=lambda r: r.send_ns)
    order = sorted(range(len(doc["ttfts"])), key=lambda i: doc["start_times"][i])
    assert len(recs) == doc["completed"] == 16 and all(r.ok for r in recs)
    worst = 0.0
    for r, i in zip(recs, order, strict=True):
        n, lat, ttft = doc["output_lens"][i], doc["latencies"][i], doc["ttfts"][i]
        pairs = [
            (metrics.ttft_s(r), ttft),
            (metrics.e2e_s(r), lat),
            (metrics.output_tokens(r), n),
            (len(r.chunk_ns), len(doc["itls"][i]) + 1),
            # vLLM's TPOT = (latency - TTFT) / (OSL - 1): InferenceX's
            (metrics.tpot_inferencex_s(r), (lat - ttft) / (n - 1)),
        ]
        for ours, tool in pairs:
            assert ours == pytest.approx(tool, rel=0.01)
            worst = max(worst, abs(ours / tool - 1))  # type: ignore[operator]
    assert worst < 1e-6
    source = json.loads((run / SOURCE).read_text())
    assert not any(d.startswith("end_ns") for d in source["derived"])  # latencies are in the file
    point = read_summary(run / "summary.json")["points"][0]
    assert point["concurrency"] == doc["max_concurrency"] == 4
    assert point["tpot_inferencex_s"]["p50"] * 1000 == pytest.approx(doc["median_tpot_ms"], rel=1e-6)
    assert point["output_tps"] == pytest.approx(doc["output_throughput"], rel=0.01)
    # the pace server's log: one entry per request, its X-Request-Id "pace-fixture-<index>"
    log = {e["request_id"]: e for e in json.loads((DATA / "vllm" / "pace_log.json").read_text())}
    for i, gaps in enumerate(doc["itls"]):
        assert len(log[f"pace-fixture-{i}"]["send_ns"]) == len(gaps) + 1  # every chunk the server sent
    truth = statistics.median(_pace_truth(list(log.values())))
    headline = 1000 / doc["median_tpot_ms"]
    assert headline == pytest.approx(truth, rel=0.02)
    # vLLM keeps no per-chunk token counts, so the AA speed of the import spreads n evenly over the chunks
    # (derived): the first chunk's share is a guess, and the AA figure reads a few percent off the truth
    assert point["tps_user"]["p50"] == pytest.approx(truth, rel=0.05)


def test_vllm_import_from_the_documented_format(tmp_path: Path) -> None:
    run = _run(tmp_path, DATA / "vllm" / "documented" / "vllm-bench-serve.json", "vllm")
    recs = list(read_records(run / "requests.jsonl"))
    assert len(recs) == 3 and sum(r.ok for r in recs) == 2
    r = recs[0]
    assert metrics.ttft_s(r) == pytest.approx(0.05)
    assert metrics.decode_s(r) == pytest.approx(0.03)
    assert metrics.output_tokens(r) == 8
    # vLLM's TPOT = (latency - TTFT) / (OSL - 1), latency to the last chunk here
    assert metrics.tpot_inferencex_s(r) == pytest.approx(0.03 / 7)
    point = read_summary(run / "summary.json")["points"][0]
    assert point["concurrency"] == 2 and point["errors"] == {"other": 1}


def test_cli_import_writes_a_run_that_report_reads(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from tpsbench.cli.app import app

    res = CliRunner().invoke(app, ["import", str(DATA / "aiperf"), "--out", str(tmp_path), "--name", "ai"])
    assert res.exit_code == 0, res.output
    run = next(tmp_path.glob("*-ai"))
    assert (run / "summary.json").is_file() and (run / SOURCE).is_file()
    bad = CliRunner().invoke(
        app, ["import", str(DATA / "guidellm" / "scenario.json"), "--out", str(tmp_path)]
    )
    assert bad.exit_code == 2
    assert "not a format tpsbench imports" in bad.output


def test_compare_selects_another_harness_definition(tmp_path: Path) -> None:
    from tpsbench.report.compare import compare
    from tpsbench.results.views import open_run

    a = _run(tmp_path, DATA / "aiperf")
    g = _run(tmp_path, DATA / "guidellm" / "benchmarks.json")
    result = compare([open_run(a), open_run(g)], force=True, metrics=["tps_user_aiperf_p50", "tps_user_p50"])
    assert [r.metric for r in result.rows] == ["TPS/user (AIPerf) p50", "TPS/user p50"]
    aiperf_cell = result.rows[0].cells[0]
    assert aiperf_cell.value == pytest.approx(
        read_summary(a / "summary.json")["points"][0]["tps_user_aiperf"]["p50"]
    )
    with pytest.raises(ValueError, match="unknown metric"):
        compare([open_run(a), open_run(g)], force=True, metrics=["tps_user_nobody_p50"])


def test_report_of_an_imported_run_names_the_source_tool(tmp_path: Path) -> None:
    from tpsbench.report.render import render_report

    run = _run(tmp_path, DATA / "guidellm" / "benchmarks.json")
    files = render_report(run, formats=("md",))
    md = files[0].read_text()
    assert "measured by guidellm (imported)" in md
    assert "GuideLLM / LLMPerf output tokens per second" in md


def test_inference_perf_import_reproduces_inference_perf_per_request(tmp_path: Path) -> None:
    """Real inference-perf 0.7.0 output against the pace server (make_fixture.sh beside the fixture)."""
    src = DATA / "inference-perf"
    assert importers.detect(src) == "inference-perf"
    run = _run(tmp_path, src)
    recs = sorted(read_records(run / "requests.jsonl"), key=lambda r: r.send_ns)
    theirs = sorted(
        json.loads((src / "per_request_lifecycle_metrics.json").read_text()), key=lambda e: e["start_time"]
    )
    assert len(theirs) == len(recs) == 16 and all(r.ok for r in recs)
    worst = 0.0
    for r, t in zip(recs, theirs, strict=True):
        m = t["computed_metrics"]
        pairs = [
            (metrics.ttft_s(r), m["time_to_first_token"]),  # first token chunk - start_time
            (metrics.e2e_s(r), m["request_latency"]),  # end_time - start_time
            (metrics.output_tokens(r), m["output_tokens"]),
            # TPOT = (t_last - t_first) / (n - 1): AIPerf's ITL; inference-perf's ITL (the mean gap between
            # per-token times, a chunk's tokens sharing its time) is the same number
            (1 / metrics.tps_user_aiperf(r), m["time_per_output_token"]),  # type: ignore[operator]
            (1 / metrics.tps_user_aiperf(r), m["inter_token_latency"]),  # type: ignore[operator]
            (1 / metrics.tps_user_guidellm(r), m["normalized_time_per_output_token"]),  # type: ignore[operator]
        ]
        for ours, tool in pairs:
            assert ours == pytest.approx(tool, rel=0.01)
            worst = max(worst, abs(ours / tool - 1))  # type: ignore[operator]
    assert worst < 1e-6  # the same timestamps, the same formulas
    source = json.loads((run / SOURCE).read_text())
    assert source["tool"] == "inference-perf" and "config.yaml" in source["files"]
    point = read_summary(run / "summary.json")["points"][0]
    assert point["concurrency"] == 4  # from inference-perf's config.yaml
    headline = 1 / source["aggregates"]["successes"]["latency"]["time_per_output_token"]["median"]
    assert point["tps_user_aiperf"]["p50"] == pytest.approx(headline, rel=0.01)
    truth = statistics.median(_pace_truth(json.loads((src / "pace_log.json").read_text())))
    # 1-4 tokens a chunk: inference-perf's 1 / TPOT, with its (OSL - 1), overstates the true AA speed
    assert headline > truth * 1.02
    assert point["tps_user"]["p50"] == pytest.approx(truth, rel=0.02)


def test_inference_perf_import_from_the_documented_format(tmp_path: Path) -> None:
    src = DATA / "inference-perf" / "documented" / "per_request_lifecycle_metrics.json"
    assert importers.detect(src) == "inference-perf"
    run = _run(tmp_path, src)
    recs = sorted(read_records(run / "requests.jsonl"), key=lambda r: r.send_ns)
    assert [r.ok for r in recs] == [True, False]
    r = recs[0]
    assert metrics.output_tokens(r) == 8  # the server's usage wins over the client tokenizer's 7
    assert r.chunk_tokens == pytest.approx([2.0, 3.0, 3.0])  # shares of each chunk's text
    assert metrics.ttft_s(r) == pytest.approx(0.05)
    assert metrics.tps_user(r) == pytest.approx(6 / 0.03)
    assert metrics.e2e_s(r) == pytest.approx(0.09)
    summary = read_summary(run / "summary.json")
    assert summary["points"][0]["concurrency"] == 1  # no config.yaml beside it: the load is unknown
    assert "does not say" in " ".join(summary["run"]["imported"]["derived"])


def test_inference_perf_load_comes_from_its_config_yaml(tmp_path: Path) -> None:
    src = tmp_path / "ip"
    src.mkdir()
    doc = DATA / "inference-perf" / "documented" / "per_request_lifecycle_metrics.json"
    (src / "per_request_lifecycle_metrics.json").write_text(doc.read_text())
    (src / "config.yaml").write_text("load:\n  type: constant\n  stages: [{rate: 2.5, duration: 10}]\n")
    level = importers.read(src).levels[0].level
    assert (level.rate, level.concurrency) == (2.5, None)
    (src / "config.yaml").write_text("load: [not, a, mapping\n")  # unreadable: the load stays unknown
    imp = importers.read(src)
    assert imp.levels[0].level.concurrency == 1 and "does not say" in " ".join(imp.derived)
