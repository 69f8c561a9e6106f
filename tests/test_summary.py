"""Per-level summaries, summary.json / summary.csv serializers and the requests.jsonl reader."""

from __future__ import annotations

import csv
import doctest
import io
import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import tpsbench
from tpsbench.config.scenario import Level
from tpsbench.core.record import ErrorKind, RequestRecord, TokenSource
from tpsbench.results import files, metrics, stats, summary
from tpsbench.results.files import read_records
from tpsbench.results.stats import STAT_KEYS
from tpsbench.results.summary import summarize_level, summarize_run, to_csv, to_json

MS = 1_000_000  # ns
CLOSED = Level.model_validate({"concurrency": 4, "requests": 4, "warmup": 1})
OPEN = Level.model_validate({"rate": 2.0, "requests": 3})


def rec(
    rid: int,
    send_ms: int,
    chunks: list[tuple[int, float]],
    *,
    end_ms: int | None = None,
    usage: int | None = None,
    source: TokenSource = TokenSource.USAGE,
    error: ErrorKind | None = None,
    warmup: bool = False,
    requested: int | None = 10,
    scheduled_ms: int | None = None,
    level: int = 0,
) -> RequestRecord:
    return RequestRecord(
        request_id=rid,
        level=level,
        send_ns=send_ms * MS,
        end_ns=(end_ms if end_ms is not None else chunks[-1][0]) * MS,
        scheduled_ns=None if scheduled_ms is None else scheduled_ms * MS,
        warmup=warmup,
        error=error,
        chunk_ns=[t * MS for t, _ in chunks],
        chunk_tokens=[k for _, k in chunks],
        output_tokens=usage,
        token_source=source if error is None else TokenSource.NONE,
        requested_output_tokens=requested,
    )


def level0() -> list[RequestRecord]:
    """A warmup, three successes and a 5xx. Measured window: 1.0 s (first send) to 3.0 s (last end)."""
    return [
        # warmup: huge and late, so it would change every number if it were counted
        rec(0, 0, [(500, 1000), (9000, 1000)], end_ms=10_000, usage=2000, warmup=True),
        # A: TTFT 0.2 s, 8 decode tokens in 0.4 s -> 20 tok/s
        rec(1, 1000, [(1200, 2), (1400, 4), (1600, 4)], usage=10),
        # B: TTFT 0.5 s, 9 decode tokens in 0.5 s -> 18 tok/s
        rec(2, 1500, [(2000, 1), (2500, 9)], usage=10),
        # C: no usage (estimated counts 5 + 3 = 8 < 10 requested), TTFT 0.1 s, 3 tokens in 0.1 s -> 30 tok/s
        rec(3, 2000, [(2100, 5), (2200, 3)], source=TokenSource.ESTIMATE),
        # D: server error
        rec(4, 2500, [], end_ms=3000, error=ErrorKind.HTTP_5XX),
    ]


SLO = {"ttft_s": {"p99": 0.3}, "tps_user": {"p50": 19.0}}


def point0(slo: dict[str, dict[str, float]] | None = None, **kw: Any) -> dict[str, Any]:
    return summarize_level(
        level0(), level_index=0, level=CLOSED, slo=SLO if slo is None else slo, gpus=2, **kw
    )


def test_counts_rates_and_warmup_exclusion() -> None:
    p = point0()
    assert (p["level"], p["concurrency"], p["rate"], p["arrival"]) == (0, 4, None, None)
    assert (p["requests"], p["measured"], p["warmup"], p["ok"]) == (5, 4, 1, 3)
    assert p["errors"] == {"http_5xx": 1}
    assert p["window_s"] == 2.0
    assert p["output_tps"] == 14.0  # (10 + 10 + 8) tokens / 2 s; the failed request and the warmup add none
    assert p["output_tps_per_gpu"] == 7.0
    assert p["request_rate"] == 1.5
    assert p["error_rate"] == 0.25
    assert p["token_sources"] == {"estimate": 1, "usage": 2}
    assert p["short_outputs"] == 1


def test_output_tps_counts_tokens_delivered_inside_the_window() -> None:
    # a warmup request whose chunks straddle the window start: its 6 tokens at 1.1 s were served inside the
    # measured window (1.0 s to 2.0 s), its 4 tokens at 0.9 s were not
    records = [
        rec(0, 0, [(900, 4), (1100, 6)], usage=10, warmup=True),
        rec(1, 1000, [(1500, 3), (2000, 7)], usage=10),
    ]
    p = summarize_level(records, level_index=0, level=CLOSED, slo={}, gpus=None)
    assert p["window_s"] == 1.0
    assert p["output_tps"] == 16.0  # (6 + 3 + 7) tokens / 1 s


def test_metric_blocks() -> None:
    p = point0()
    for name in summary.POINT_METRICS:
        assert list(p[name]) == list(STAT_KEYS)
    assert p["ttft_s"]["n"] == 3
    assert p["ttft_s"]["p50"] == pytest.approx(0.2)
    assert p["ttft_s"]["max"] == pytest.approx(0.5)
    assert p["tps_user"]["p50"] == pytest.approx(20.0)
    assert p["tps_user"]["min"] == pytest.approx(18.0)
    assert p["tpot_s"]["max"] == pytest.approx(0.5 / 9)
    assert p["e2e_s"]["mean"] == pytest.approx((0.6 + 1.0 + 0.2) / 3)
    assert p["itl_s"]["n"] == 4  # every gap of every successful request: .2 .2 .5 .1
    assert p["itl_s"]["mean"] == pytest.approx(0.25)
    assert p["itl_s"]["mean_ci"] is None  # pooled, correlated values: no CI
    assert p["tokens_per_chunk"]["n"] == 7
    assert p["output_tokens"]["mean"] == pytest.approx(28 / 3)
    assert p["sched_lag_s"]["n"] == 0  # closed loop
    assert p["ttft_s"]["mean_ci"] is not None


def test_goodput_and_slo() -> None:
    p = point0()
    # A (0.2 s, 20 tok/s) and C (0.1 s, 30 tok/s) meet both; B fails TTFT (0.5 > 0.3).
    assert p["goodput"] == 1.0
    assert p["ttft_s"]["p99"] == pytest.approx(0.494)  # so the level misses its p99 TTFT target
    assert p["slo_met"] is False

    p = point0({"ttft_s": {"p99": 0.6}, "tps_user": {"p50": 19.0}})
    assert p["slo_met"] is True  # p99 0.494 <= 0.6 and p50 20 >= 19
    assert p["goodput"] == 1.0  # B: TTFT fine, but 18 tok/s < 19

    # throughput is "higher is better" per request too: only C reaches 25 tok/s
    assert point0({"tps_user": {"p10": 25.0}})["goodput"] == 0.5
    # for itl_s the statistic applies to each request's own gaps: B's one gap of 0.5 s fails
    p = point0({"itl_s": {"p50": 0.25}})
    assert p["goodput"] == 1.0
    assert p["slo_met"] is True  # pooled p50 of .1 .2 .2 .5 = 0.2


def test_no_slo_means_no_goodput() -> None:
    p = point0({})
    assert p["goodput"] is None and p["slo_met"] is None


def test_warnings_name_a_reason_and_a_hint() -> None:
    p = point0()
    text = p["warnings"]
    assert any(w.startswith("1 of 4 failed: http_5xx 1: Requests failed") for w in text)
    assert any("shorter than max_tokens" in w for w in text)
    assert any("estimated from characters" in w for w in text)
    assert any(w.startswith("3 ok: Under 100 successful requests") for w in text)
    assert all("Hint:" in w for w in text)
    causes = [c["cause"] for c in p["warning_causes"]]
    assert len(causes) == len(text) and {"errors", "short_outputs", "few_samples"} <= set(causes)
    assert all(cause in summary.WARNING_CAUSES for cause in causes)
    assert p["first_error"]["kind"] == "http_5xx"


def test_a_simulator_that_fell_behind_flags_the_level() -> None:
    """The reference endpoint's own pace report (over the measured window) is a level warning."""
    behind = "reference endpoint fell behind its schedule (step lag p50 20.0 ms): TPS here is the host's"
    p = point0(self_check={"simulator": {"window": "measured", "warnings": [behind]}})
    coded = {c["cause"]: c["detail"] for c in p["warning_causes"]}
    assert coded["reference_pace"] == behind
    assert any(w.startswith(behind + ": The bundled reference endpoint") for w in p["warnings"])
    clean = point0(self_check={"simulator": {"window": "measured", "warnings": []}})
    assert "reference_pace" not in {c["cause"] for c in clean["warning_causes"]}


def test_self_check_is_completed_and_judged() -> None:
    p = point0(self_check={"loop_lag_p99_s": 0.002, "cpu_percent": 40.0, "interrupted": False})
    check = p["self_check"]
    assert check["loop_lag_p99_s"] == 0.002 and check["cpu_percent"] == 40.0
    assert check["achieved_concurrency"] == pytest.approx((0.6 + 1.0 + 0.2 + 0.5) / 2.0)
    assert check["sched_lag_p99_s"] is None
    assert check["client_bound"] is False
    assert not any("keep up" in w for w in p["warnings"])

    p = point0(self_check={"loop_lag_p99_s": 0.025, "cpu_percent": 97.0, "interrupted": True})
    assert p["self_check"]["client_bound"] is True
    [w] = [w for w in p["warnings"] if "keep up" in w]
    assert "event-loop lag p99 25.0 ms" in w and "CPU" not in w  # 97% x 4 of 5 ok = 78% on streams
    assert any("interrupted" in w.lower() for w in p["warnings"])


def test_open_loop_scheduling_lag() -> None:
    records = [
        rec(
            i,
            1000 * i + 20,
            [(1000 * i + 100, 1), (1000 * i + 200, 9)],
            usage=10,
            scheduled_ms=1000 * i,
            level=1,
        )
        for i in range(3)
    ]
    p = summarize_level(records, level_index=1, level=OPEN, slo={}, gpus=None)
    assert (p["concurrency"], p["rate"], p["arrival"]) == (None, 2.0, "poisson")
    assert p["output_tps_per_gpu"] is None
    assert p["sched_lag_s"]["p50"] == pytest.approx(0.02)
    assert p["self_check"]["sched_lag_p99_s"] == pytest.approx(0.02)
    assert p["self_check"]["client_bound"] is True
    assert any("scheduling lag p99 20.0 ms" in w for w in p["warnings"])


def test_a_clean_level_has_no_warnings() -> None:
    records = [
        rec(i, 10 * i, [(10 * i + 50, 1), *((10 * i + 50 + 10 * j, 1) for j in range(1, 10))])
        for i in range(120)
    ]
    for r in records:
        r.output_tokens = 10
    p = summarize_level(records, level_index=0, level=CLOSED, slo={"ttft_s": {"p99": 0.1}}, gpus=1)
    assert p["warnings"] == []
    assert p["slo_met"] is True
    assert p["goodput"] == p["request_rate"]
    assert p["ttft_s"]["p50_ci"] == pytest.approx([0.05, 0.05])


def test_unstable_median_is_flagged() -> None:
    records = [
        rec(i, 2000 * i, [(2000 * i + 100 * (1 + i % 10), 1), (2000 * i + 1500, 9)], usage=10)
        for i in range(20)
    ]
    p = summarize_level(records, level_index=0, level=CLOSED, slo={}, gpus=None)
    [w] = [w for w in p["warnings"] if "95% CI is wider" in w]
    assert w.startswith("ttft_s p50 ") and " ms, CI " in w  # times in ms, as the terminal shows them


def test_only_warmup() -> None:
    p = summarize_level(level0()[:1], level_index=0, level=CLOSED, slo=SLO, gpus=2)
    assert (p["measured"], p["window_s"], p["output_tps"], p["error_rate"], p["goodput"]) == (
        0,
        None,
        None,
        None,
        None,
    )
    assert p["ttft_s"]["n"] == 0
    assert p["slo_met"] is False
    assert len(p["warnings"]) == 1 and "No measured requests" in p["warnings"][0]


def test_rejects_records_of_another_level_and_unknown_slo() -> None:
    with pytest.raises(ValueError, match=r"level\(s\) \[0\]"):
        summarize_level(level0(), level_index=1, level=CLOSED, slo={}, gpus=None)
    with pytest.raises(ValueError, match="unknown SLO metric"):
        point0({"ttft": {"p99": 1.0}})
    with pytest.raises(ValueError, match="unknown SLO statistic"):
        point0({"ttft_s": {"p42": 1.0}})


def run_summary() -> dict[str, Any]:
    open_records = [
        rec(i, 1000 * i, [(1000 * i + 100, 2), (1000 * i + 300, 8)], usage=10, scheduled_ms=1000 * i, level=1)
        for i in range(3)
    ]
    points = [point0(), summarize_level(open_records, level_index=1, level=OPEN, slo=SLO, gpus=2)]
    return summarize_run(points, run_info={"name": "demo", "gpus": 2}, slo=SLO)


def test_json_writes_non_finite_as_null() -> None:
    s = summarize_run(
        [{"level": 0, "self_check": {"x": float("inf"), "y": [float("nan")]}}], run_info={}, slo={}
    )
    doc = json.loads(to_json(s))
    assert doc["points"][0]["self_check"] == {"x": None, "y": [None]}


def test_read_summary_refuses_other_schemas(tmp_path: Path) -> None:
    path = tmp_path / "summary.json"
    path.write_text('{"schema": 0, "points": []}')
    with pytest.raises(ValueError, match="schema 0 is not supported"):
        files.read_summary(path)
    path.write_text('{"schema": 3, "points": []}')
    with pytest.raises(ValueError, match="schema 3 is newer than this tpsbench reads"):
        files.read_summary(path)


def test_csv_has_one_flat_row_per_point() -> None:
    s = run_summary()
    rows = list(csv.DictReader(io.StringIO(to_csv(s).decode())))
    assert len(rows) == 2
    columns = set(rows[0])
    for col in (
        "level",
        "concurrency",
        "rate",
        "ttft_s_p50",
        "ttft_s_p99",
        "tps_user_p10",
        "tps_user_mean_ci_lo",
        "tps_user_mean_ci_hi",
        "tps_user_p50_ci_lo",
        "itl_s_p99",
        "e2e_s_mean",
        "output_tps",
        "output_tps_per_gpu",
        "goodput",
        "errors_http_5xx",
        "errors_connect",
        "token_sources_usage",
        "self_check_client_bound",
        "warnings",
    ):
        assert col in columns, col
    assert float(rows[0]["ttft_s_p50"]) == s["points"][0]["ttft_s"]["p50"]
    assert float(rows[0]["tps_user_mean_ci_lo"]) == s["points"][0]["tps_user"]["mean_ci"][0]
    assert rows[0]["itl_s_mean_ci_lo"] == ""  # None -> empty cell
    assert (rows[0]["errors_http_5xx"], rows[0]["errors_connect"], rows[1]["errors_http_5xx"]) == (
        "1",
        "0",
        "0",
    )
    assert rows[0]["concurrency"] == "4" and rows[0]["rate"] == ""
    assert rows[1]["rate"] == "2.0"
    assert " | " in rows[0]["warnings"]

    df = pd.read_csv(io.BytesIO(to_csv(s)))
    assert df["output_tps"].tolist() == [14.0, s["points"][1]["output_tps"]]
    assert df["ttft_s_p99"].dtype == float


def test_csv_of_an_empty_run_still_has_the_header() -> None:
    df = pd.read_csv(io.BytesIO(to_csv(summarize_run([], run_info={}, slo={}))))
    assert len(df) == 0
    assert {"level", "ttft_s_p50", "tps_user_p50_ci_hi", "output_tps", "goodput"} <= set(df.columns)


def test_run_document_and_json_round_trip(tmp_path: Path) -> None:
    s = run_summary()
    assert s["schema"] == 1
    assert s["tool"] == {"name": "tpsbench", "version": tpsbench.__version__}
    assert s["slo"] == SLO and s["run"]["name"] == "demo"
    data = to_json(s)
    assert data.endswith(b"\n")
    (tmp_path / "summary.json").write_bytes(data)
    assert files.read_summary(tmp_path / "summary.json") == s


def write_jsonl(path: Path, records: list[RequestRecord], tail: str = "") -> None:
    lines = [json.dumps(files.record_line(r)) + "\n" for r in records]
    path.write_text("".join(lines) + tail)


def test_read_records_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "requests.jsonl"
    write_jsonl(path, level0())
    back = list(read_records(path))
    assert back == level0()
    assert summarize_level(back, level_index=0, level=CLOSED, slo=SLO, gpus=2) == point0()


def test_read_records_tolerates_a_truncated_last_line(tmp_path: Path) -> None:
    path = tmp_path / "requests.jsonl"
    write_jsonl(path, level0(), tail='{"request_id": 9, "level": 0, "send_ns": 12')
    with pytest.warns(RuntimeWarning, match=r"requests.jsonl:6: skipped a truncated last line"):
        back = list(read_records(path))
    assert back == level0()


def test_read_records_tolerates_a_cut_inside_a_utf8_character(tmp_path: Path) -> None:
    path = tmp_path / "requests.jsonl"
    write_jsonl(path, level0()[:2])
    with path.open("ab") as f:
        f.write('{"error_detail": "é'.encode()[:-1])
    with pytest.warns(RuntimeWarning):
        assert len(list(read_records(path))) == 2


def test_read_records_rejects_corruption_in_the_middle(tmp_path: Path) -> None:
    path = tmp_path / "requests.jsonl"
    records = level0()
    write_jsonl(path, records[:1], tail="not json\n\n")
    with path.open("a") as f:
        f.write(json.dumps(files.record_line(records[1])) + "\n")
    with pytest.raises(ValueError, match=r"requests.jsonl:2: not a JSON record"):
        list(read_records(path))


@pytest.mark.parametrize("module", [metrics, stats, summary, files])
def test_docstring_examples(module: Any) -> None:
    assert doctest.testmod(module).failed == 0


def test_client_bound_only_from_client_side_evidence() -> None:
    """A level whose every request failed burns CPU re-sending: that is no evidence about the client."""
    failed = [rec(i, 100 * i, [], end_ms=100 * i + 1, error=ErrorKind.CONNECT) for i in range(10)]
    p = summarize_level(
        failed, level_index=0, level=CLOSED, slo={}, gpus=None, self_check={"cpu_percent": 100.0}
    )
    assert p["self_check"]["cpu_percent_ok"] == 0.0 and p["self_check"]["client_bound"] is False
    assert not any(c["cause"] == "client_bound" for c in p["warning_causes"])
    assert p["first_error"] == {"kind": "connect", "status": None, "detail": ""}
    busy = point0(self_check={"cpu_percent": 100.0})  # 4 of 5 records ok: 80% of a core on streams
    assert (
        busy["self_check"]["cpu_percent_ok"] == pytest.approx(80.0) and not busy["self_check"]["client_bound"]
    )


def test_low_concurrency_in_flight_and_a_stopped_level_warn() -> None:
    p = point0(self_check={"stopped": "stopped after 20 consecutive connect failures and no success"})
    details = {c["cause"]: c["detail"] for c in p["warning_causes"]}
    # in flight over the 2 s window: the warmup's 2 s inside it + the measured 2.3 s busy = 2.15 of 4
    assert p["self_check"]["in_flight_mean"] == pytest.approx((2.0 + 0.6 + 1.0 + 0.2 + 0.5) / 2.0)
    assert details["low_concurrency"] == "2.1 of 4"
    assert "cooldown: true" in summary.WARNING_CAUSES["low_concurrency"]
    assert details["stopped"].startswith("stopped after 20 consecutive connect failures")


def test_resent_is_recorded_counted_and_old_files_without_it_still_read(tmp_path: Path) -> None:
    records = level0()
    records[0].resent = records[1].resent = True  # a warmup (not counted) and a measured request
    path = tmp_path / "requests.jsonl"
    write_jsonl(path, records)
    assert json.loads(path.read_text().splitlines()[1])["resent"] is True
    assert list(read_records(path)) == records
    assert summarize_level(records, level_index=0, level=CLOSED, slo={}, gpus=None)["resent"] == 1
    assert point0()["resent"] == 0
    old = tmp_path / "old.jsonl"  # a file written before the field existed
    old.write_text("".join(json.dumps({k: v for k, v in files.record_line(r).items() if k != "resent"})
                           + "\n" for r in level0()))  # fmt: skip
    back = list(read_records(old))
    assert back == level0() and not any(r.resent for r in back)


def test_a_late_loop_that_used_little_cpu_is_said_to_be_the_hosts() -> None:
    from tpsbench.results.summary import client_bound_reasons

    starved = client_bound_reasons({"loop_lag_p99_s": 0.075, "cpu_percent": 11.0})
    assert starved[0].startswith("event-loop lag p99 75.0 ms") and "only 11% of a core" in starved[1]
    busy = client_bound_reasons({"loop_lag_p99_s": 0.075, "cpu_percent": 95.0})
    assert not any("other processes" in r for r in busy)
    assert client_bound_reasons({"loop_lag_p99_s": 0.001, "cpu_percent": 5.0}) == []


def test_queue_wait_under_a_cap_is_not_the_clients_lateness() -> None:
    # Each request waited 5 s for a free slot (max_concurrency), then left 1 ms after its slot freed: the
    # scheduling lag (5.001 s) shows the coordinated omission, the client itself was 1 ms late.
    records = []
    for i in range(3):
        r = rec(
            i, 1000 * i + 5001, [(1000 * i + 5100, 1), (1000 * i + 5200, 9)], usage=10, scheduled_ms=1000 * i
        )
        r.level, r.queue_ns = 1, 5000 * MS
        records.append(r)
    assert metrics.sched_lag_s(records[0]) == pytest.approx(5.001)
    assert metrics.dispatch_lag_s(records[0]) == pytest.approx(0.001)
    p = summarize_level(records, level_index=1, level=OPEN, slo={}, gpus=None)
    assert p["sched_lag_s"]["p50"] == pytest.approx(5.001) and p["queue_s"]["p50"] == pytest.approx(5.0)
    assert p["self_check"]["sched_lag_p99_s"] == pytest.approx(0.001)
    assert p["self_check"]["client_bound"] is False
