"""The user's headline marks (scenario ``report.marks``, ``--mark``): validated like every scenario field,
parsed from the command line with one-line errors, read against by the headline and drawn on the Pareto
chart, beside the published marks for a reference run."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tpsbench.cli.app import app
from tpsbench.config.errors import ScenarioError
from tpsbench.config.loader import load_scenario
from tpsbench.config.report import Mark, parse_mark
from tpsbench.report import charts
from tpsbench.report import headline as words
from tpsbench.report.chartkit import figure_bytes
from tpsbench.report.markdown import to_markdown
from tpsbench.report.render import build_charts, overlays_for
from tpsbench.results.synthetic import write_synthetic_run
from tpsbench.results.views import Run, open_run

RESULTS = Path(__file__).resolve().parents[1] / "results"
runner = CliRunner()
SCENARIO = """name: m
load:
  - concurrency: 1
    requests: 2
report:
  marks:
    - name: vendor X
      tps_usr: 800
    - name: SLA
    - {name: ok, output_tps: -5}
"""


def test_scenario_marks_are_validated_with_file_line_field_and_hint(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text(SCENARIO)
    with pytest.raises(ScenarioError) as e:
        load_scenario(tmp_path / "s.yaml")
    lines = str(e.value).splitlines()
    f = str(tmp_path / "s.yaml")
    assert lines[0] == f"{f}:8: report.marks[0].tps_usr: unknown key 'tps_usr' (did you mean 'tps_user'?)"
    assert lines[1].startswith(f"{f}:9: report.marks[1]: a mark needs 'tps_user', 'output_tps' or both")
    assert lines[2] == f"{f}:10: report.marks[2].output_tps: expected a number > 0, got -5"
    good = SCENARIO.split("report:")[0] + "report:\n  marks: [{name: vendor X, tps_user: 800, note: claim}]\n"
    (tmp_path / "s.yaml").write_text(good)
    assert load_scenario(tmp_path / "s.yaml").report.marks == [
        Mark(name="vendor X", tps_user=800, note="claim")
    ]


def test_command_line_marks_parse_or_say_what_was_expected() -> None:
    assert parse_mark("vendor X:tps_user=800") == Mark(name="vendor X", tps_user=800)
    assert parse_mark("a:b:output_tps=5e4, note=SLA") == Mark(name="a:b", output_tps=50000, note="SLA")
    # a comma starts a key only before KEY=: a note keeps its commas and colons, wherever it stands
    said = "blog, May 2025: p50, batch 1"
    assert parse_mark(f"vendor X:tps_user=800,note={said}") == Mark(name="vendor X", tps_user=800, note=said)
    assert parse_mark(f"SLA:note={said}, output_tps=5e4") == Mark(name="SLA", output_tps=5e4, note=said)
    for text, says in (
        ("tps_user=800", "expected NAME:KEY=VALUE"),
        ("x:tps_usr=3", "did you mean 'tps_user'?"),
        ("x:tps_user=fast", "--mark tps_user: expected a number > 0, got 'fast'"),
        ("x:tps_user=-1", "--mark tps_user: expected a number > 0, got -1.0"),
        ("x:note=hi", "a mark needs 'tps_user', 'output_tps' or both"),
        ("x:tps_user=1,tps_usr=3", "did you mean 'tps_user'?"),
    ):
        with pytest.raises(ScenarioError, match=r"^command line: --mark") as e:
            parse_mark(text)
        assert says in str(e.value), text


def test_headline_reads_a_run_against_the_marks(tmp_path: Path) -> None:
    x, sla = Mark(name="vendor X", tps_user=2000), Mark(name="SLA", output_tps=10_000)
    ref = open_run(RESULTS / "baseline")  # reference endpoint: the record first, then the user's marks
    line = words.headline(ref, [x, sla]) or ""
    best, peak = line.split(" · ")
    assert best.startswith(
        "best TPS/user 1,061 (c=1) = 102.2% of the 1,038 record, 53.0% of vendor X (2,000)"
    )
    assert peak.endswith("of 72,000, 48.1% of SLA (10,000)"), peak
    other = open_run(write_synthetic_run(tmp_path / "other", seed=1, loads=(4,), n=20))
    assert not other.reference_endpoint
    assert "%" not in (words.headline(other) or "")  # no marks, no comparison
    marked = words.headline(other, [sla]) or ""
    assert "record" not in marked and "of SLA (10,000)" in marked


def _svg(fig: object) -> str:
    return figure_bytes(fig, "svg").decode()  # type: ignore[arg-type]


def test_pareto_draws_scenario_and_command_line_marks(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    shutil.copytree(RESULTS / "baseline", run_dir, ignore=shutil.ignore_patterns("report"))
    with (run_dir / "scenario.yaml").open("a") as f:
        f.write("report:\n  marks:\n    - {name: vendor X, tps_user: 900}\n")
    run = open_run(run_dir)
    notes: list[str] = []
    overlays = overlays_for(run, notes, marks=[Mark(name="SLA", output_tps=4000)])
    assert [m.name for m in overlays.marks] == ["vendor X", "SLA"] and overlays.published and not notes
    svg = _svg(charts.pareto_figure([charts.Series(run.name, run)], overlays=overlays))
    assert "vendor X 900" in svg and "SLA 4,000" in svg and "NVIDIA 1,038" in svg  # beside the published
    assert "of vendor X (900)" in svg and "of SLA (4,000)" in svg and "marks given for this report" in svg
    # without the reference overlays the marks stay, the published ones go
    svg = _svg(charts.pareto_figure([charts.Series(run.name, run)], overlays=overlays_for(run, [], False)))
    assert "vendor X 900" in svg and "NVIDIA" not in svg
    built, _ = build_charts(run, marks=[Mark(name="SLA", output_tps=4000)])
    assert "SLA" in built[0].caption and "vendor X" in built[0].caption
    # a broken report section costs a note, not the report
    (run_dir / "scenario.yaml").write_text((run_dir / "scenario.yaml").read_text().replace("900", "-1"))
    notes = []
    assert overlays_for(open_run(run_dir), notes).marks == []
    assert notes and "report.marks were left out" in notes[0]


def test_cli_mark_errors_are_bad_input(tmp_path: Path) -> None:
    res = runner.invoke(app, ["report", str(RESULTS / "baseline"), "--mark", "vendor X"])
    assert res.exit_code == 2 and res.stderr.startswith(
        "error: command line: --mark: expected NAME:KEY=VALUE"
    )
    args = ["compare", str(RESULTS / "baseline"), str(RESULTS / "baseline"), "--out", str(tmp_path)]
    res = runner.invoke(app, [*args, "--mark", "x:tps_user"])
    assert res.exit_code == 2 and "expected NAME:KEY=VALUE" in res.stderr
    assert not list(tmp_path.iterdir())  # refused before a directory is made
    run_dir = tmp_path / "run"
    shutil.copytree(RESULTS / "baseline", run_dir, ignore=shutil.ignore_patterns("report"))
    res = runner.invoke(app, ["report", str(run_dir), "--mark", "SLA:output_tps=4000"])
    assert res.exit_code == 0, res.output
    assert "SLA 4,000" in (run_dir / "report" / "pareto.svg").read_text()
    page = (run_dir / "report" / "report.html").read_text()
    assert "<h2>Against the marks</h2>" in page and "<td>SLA</td><td>output TPS</td><td>4,000</td>" in page
    assert "| SLA | output TPS | 4,000 |" in (run_dir / "report" / "summary.md").read_text()
    res = runner.invoke(app, [*args, "--chart", "--mark", "vendor X:tps_user=700"])
    assert res.exit_code == 0, res.output
    (out,) = [d for d in tmp_path.iterdir() if d.name.endswith("compare")]
    assert "vendor X 700" in (out / "compare_pareto.svg").read_text()
    assert "marks given for this report (vendor X)" in (out / "compare.html").read_text()
    md = (out / "compare.md").read_text()
    assert "| vendor X | TPS/user p50 | 700 | 1,061 (151.5%) | 1,061 (151.5%) |" in md, md


# Two levels of exact numbers: the best TPS/user at c=1, the peak output TPS at c=64.
EXACT = {
    "schema": 1,
    "run": {"name": "r1", "reference_endpoint": False},
    "points": [
        {"concurrency": 1, "tps_user": {"p50": 1000.0}, "output_tps": 990.0},
        {"concurrency": 64, "tps_user": {"p50": 250.0}, "output_tps": 16000.0},
    ],
}
MARKS = [
    Mark(name="vendor X", tps_user=800, note="blog, May"),
    Mark(name="SLA", tps_user=1250, output_tps=20000),
]


def test_marks_table_is_the_headlines_reading() -> None:
    run = Run.from_summary(EXACT)
    rows, notes = words.marks_table(run, MARKS)
    assert rows == [
        ["vendor X", "TPS/user p50", "800", "1,000", "c=1", "125.0%"],
        ["SLA", "TPS/user p50", "1,250", "1,000", "c=1", "80.0%"],
        ["SLA", "output TPS", "20,000", "16,000", "c=64", "80.0%"],
    ]
    assert notes == ["vendor X: blog, May"]
    assert words.headline(run, MARKS) == (
        "best TPS/user 1,000 (c=1) = 125.0% of vendor X (800), 80.0% of SLA (1,250)"
        " · peak output TPS 16,000 (c=64) = 80.0% of SLA (20,000)"
    )
    assert words.marks_table(run) == ([], [])  # nothing to read against: no table
    ref = Run.from_summary({**EXACT, "run": {"name": "r1", "reference_endpoint": True}})
    rows, notes = words.marks_table(ref, MARKS[:1])
    assert [r[0] for r in rows] == ["NVIDIA record", "vendor X", "NVIDIA per server"]
    assert rows[0][2:] == ["1,038", "1,000", "c=1", "96.3%"] and rows[2][2:] == [
        "72,000",
        "16,000",
        "c=64",
        "22.2%",
    ]
    assert notes[0].startswith("NVIDIA record: Llama 4 Maverick output speed") and len(notes) == 3


def test_summary_md_states_the_marks_in_a_table_that_reads_at_80_columns() -> None:
    md = to_markdown(EXACT, MARKS)
    lines = md.splitlines()
    start = lines.index("**Against the marks**")
    assert lines[start + 2 : start + 8] == [
        "| mark | best | mark value | run | at | run/mark |",
        "|---|---|--:|--:|--:|--:|",
        "| vendor X | TPS/user p50 | 800 | 1,000 | c=1 | 125.0% |",
        "| SLA | TPS/user p50 | 1,250 | 1,000 | c=1 | 80.0% |",
        "| SLA | output TPS | 20,000 | 16,000 | c=64 | 80.0% |",
        "",
    ]
    assert lines[start + 8] == "- vendor X: blog, May"
    assert start < lines.index(
        "| level | requests ok/measured | TTFT p50 | TTFT p99 | TPS/user p50 | TPS/user p10 "
        "| output TPS | errors |"
    )  # the result first, then the levels
    long = Mark(name="x" * 28, tps_user=1_250.5, output_tps=150_000)  # a long name (40 at most)
    rows = [ln for ln in to_markdown(EXACT, [long]).splitlines() if ln.startswith("| xxx")]
    assert len(rows) == 2 and max(len(r) for r in rows) <= 80, rows
    assert "Against the marks" not in to_markdown(EXACT)


def test_compare_reads_every_run_against_the_marks() -> None:
    a = Run.from_summary(EXACT)
    b = Run.from_summary({**EXACT, "run": {"name": "r2", "reference_endpoint": True}})
    headers, rows = words.marks_by_run([a, b], ["main", "PR"], MARKS[:1])
    assert headers == ["mark", "best", "mark value", "main", "PR"]
    assert rows == [
        ["vendor X", "TPS/user p50", "800", "1,000 (125.0%)", "1,000 (125.0%)"],
        ["NVIDIA record", "TPS/user p50", "1,038", "—", "1,000 (96.3%)"],
        ["NVIDIA per server", "output TPS", "72,000", "—", "16,000 (22.2%)"],
    ]


def test_compare_reads_the_runs_against_marks_without_a_chart(tmp_path: Path) -> None:
    """``compare --mark`` without ``--chart``: the terminal and ``compare.md`` read each run against it."""
    base = str(RESULTS / "baseline")
    mark = "vendor X:tps_user=700,note=blog, May 2025"
    res = runner.invoke(app, ["compare", base, base, "--out", str(tmp_path), "--mark", mark])
    assert res.exit_code == 0, res.output
    (out,) = tmp_path.iterdir()
    assert sorted(f.name for f in out.iterdir()) == ["compare.md"]
    md = (out / "compare.md").read_text()
    assert "| vendor X | TPS/user p50 | 700 | 1,061 (151.5%) | 1,061 (151.5%) |" in md, md
    assert "against the marks" in res.stdout
    row = next(line for line in res.stdout.splitlines() if "vendor X" in line)
    assert "700" in row and row.count("1,061 (151.5%)") == 2, res.stdout
