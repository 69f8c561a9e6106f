"""Reading a run directory: the contract's fields, tolerance for what a killed run leaves, and redaction."""

from __future__ import annotations

import ast
import doctest
import importlib
import json
from pathlib import Path

import pytest
from report_fixtures import synth_run, write_run

import tpsbench.report as report_pkg
from tpsbench.core import fmt
from tpsbench.core.redact import REDACTED, redact, redact_url
from tpsbench.results.files import RunFileError, iter_record_lines
from tpsbench.results.views import Run, open_run

REPORT_MODULES = [
    "tpsbench.results.views",
    "tpsbench.core.fmt",
    "tpsbench.report.pareto",
    "tpsbench.report.tables",
    "tpsbench.report.markdown",
    "tpsbench.report.html",
]


@pytest.mark.parametrize("name", REPORT_MODULES)
def test_docstring_examples(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name))
    assert result.failed == 0


def test_reports_never_import_the_client_or_runner() -> None:
    forbidden = {
        "tpsbench.client.client",
        "tpsbench.load.runner",
        "tpsbench.client.transport.base",
        "tpsbench.client.sse",
    }
    for path in Path(report_pkg.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module:
                assert node.module not in forbidden, path
            elif isinstance(node, ast.Import):
                assert not {a.name for a in node.names} & forbidden, path


def test_load_run_reads_the_contract(tmp_path: Path) -> None:
    run = open_run(write_run(tmp_path / "r", concurrencies=(1, 8), requests_per_level=10, osl=40))
    assert run.name == "r"
    assert run.model == "llama-4-maverick" and run.api == "chat" and run.gpus == 8
    assert run.isl_osl == (1000.0, 40.0)
    assert [p.label for p in run.points] == ["c=1", "c=8"]
    assert len(run.measured(1)) == 10  # warmup excluded
    d = run.points[0].dist("tps_user")
    assert d is not None and d.n == 10 and d.p50_ci is not None
    assert d.p50_ci[0] <= (d.get("p50") or 0) <= d.p50_ci[1]


def test_summary_alone_is_enough(tmp_path: Path) -> None:
    rd = write_run(tmp_path / "r", concurrencies=(2,), requests_per_level=5, osl=20, with_requests=False)
    (rd / "metadata.json").unlink()
    run = open_run(rd)
    assert run.records == () and not run.has_records and run.metadata == {}
    assert run.points[0].stat("ttft_s", "p50") is not None


def test_torn_last_line_is_skipped_other_bad_lines_raise(tmp_path: Path) -> None:
    p = tmp_path / "requests.jsonl"
    p.write_text('{"a": 1}\n{"a": 2}\n{"a": 3, "b"', encoding="utf-8")
    with pytest.warns(RuntimeWarning, match=r"requests.jsonl:3: skipped a truncated last line"):
        assert [line for _, line in iter_record_lines(p)] == [{"a": 1}, {"a": 2}]
    p.write_text('{"a": 1}\nnot json\n{"a": 3}\n', encoding="utf-8")
    with pytest.raises(RunFileError, match=r"requests.jsonl:2: not a JSON record"):
        list(iter_record_lines(p))


def test_schema_is_checked(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="schema 3 is newer"):
        Run.from_summary({"schema": 3, "points": []})
    with pytest.raises(ValueError, match="no 'schema' field"):
        Run.from_summary({"points": []})
    with pytest.raises(RunFileError, match=r"summary\.json: not found"):
        open_run(tmp_path)


def test_workload_distributions_use_their_mean() -> None:
    run = Run.from_summary(
        {
            "schema": 1,
            "run": {"workload": {"input_tokens": {"mean": 900, "std": 50}, "output_tokens": 300}},
            "points": [],
        }
    )
    assert run.isl_osl == (900.0, 300.0)


def test_missing_and_null_fields_do_not_break_a_point() -> None:
    run = Run.from_summary(
        {
            "schema": 1,
            "points": [{"level": 3, "rate": 2.5, "tps_user": {"n": 0, "p50": None}, "errors": None}],
        }
    )
    p = run.points[0]
    assert p.label == "rate=2.5/s"
    assert p.dist("tps_user") is None and p.dist("ttft_s") is None
    assert p.errors == {} and p.warnings == []
    assert Run.from_summary({"schema": 1, "points": [{"level": 4}]}).points[0].label == "level 4"


def test_warnings_recorded_and_derived() -> None:
    summary = synth_run("w", concurrencies=(1, 2, 4), requests_per_level=6, osl=20, errors={1: 2}).summary
    points = summary["points"]
    points[0]["warnings"] = []  # a writer that flagged the level but worded nothing
    points[0]["self_check"]["client_bound"] = True
    points[1]["warnings"] = ["The client could not keep up", "2 of 6 failed"]
    points[1]["self_check"]["client_bound"] = True
    del points[2]["warnings"]  # a summary from a writer that does not word its own warnings
    points[2]["errors"] = {"timeout_request": 1}
    points[2]["short_outputs"] = 3
    points[2]["token_sources"] = {"usage": 3, "estimate": 3}
    w = [p.warnings for p in Run.from_summary(summary).points]
    assert len(w[0]) == 1 and w[0][0].startswith("client-bound (self_check.client_bound)")
    assert w[1] == ["The client could not keep up", "2 of 6 failed"]  # recorded, and not repeated
    assert w[2][0] == "1 failed requests (timeout_request 1)"
    assert "3 requests ended before" in w[2][1] and "estimated" in w[2][2]


def test_redaction() -> None:
    meta = {
        "api_key": "sk-abcdefghijklmnop",
        "api_key_env": "OPENAI_API_KEY",  # the variable's name is not a secret
        "endpoint": {
            "headers": {"Authorization": "Bearer xyz123", "X-Trace": "ok"},
            "base_url": "https://user:hunter2@api.example.com/v1?api_key=abc&region=eu",
        },
        "output_tokens": 100,
        "notes": ["token sk-live_0123456789abcdef leaked in a note"],
    }
    out = redact(meta)
    text = json.dumps(out)
    for secret in ("sk-abcdefghijklmnop", "xyz123", "hunter2", "api_key=abc", "sk-live_0123456789abcdef"):
        assert secret not in text
    assert out["api_key"] == REDACTED and out["api_key_env"] == "OPENAI_API_KEY"
    assert out["endpoint"]["headers"]["X-Trace"] == "ok" and out["output_tokens"] == 100
    assert "region=eu" in out["endpoint"]["base_url"] and "api.example.com" in out["endpoint"]["base_url"]
    assert redact_url("http://127.0.0.1:8000/v1") == "http://127.0.0.1:8000/v1"


def test_number_formats() -> None:
    assert fmt.seconds(0.0492) == "49.2 ms" and fmt.seconds(1.234) == "1.23 s" and fmt.seconds(None) == "—"
    assert fmt.seconds_with_ci(0.0492, (0.048, 0.0509)) == "49.2 ms [48.0–50.9]"
    assert fmt.with_ci(11234.4, (11000.0, 11500.0)) == "11,234 [11,000–11,500]"
    assert (
        fmt.tps(2.714) == "2.71"
        and fmt.percent(0.0112) == "1.1%"
        and fmt.percent(-0.1, signed=True) == "-10.0%"
    )
    assert fmt.tokens_short(2000) == "2k" and fmt.tokens_short(500) == "500"
