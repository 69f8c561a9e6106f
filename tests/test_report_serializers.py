"""Markdown and HTML serializers: pure functions of a summary that carry its key figures, never a secret."""

from __future__ import annotations

import re
from typing import Any

import pytest
from report_fixtures import synth_run

from tpsbench.core import fmt as f
from tpsbench.report import Image, Run, to_html, to_markdown

PNG_1PX = bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c4890000000d49444154789c6300010000"
    "0500010d0a2db40000000049454e44ae426082"
)


@pytest.fixture(scope="module")
def summary() -> dict[str, Any]:
    s = synth_run(
        "sweep",
        concurrencies=(1, 8, 64),
        requests_per_level=12,
        osl=40,
        slo={"tps_user": {"p50": 150.0}, "ttft_s": {"p99": 2.0}},
        warnings={2: ["client CPU at 93%: client-bound"]},
        client_bound=(2,),
        errors={1: 2},
    ).summary
    s["run"]["endpoint"] = "https://bench:s3cr3t@api.example.com/v1?api_key=abc"
    return s


def key_figures(summary: dict[str, Any]) -> list[str]:
    """The figures a reader must find: per level TTFT p50/p99, TPS/user p50/p10, output TPS."""
    out = []
    for p in Run.from_summary(summary).points:
        out += [
            f.seconds(p.stat("ttft_s", "p50")),
            f.seconds(p.stat("ttft_s", "p99")),
            f.tps(p.stat("tps_user", "p50")),
            f.tps(p.stat("tps_user", "p10")),
            f.tps(p.output_tps),
        ]
    return out


def test_markdown_table(summary: dict[str, Any]) -> None:
    md = to_markdown(summary)
    lines = md.splitlines()
    header = next(ln for ln in lines if ln.startswith("| level"))
    assert [c.strip() for c in header.strip("|").split("|")] == [
        "level",
        "requests ok/measured",
        "TTFT p50",
        "TTFT p99",
        "TPS/user p50",
        "TPS/user p10",
        "output TPS",
        "errors",
    ]
    rows = [ln for ln in lines if re.match(r"\| c=\d+ \|", ln)]
    assert [r.split("|")[1].strip() for r in rows] == ["c=1", "c=8", "c=64"]
    assert all(len(r.split("|")) == len(header.split("|")) for r in rows)
    for fig in key_figures(summary):
        assert fig in md
    # Medians carry their interval and each row its N: never a bare number.
    p50 = Run.from_summary(summary).points[0].dist("tps_user")
    assert p50 is not None and p50.p50_ci is not None
    assert f.with_ci(p50.get("p50"), p50.p50_ci) in md
    assert "| 12/12 |" in md and "| 10/12 |" in md and "2 (16.7%)" in md
    assert "SLO: TPS/user p50 ≥ 150 tokens/s · TTFT p99 ≤ 2.00 s" in md
    # the summary writer's own warnings (real summarize_level output), each under its level
    n_warnings = sum(len(p.warnings) for p in Run.from_summary(summary).points)
    assert f"⚠ {n_warnings} warnings" in md
    assert "- c=8: 2 of 12 failed: http_5xx 2" in md
    assert "- c=64: client CPU at 93%: client-bound" in md


def test_many_warnings_are_folded(summary: dict[str, Any]) -> None:
    points = [{**p, "warnings": ["a", "b"], "self_check": {}} for p in summary["points"]]
    s = {**summary, "points": points}
    md = to_markdown(s)
    assert "<details><summary><b>⚠ 6 warnings</b></summary>" in md and md.count("\n- c=") == 6


def test_markdown_hides_credentials(summary: dict[str, Any]) -> None:
    md = to_markdown(summary)
    assert "s3cr3t" not in md and "api_key=abc" not in md and "api.example.com" in md


def test_markdown_of_an_empty_summary() -> None:
    md = to_markdown({"schema": 1, "run": {"name": "x|y"}, "points": []})
    assert "No load points" in md


def test_html_holds_the_key_figures(summary: dict[str, Any]) -> None:
    page = to_html(summary, [Image("Pareto", PNG_1PX, "how to read it")], metadata={"host": "h1"})
    for fig in key_figures(summary):
        assert fig in page
    assert page.count('src="data:image/png;base64,') == 1
    assert "how to read it" in page and "<td>h1</td>" in page
    assert "client CPU at 93%: client-bound" in page and "2 of 12 failed: http_5xx 2" in page
    assert "TPS/user p50 ≥ 150 tokens/s" in page


def test_html_is_self_contained_escaped_and_redacted(summary: dict[str, Any]) -> None:
    s = {**summary, "run": {**summary["run"], "name": "<script>alert(1)</script>"}}
    meta = {"endpoint": {"headers": {"Authorization": "Bearer tok_123"}}, "api_key": "sk-0123456789abcdef"}
    page = to_html(s, [], metadata=meta, notes=["a note"])
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "tok_123" not in page and "sk-0123456789abcdef" not in page and "s3cr3t" not in page
    # Nothing is fetched from elsewhere: no external stylesheet, script or image.
    assert not re.search(r'(src|href)="(https?:)?//', page)
    assert "a note" in page
