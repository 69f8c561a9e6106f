"""Reports of a run directory: Pareto charts, an HTML page, a Markdown summary, and run comparisons.

Reads only the run-directory contract, through its views (:mod:`tpsbench.results.views`: summary.json,
optionally requests.jsonl and metadata.json); never the client or the runner.

    >>> from tpsbench.report import render_report, compare_runs        # doctest: +SKIP
    >>> render_report(Path("results/run"))                             # doctest: +SKIP
    >>> compare_runs([Path("results/a"), Path("results/b")], None, Path("cmp"))  # doctest: +SKIP

Matplotlib is imported only when charts are drawn (``render_report``, ``compare_runs``), so the pure
serializers and the frontier stay cheap to import.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from pathlib import Path

from tpsbench.config.report import Mark
from tpsbench.report.compare import CompareResult, NotComparable, compare
from tpsbench.report.html import Image, to_html
from tpsbench.report.markdown import compare_to_markdown, to_markdown
from tpsbench.report.pareto import dominates, pareto_frontier
from tpsbench.results.views import Run, open_run

__all__ = [
    "CompareResult",
    "Image",
    "NotComparable",
    "Run",
    "compare",
    "compare_runs",
    "compare_to_markdown",
    "dominates",
    "open_run",
    "pareto_frontier",
    "render_report",
    "to_html",
    "to_markdown",
]


def render_report(
    run_dir: Path,
    *,
    formats: Collection[str] = ("png", "svg", "html", "md"),
    reference: bool | None = None,
    out_dir: Path | None = None,
    marks: Sequence[Mark] = (),
) -> list[Path]:
    """Render ``RUN_DIR/report/``: PNG and SVG charts, a self-contained ``report.html`` and ``summary.md``.
    Returns the paths written. See :func:`tpsbench.report.render.render_report`."""
    from tpsbench.report.render import render_report as _render

    return _render(run_dir, formats=formats, reference=reference, out_dir=out_dir, marks=marks)


def compare_runs(
    run_dirs: list[Path],
    labels: list[str] | None,
    out_dir: Path,
    *,
    force: bool = False,
    formats: Collection[str] = ("png", "svg", "html", "md"),
    reference: bool | None = None,
) -> CompareResult:
    """Compare run directories into ``out_dir``. See :func:`tpsbench.report.render.compare_runs`."""
    from tpsbench.report.render import compare_runs as _compare

    return _compare(run_dirs, labels, out_dir, force=force, formats=formats, reference=reference)
