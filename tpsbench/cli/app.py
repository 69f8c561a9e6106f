"""The ``tpsbench`` command line. The only module that imports typer; heavy libraries are imported inside the
commands so that ``tpsbench --help`` stays fast."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

if TYPE_CHECKING:
    from tpsbench.config.report import Mark
    from tpsbench.config.scenario import Scenario

app = typer.Typer(
    help="Measure what a user of an LLM endpoint feels (TTFT, TPS/user) and what the server delivers.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        from tpsbench import __version__

        typer.echo(f"tpsbench {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool | None,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit."),
    ] = None,
) -> None:
    """Measure what a user of an LLM endpoint feels (TTFT, TPS/user) and what the server delivers."""


DEFAULT_SCENARIO = "maverick-b200.yaml"
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130


def _default_scenario() -> Path:
    local = Path("scenarios") / DEFAULT_SCENARIO
    if local.exists():
        return local
    return Path(__file__).parent.parent / "data" / DEFAULT_SCENARIO


def _parse_int_list(text: str | None, option: str) -> list[int] | None:
    if text is None:
        return None
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise typer.BadParameter(
            f"expected comma-separated integers like 1,4,16, got {text!r}", param_hint=option
        ) from None
    if not values or any(v < 1 for v in values):
        raise typer.BadParameter(f"expected integers >= 1, got {text!r}", param_hint=option)
    return values


def _load(path: Path, **overrides: object):  # type: ignore[no-untyped-def]
    from tpsbench.config.errors import ScenarioError
    from tpsbench.config.loader import load_scenario
    from tpsbench.workload.levelwork import check_files

    try:
        scenario = load_scenario(path).with_overrides(**overrides)  # type: ignore[arg-type]
        check_files(scenario)  # data files (dataset, trace, prompts) read before any request
        return scenario
    except ScenarioError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_BAD_INPUT) from None


@app.command()
def validate(scenario: Annotated[Path, typer.Argument(help="Scenario YAML file.")]) -> None:
    """Check a scenario file without sending any request."""
    s = _load(scenario)
    for line in wrap_warnings(s):
        typer.echo(line, err=True)
    if s.sweep is not None:
        steps = ", ".join(s.sweep.level(v).label for v in s.sweep.values())
        cooled = ", each with cooldown" if s.sweep.cooldown else ""
        typer.echo(f"{scenario}: ok (sweep until the knee, at most: {steps}{cooled})")
        return
    levels = ", ".join(level.label + (" + cooldown" if level.cooldown else "") for level in s.fixed_levels)
    typer.echo(f"{scenario}: ok ({len(s.fixed_levels)} levels: {levels})")


@app.command()
def run(
    scenario: Annotated[
        Path | None, typer.Argument(help="Scenario YAML (default: scenarios/maverick-b200.yaml).")
    ] = None,
    endpoint: Annotated[str | None, typer.Option(help="Base URL, e.g. http://127.0.0.1:8000/v1.")] = None,
    model: Annotated[
        str | None, typer.Option(help="Model name (default: the scenario's, else /v1/models).")
    ] = None,
    unix_socket: Annotated[
        str | None,
        typer.Option(help="Connect through this Unix socket (a server on this host, e.g. vLLM's --uds)."),
    ] = None,
    out: Annotated[Path, typer.Option(help="Results root; each run gets a new directory.")] = Path("results"),
    name: Annotated[str | None, typer.Option(help="Run name (default: the scenario's name).")] = None,
    concurrency: Annotated[
        str | None, typer.Option(help="Replace the load levels by these concurrencies, e.g. 1,4,16.")
    ] = None,
    workers: Annotated[
        int | None, typer.Option(min=1, help="Load-generator processes (default: the scenario's, else 1).")
    ] = None,
    cluster: Annotated[
        str | None,
        typer.Option(
            help="Run the workers on Ray: 'local', 'auto' or an address (pip install 'tpsbench\\[ray]')."
        ),
    ] = None,
    report: Annotated[bool, typer.Option(help="Render the report when the run ends.")] = True,
    error_budget: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            max=1.0,
            help="Fraction of a level's measured requests that may fail with exit 0 "
            "(default: the scenario's error_budget, else 0.01).",
        ),
    ] = None,
    preflight: Annotated[
        bool, typer.Option(help="Send one unmeasured request before any level; exit 2 if it fails.")
    ] = True,
    repeat: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Run the whole plan N times (every level in order, then the scenario's repeat.cooldown_s); "
            "metrics get a run-level estimate with a CI across repeats (default: the scenario's repeat).",
        ),
    ] = None,
) -> None:
    """Run a scenario: concurrent streaming requests per load level, raw records and a summary.

    Exit status: 0 every level within its error budget; 1 the run finished but a level exceeded the
    budget or had no successful request; 2 bad input or an unusable endpoint (nothing measured);
    130 interrupted (what finished is kept). The last lines say which, and why.
    """
    from rich.console import Console

    from tpsbench.cli.console import RichObserver, capacity_line, summary_table, warning_lines
    from tpsbench.core import eventloop
    from tpsbench.load.benchmark import run_benchmark
    from tpsbench.load.outcome import judge
    from tpsbench.load.preflight import EndpointUnusable
    from tpsbench.results.views import Run

    path = scenario or _default_scenario()
    overrides = {
        "base_url": endpoint,
        "model": model,
        "unix_socket": unix_socket,
        "error_budget": error_budget,
        "repeat": repeat,
    }
    s = _load(path, **overrides, concurrency=_parse_int_list(concurrency, "--concurrency"))
    if workers is not None:
        s = s.model_copy(update={"workers": workers})
    console = Console(soft_wrap=True)
    err = Console(stderr=True, soft_wrap=True)
    for line in wrap_warnings(s):
        err.print(line, markup=False, highlight=False)
    try:
        with RichObserver() as observer:
            outcome = eventloop.run(
                run_benchmark(
                    s,
                    out_root=out,
                    observer=observer,
                    run_name=name,
                    argv=_safe_argv(),
                    cluster=cluster,
                    preflight=preflight,
                )
            )
    except EndpointUnusable as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(EXIT_BAD_INPUT) from None
    except ValueError as exc:  # the API key variable is not set, a tokenizer cannot load, ...
        typer.echo(f"error: {_redacted(exc)}", err=True)
        raise typer.Exit(EXIT_BAD_INPUT) from None
    run = Run.from_summary(outcome.summary, outcome.run_dir)
    console.print(summary_table(run))
    if run.capacity is not None:
        console.print(capacity_line(run.capacity))
    for line in warning_lines(run.points):
        err.print(line, markup=False, highlight=False)
    if report and outcome.points:
        _render(outcome.run_dir, console)
    console.print(f"results: {outcome.run_dir}", markup=False, highlight=False)
    verdict = judge(outcome.points, budget=s.error_budget, interrupted=outcome.interrupted)
    for line in verdict.lines:
        console.print(line, markup=False, highlight=False)
    if verdict.exit_code:
        raise typer.Exit(verdict.exit_code)


def wrap_warnings(scenario: Scenario) -> list[str]:
    """Scenario warnings as the terminal shows them: one cause per line (``file:line: field: message``),
    continuation lines indented."""
    from tpsbench.cli.console import wrap
    from tpsbench.config.caveats import scenario_warnings

    return [wrap(f"warning: {w}") for w in scenario_warnings(scenario)]


def _fail(message: str) -> NoReturn:
    """A one-line error on stderr and exit 2 (bad input): the contract of every command."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(EXIT_BAD_INPUT)


def _require_run(path: Path, what: str, *, summary_ok: bool = False) -> None:
    """Exit 2 unless ``path`` is a run directory with a summary.json (or, if allowed, a summary.json)."""
    if summary_ok and path.is_file() and path.name.endswith(".json"):
        return
    if not path.exists():
        _fail(f"{what} {path}: no such run directory")
    from tpsbench.results.files import SUMMARY_JSON

    if not (path / SUMMARY_JSON).is_file():
        _fail(f"{what} {path}: no summary.json in it (not a tpsbench run directory?)")


def _redacted(exc: BaseException) -> str:
    from tpsbench.core.redact import redact_text

    return redact_text(str(exc))


def _safe_argv() -> list[str]:
    """The command line for the metadata, redacted: keys come from the environment, but a URL given with
    ``--endpoint`` may carry credentials."""
    from tpsbench.core.redact import redact_text

    return [redact_text(a) for a in sys.argv[1:]]


_MARK_HELP = (
    "A mark to read the run against (repeatable): NAME:KEY=VALUE[,KEY=VALUE], keys tps_user, output_tps, "
    "note, e.g. 'vendor X:tps_user=800,note=blog, May 2025' (a comma starts a new key only before KEY=, so "
    "a note may hold commas). Added to the scenario's report.marks."
)


def _marks(texts: list[str] | None) -> list[Mark]:
    """``--mark`` values parsed, or exit 2 with the one-line error naming what was expected."""
    from tpsbench.config.errors import ScenarioError
    from tpsbench.config.report import parse_mark

    try:
        return [parse_mark(t) for t in texts or []]
    except ScenarioError as exc:
        _fail(str(exc))


def _render(
    run_dir: Path, console: object, reference: bool | None = None, marks: list[Mark] | None = None
) -> None:
    from tpsbench.report import render_report

    files = render_report(run_dir, reference=reference, marks=marks or ())
    html = [f for f in files if f.suffix == ".html"]
    print(f"report: {html[0] if html else run_dir / 'report'}")


@app.command(name="report")
def report_cmd(
    run_dir: Annotated[Path, typer.Argument(help="A run directory under results/.")],
    reference: Annotated[
        bool | None,
        typer.Option(
            "--reference/--no-reference",
            help="Draw the reference model's curve and the published Maverick speeds on the Pareto chart "
            "(default: only for runs of the bundled reference endpoint).",
        ),
    ] = None,
    mark: Annotated[list[str] | None, typer.Option(help=_MARK_HELP)] = None,
) -> None:
    """Render charts (PNG, SVG), an HTML report and a Markdown summary for a run."""
    from rich.console import Console

    _require_run(run_dir, "report")
    marks = _marks(mark)
    try:
        _render(run_dir, Console(), reference, marks)
    except (ValueError, OSError) as exc:  # a summary of an unknown schema, an unwritable report/ ...
        _fail(f"report {run_dir}: {_redacted(exc)}")


@app.command()
def compare(
    run_dirs: Annotated[list[Path], typer.Argument(help="Two or more run directories.")],
    label: Annotated[list[str] | None, typer.Option(help="A label per run, in order.")] = None,
    out: Annotated[
        Path, typer.Option(help="Results root; each comparison gets a new directory under it.")
    ] = Path("results"),
    name: Annotated[str, typer.Option(help="Name of the comparison's directory.")] = "compare",
    chart: Annotated[
        bool, typer.Option(help="Also draw the runs on one Pareto chart (PNG, SVG) with an HTML page.")
    ] = False,
    force: Annotated[bool, typer.Option(help="Plot runs that are not comparable anyway (flagged).")] = False,
    metric: Annotated[
        list[str] | None,
        typer.Option(help="Rows to compare (repeatable), e.g. tps_user_aiperf_p50 (default: the gate's)."),
    ] = None,
    mark: Annotated[list[str] | None, typer.Option(help=_MARK_HELP)] = None,
) -> None:
    """Several runs side by side: a table of relative differences and each run against the marks (terminal
    and compare.md, fit to paste) and, with --chart, one Pareto chart that draws the marks too. Each
    comparison is written to a new directory, never over one."""
    from rich.console import Console

    from tpsbench.report.compare import NotComparable, rich_marks_table, rich_table
    from tpsbench.report.render import compare_runs
    from tpsbench.results.rundir import create_run_dir

    if len(run_dirs) < 2:
        _fail(f"compare: got {len(run_dirs)} run directory, expected two or more (tpsbench compare A B)")
    if label and len(label) != len(run_dirs):
        _fail(
            f"--label: {len(label)} labels for {len(run_dirs)} runs, expected one --label per run, in order"
        )
    for d in run_dirs:
        _require_run(d, "compare")
    marks = _marks(mark)
    formats = ("png", "svg", "html", "md") if chart else ("md",)
    try:
        from tpsbench.report.compare import compare as compare_loaded
        from tpsbench.results.views import open_run

        # refused before a directory is created
        compare_loaded([open_run(d) for d in run_dirs], label, force=force, metrics=metric)
        out_dir = create_run_dir(out, name)
        result = compare_runs(
            run_dirs,
            label,
            out_dir,
            force=force,
            formats=formats,
            metrics=metric,
            marks=marks,
        )
    except NotComparable as exc:
        _fail(f"runs are not comparable: {exc} (use --force to plot them anyway, flagged)")
    except (ValueError, OSError) as exc:
        _fail(f"compare: {_redacted(exc)}")
    console = Console()
    console.print(rich_table(result))
    if (against := rich_marks_table(result)) is not None:
        console.print(against)
    for flagged, why in result.flags.items():
        console.print(f"warning: {flagged} is not comparable: {why}", markup=False, highlight=False)
    for f in result.files:
        console.print(f"wrote {f}", markup=False, highlight=False)


@app.command()
def gate(
    baseline: Annotated[Path, typer.Option(help="Baseline run directory or summary.json.")],
    candidate: Annotated[Path, typer.Option(help="Candidate run directory.")],
    threshold: Annotated[
        list[str] | None, typer.Option(help="Noise floor per metric, METRIC=PCT, e.g. ttft_s_p99=15.")
    ] = None,
    markdown: Annotated[Path | None, typer.Option(help="Write a Markdown summary here.")] = None,
    junit: Annotated[Path | None, typer.Option(help="Write JUnit XML here.")] = None,
) -> None:
    """Regression gate: one line per verdict, regressions first (the full table: --markdown, --junit).
    Exit status: 0 pass, 1 regression, 2 not comparable or bad input."""
    from rich.console import Console

    from tpsbench import gate as gating

    try:
        thresholds = gating.parse_thresholds(threshold or [])
    except ValueError as exc:
        typer.echo(f"error: --threshold: {exc}", err=True)
        raise typer.Exit(EXIT_BAD_INPUT) from None
    _require_run(baseline, "--baseline", summary_ok=True)
    _require_run(candidate, "--candidate")
    result = gating.evaluate(baseline, candidate, thresholds or None)
    for line in gating.verdict_lines(result, width=min(Console().width, 120)):
        typer.echo(line)
    kind = "bad input" if result.bad_input else "regression" if result.exit_code == 1 else "not comparable"
    for reason in result.reasons:
        typer.echo(f"{kind}: {reason}", err=True)
    for warning in result.warnings:
        typer.echo(f"warning: {warning}", err=True)
    if markdown:
        markdown.write_text(gating.to_markdown(result))
    if junit:
        junit.write_text(gating.to_junit(result))
    raise typer.Exit(result.exit_code)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to bind (loopback by default).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8000,
    param: Annotated[
        list[str] | None,
        typer.Option(help="Override a model parameter, NAME=VALUE (see `tpsbench predict`)."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the acceptance and output-length draws.")] = 0,
) -> None:
    """Serve the bundled reference endpoint: Llama 4 Maverick on one DGX B200, simulated."""
    from tpsbench.reference.model import ModelParams
    from tpsbench.reference.serve import parse_param_overrides
    from tpsbench.reference.serve import serve as serve_forever

    try:
        params = ModelParams().with_overrides(parse_param_overrides(param or []))
    except ValueError as exc:
        _fail(f"--param: {exc}")
    try:
        serve_forever(host, port, params, seed)
    except OSError as exc:
        why = "address already in use (another server? pick another --port)" if exc.errno == 98 else exc
        _fail(f"--host {host} --port {port}: cannot listen: {why}")


@app.command()
def predict(
    scenario: Annotated[
        Path | None, typer.Argument(help="Scenario whose workload and levels to predict.")
    ] = None,
    concurrency: Annotated[str | None, typer.Option(help="Concurrencies, e.g. 1,8,64.")] = None,
    param: Annotated[list[str] | None, typer.Option(help="Override a model parameter, NAME=VALUE.")] = None,
) -> None:
    """Print the reference model's predicted TPS/user, server TPS and TTFT for a workload."""
    from rich.console import Console
    from rich.table import Table

    from tpsbench.reference.model import ModelParams, ReferenceModel
    from tpsbench.reference.serve import parse_param_overrides

    s = _load(scenario or _default_scenario(), concurrency=_parse_int_list(concurrency, "--concurrency"))
    try:
        overrides = dict(s.reference) | parse_param_overrides(param or [])
        model = ReferenceModel(ModelParams().with_overrides(overrides))
    except ValueError as exc:
        _fail(f"--param: {exc}")
    w = s.workload
    isl = int(w.input_tokens if isinstance(w.input_tokens, int) else w.input_tokens.mean)
    osl = int(w.output_tokens if isinstance(w.output_tokens, int) else w.output_tokens.mean)
    levels = [lv.concurrency for lv in s.fixed_levels if lv.concurrency is not None]
    if s.sweep is not None and s.sweep.concurrency is not None:
        levels = [int(v) for v in s.sweep.values()]
    table = Table(title=f"reference model, ISL/OSL {isl}/{osl}")
    for col in ("concurrency", "TPS/user", "server TPS", "per GPU", "TTFT ms", "step ms", "draft k"):
        table.add_column(col, justify="right")
    for p in model.predict_curve(levels, isl, osl):
        table.add_row(
            str(p.batch),
            f"{p.tps_user:,.0f}",
            f"{p.server_tps:,.0f}",
            f"{p.server_tps / model.params.gpus:,.0f}",
            f"{p.ttft_s * 1000:,.1f}",
            f"{p.step_s * 1000:.2f}",
            str(p.k),
        )
    Console().print(table)


@app.command(name="import")
def import_cmd(
    path: Annotated[Path, typer.Argument(help="Another harness's output: a file or an artifact directory.")],
    format: Annotated[
        str | None,
        typer.Option("--format", help="aiperf, guidellm, vllm or inference-perf (default: detected)."),
    ] = None,
    out: Annotated[Path, typer.Option(help="Results root; the import gets a new run directory.")] = Path(
        "results"
    ),
    name: Annotated[str | None, typer.Option(help="Run name (default: <tool>-import).")] = None,
) -> None:
    """Turn aiperf, GuideLLM, vLLM bench or inference-perf results into a tpsbench run directory."""
    from tpsbench.importers import ImportFormatError, read, write_run

    try:
        run_dir = write_run(read(path, format), out, name)
    except (ImportFormatError, OSError) as exc:
        _fail(f"import {path}: {_redacted(exc)}")
    print(f"results: {run_dir}")


@app.command(name="export")
def export_cmd(
    run_dir: Annotated[Path, typer.Argument(help="A run directory under results/.")],
    format: Annotated[
        str, typer.Option("--format", help="llm-d-br: llm-d Benchmark Report v0.2.")
    ] = "llm-d-br",
    out: Annotated[Path | None, typer.Option(help="Output file (default: RUN_DIR/<format>.json).")] = None,
) -> None:
    """Write a run in another tool's format."""
    from tpsbench.exporters import EXPORTERS, export_run

    _require_run(run_dir, "export")
    if format not in EXPORTERS:
        _fail(f"export: unknown format {format!r}; expected one of {', '.join(EXPORTERS)}")
    try:
        path = export_run(run_dir, format, out)
    except (ValueError, OSError) as exc:
        _fail(f"export {run_dir}: {_redacted(exc)}")
    print(f"export: {path}")


def main() -> None:
    """The console script. Commands turn expected failures into one line and exit 2 themselves; this is
    the net under them, so a bad input that slipped through still gets one line, not a traceback (set
    TPSBENCH_DEBUG=1 to see the traceback)."""
    import os

    try:
        app()
    except (ValueError, OSError) as exc:
        if os.environ.get("TPSBENCH_DEBUG"):
            raise
        typer.echo(f"error: {_redacted(exc)} (TPSBENCH_DEBUG=1 shows where)", err=True)
        raise SystemExit(EXIT_BAD_INPUT) from None


if __name__ == "__main__":
    main()
