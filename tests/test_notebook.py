"""The analysis notebook runs top to bottom on a run directory and agrees with the summary."""

from __future__ import annotations

from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

from report_fixtures import write_run  # noqa: E402

NOTEBOOK = Path(__file__).parent.parent / "notebooks" / "analyse_runs.ipynb"


def test_notebook_executes_on_a_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run = write_run(tmp_path / "run-a")
    monkeypatch.setenv("TPSBENCH_RUNS", str(run))
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbclient.NotebookClient(nb, timeout=120, resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]


def test_notebook_reads_runs_through_the_package() -> None:
    """No hand-written reader: the notebook opens runs with open_run (every format, one torn-line rule)."""
    nb = nbformat.read(NOTEBOOK, as_version=4)
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    assert "open_run(" in code
    for needle in ('"summary.json"', '"requests.jsonl"', "json.load", "read_text("):
        assert needle not in code, f"the notebook reads run files by hand ({needle})"
