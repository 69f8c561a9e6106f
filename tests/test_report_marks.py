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
from tpsbench.report.render import build_charts, overlays_for
from tpsbench.results.synthetic import write_synthetic_run
from tpsbench.results.views import open_run

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
    for text, says in (
        ("tps_user=800", "expected NAME:KEY=VALUE"),
        ("x:tps_usr=3", "did you mean 'tps_user'?"),
        ("x:tps_user=fast", "--mark tps_user: expected a number > 0, got 'fast'"),
        ("x:tps_user=-1", "--mark tps_user: expected a number > 0, got -1.0"),
        ("x:note=hi", "a mark needs 'tps_user', 'output_tps' or both"),
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
    res = runner.invoke(app, [*args, "--mark", "x:tps_user=1"])
    assert res.exit_code == 2 and "add --chart" in res.stderr
    assert not list(tmp_path.iterdir())  # refused before a directory is made
    run_dir = tmp_path / "run"
    shutil.copytree(RESULTS / "baseline", run_dir, ignore=shutil.ignore_patterns("report"))
    res = runner.invoke(app, ["report", str(run_dir), "--mark", "SLA:output_tps=4000"])
    assert res.exit_code == 0, res.output
    assert "SLA 4,000" in (run_dir / "report" / "pareto.svg").read_text()
    page = (run_dir / "report" / "report.html").read_text()
    assert "Against the marks: best TPS/user" in page and "of SLA (4,000)" in page
    res = runner.invoke(app, [*args, "--chart", "--mark", "vendor X:tps_user=700"])
    assert res.exit_code == 0, res.output
    (out,) = [d for d in tmp_path.iterdir() if d.name.endswith("compare")]
    assert "vendor X 700" in (out / "compare_pareto.svg").read_text()
    assert "marks given for this report (vendor X)" in (out / "compare.html").read_text()
