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

from typing import TYPE_CHECKING, Any

from tpsbench.report.compare import CompareResult, NotComparable, compare
from tpsbench.report.html import Image, to_html
from tpsbench.report.markdown import compare_to_markdown, to_markdown
from tpsbench.report.pareto import dominates, pareto_frontier
from tpsbench.results.views import Run, open_run

if TYPE_CHECKING:
    from tpsbench.report.render import compare_runs, render_report

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

_DRAWN = frozenset({"compare_runs", "render_report"})  # in report/render.py, which imports matplotlib


def __getattr__(name: str) -> Any:
    """``render_report`` and ``compare_runs`` are render.py's own, imported on first use (PEP 562), so
    their signatures are written once and importing the package does not import matplotlib."""
    if name in _DRAWN:
        from tpsbench.report import render

        return getattr(render, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
