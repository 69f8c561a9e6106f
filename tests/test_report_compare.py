"""compare: relative differences against the first run, and refusing (or flagging) runs that differ."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from report_fixtures import synth_run

from tpsbench.report import NotComparable, Run, compare, compare_runs, compare_to_markdown

BASE = synth_run("base", concurrencies=(1, 8, 64), requests_per_level=12, osl=40).summary


def scaled(
    summary: dict[str, Any], name: str, *, tps: float = 1.0, out: float = 1.0, ttft: float = 1.0
) -> Run:
    """A copy of ``summary`` whose TPS/user, output TPS and TTFT blocks are scaled by known factors."""
    s = copy.deepcopy(summary)
    s["run"]["name"] = name
    for p in s["points"]:
        for key, k in (("tps_user", tps), ("ttft_s", ttft)):
            block = p[key]
            for stat, v in list(block.items()):
                if stat != "n" and v is not None:
                    block[stat] = [x * k for x in v] if isinstance(v, list) else v * k
        p["output_tps"] *= out
    return Run.from_summary(s)


def test_relative_differences() -> None:
    a, b = Run.from_summary(BASE), scaled(BASE, "b", tps=1.1, out=0.8, ttft=2.0)
    result = compare([a, b], ["A", "B"])
    for load in ("c=1", "c=8", "c=64"):
        assert result.delta(load, "TPS/user p50", "B") == pytest.approx(0.10)
        assert result.delta(load, "TPS/user p10", "B") == pytest.approx(0.10)
        assert result.delta(load, "output TPS", "B") == pytest.approx(-0.20)
        assert result.delta(load, "TTFT p50", "B") == pytest.approx(1.0)
        assert result.delta(load, "TTFT p99", "B") == pytest.approx(1.0)
        assert result.delta(load, "TPS/user p50", "A") is None  # the baseline
    md = compare_to_markdown(result)
    assert "(+10.0%" in md and "(-20.0%)" in md and "(+100.0%" in md


def test_overlapping_intervals_are_marked_as_possible_noise() -> None:
    a, b = Run.from_summary(BASE), scaled(BASE, "b", tps=1.0001, ttft=5.0)
    row = next(r for r in compare([a, b]).rows if r.load == "c=1" and r.metric == "TPS/user p50")
    assert row.cells[1].noise is True and row.cells[1].display.endswith("≈)")
    row = next(r for r in compare([a, b]).rows if r.load == "c=1" and r.metric == "TTFT p50")
    assert row.cells[1].noise is False and "≈" not in row.cells[1].display


def test_loads_measured_by_one_run_only() -> None:
    a = Run.from_summary(BASE)
    b = Run.from_summary(synth_run("b", concurrencies=(8, 16), requests_per_level=12, osl=40).summary)
    result = compare([a, b])
    assert [r.load for r in result.rows][::6] == ["c=1", "c=8", "c=64", "c=16"]
    c1 = next(r for r in result.rows if r.load == "c=1" and r.metric == "output TPS")
    assert c1.cells[1].value is None and c1.cells[1].display == "—"
    c16 = next(r for r in result.rows if r.load == "c=16" and r.metric == "output TPS")
    assert c16.cells[0].value is None and c16.cells[1].delta is None


def test_zero_baseline_gives_no_relative_change() -> None:
    a = Run.from_summary(BASE)
    b = Run.from_summary(
        synth_run("b", concurrencies=(1, 8, 64), requests_per_level=12, osl=40, errors={0: 3}).summary
    )
    row = next(r for r in compare([a, b]).rows if r.load == "c=1" and r.metric == "error rate")
    assert row.cells[1].value == pytest.approx(0.25) and row.cells[1].delta is None


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"osl": 80}, "workload ISL/OSL 1,000/80 vs 1,000/40 tokens"),
        ({"isl": 2000}, "workload ISL/OSL 2,000/40 vs 1,000/40 tokens"),
        ({"model": "llama-3-8b"}, "model 'llama-3-8b' vs 'llama-4-maverick'"),
        ({"api": "completions"}, "API 'completions' vs 'chat'"),
    ],
)
def test_non_comparable_runs_are_refused_then_flagged(change: dict[str, Any], reason: str) -> None:
    a = Run.from_summary(BASE)
    kwargs: dict[str, Any] = {"concurrencies": (1, 8, 64), "requests_per_level": 12, "osl": 40, **change}
    b = Run.from_summary(synth_run("other", **kwargs).summary)
    with pytest.raises(NotComparable) as e:
        compare([a, b])
    assert e.value.reasons == [f"other differs from base: {reason}"]
    assert str(e.value) == f"other differs from base: {reason}"
    forced = compare([a, b], force=True)
    assert forced.flags == {"other": reason}
    assert "other is not comparable" in compare_to_markdown(forced)


def test_labels() -> None:
    a = Run.from_summary(BASE)
    assert compare([a, a]).labels == ["base", "base (2)"]
    with pytest.raises(ValueError, match="2 labels for 3 runs"):
        compare([a, a, a], ["x", "y"])
    with pytest.raises(ValueError, match="at least two"):
        compare([a])


def test_compare_runs_writes_one_chart_and_one_table(tmp_path: Path) -> None:
    dirs = []
    for name, summary in (("a", BASE), ("b", scaled(BASE, "b", tps=1.2).summary)):
        d = tmp_path / name
        d.mkdir()
        (d / "summary.json").write_text(json.dumps(summary), encoding="utf-8")
        dirs.append(d)
    out = tmp_path / "cmp"
    result = compare_runs(dirs, ["main", "PR"], out)
    names = sorted(p.name for p in result.files)
    assert names == ["compare.html", "compare.md", "compare_pareto.png", "compare_pareto.svg"]
    assert all(p.stat().st_size > 0 for p in result.files)
    assert (out / "compare_pareto.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = (out / "compare.md").read_text(encoding="utf-8")
    assert md == compare_to_markdown(result)  # what `tpsbench compare` prints
    assert "main vs PR" in md and "(+20.0%" in md
    html = (out / "compare.html").read_text(encoding="utf-8")
    assert html.count("data:image/png;base64,") == 1 and "(+20.0%" in html


def test_compare_runs_refuses_before_writing(tmp_path: Path) -> None:
    dirs = []
    for name, osl in (("a", 40), ("b", 80)):
        d = tmp_path / name
        d.mkdir()
        summary = synth_run(name, concurrencies=(1, 8), requests_per_level=6, osl=osl).summary
        (d / "summary.json").write_text(json.dumps(summary), encoding="utf-8")
        dirs.append(d)
    with pytest.raises(NotComparable, match="ISL/OSL"):
        compare_runs(dirs, None, tmp_path / "cmp")
    assert not (tmp_path / "cmp").exists()
    result = compare_runs(dirs, None, tmp_path / "cmp", force=True, formats=("md",))
    assert result.flags == {"b": "workload ISL/OSL 1,000/80 vs 1,000/40 tokens"}
    assert [p.name for p in result.files] == ["compare.md"]
