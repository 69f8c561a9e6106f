"""The layers are a rule the code keeps: read the package's import graph with ``ast`` (every import: at the
top, inside functions, under ``if TYPE_CHECKING``) and check that each package imports only packages of a
lower rank, that no modules import each other in a circle, that no module is over 600 lines, that only the
CLI imports typer, and that docs/architecture.md shows the rank table and the module table as the code is.

``python tests/test_architecture.py`` rewrites the module table of docs/architecture.md from the modules'
docstrings (their first sentence is the module's noun): run it after adding or renaming a module."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "tpsbench"

# A package imports only packages of a LOWER rank (peers of equal rank do not import each other). The
# top-level ``tpsbench`` module (the version) may be imported by anyone.
RANKS: dict[str, int] = {
    "core": 0,
    "config": 1,
    "workload": 2,
    "client": 3,
    "results": 4,
    "reference": 5,
    "importers": 5,
    "load": 6,
    "report": 7,
    "gate": 7,
    "exporters": 7,
    "cli": 8,
}
MAX_LINES = 600
# Modules over the limit that their owners are splitting (``"tpsbench.x.y"``, with a TODO naming the owner);
# the owner removes the entry when the split lands (gate/gate.py and reference/server.py were split).
KNOWN_LONG: set[str] = set()  # modules past 600 lines whose owner is splitting them (none now)
CLI_ONLY = {"typer"}  # third-party modules only the cli package may import


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES: dict[str, Path] = {module_name(p): p for p in sorted(PKG.rglob("*.py"))}


def imports_of(name: str, source: str, *, is_pkg: bool = False) -> set[str]:
    """Every module ``name`` imports (``from a import b`` counts as ``a.b`` when ``b`` is a module)."""
    tree = ast.parse(source, filename=name)
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")
                base = base[: len(base) - node.level + (1 if is_pkg else 0)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                out.add(sub if sub in MODULES else target)
    return out


GRAPH: dict[str, set[str]] = {
    name: imports_of(name, path.read_text(encoding="utf-8"), is_pkg=path.name == "__init__.py")
    for name, path in MODULES.items()
}


def package_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "tpsbench" else None


def test_the_rank_table_covers_every_package() -> None:
    packages = {p.name for p in PKG.iterdir() if (p / "__init__.py").is_file()}
    assert packages == set(RANKS)


def test_each_package_imports_only_lower_ranked_packages() -> None:
    bad = []
    for name, targets in GRAPH.items():
        src = package_of(name)
        if src is None:
            continue
        for t in targets:
            dst = package_of(t)
            if dst is None or dst == src:
                continue
            if RANKS[dst] >= RANKS[src]:
                bad.append(f"{name} ({src}, rank {RANKS[src]}) imports {t} ({dst}, rank {RANKS[dst]})")
    assert not bad, "\n".join(sorted(bad))


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), or a module importing itself."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in graph:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1 or v in graph.get(v, ()):
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_find_cycles_finds_a_circle_and_only_circles() -> None:
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles_between_modules() -> None:
    internal = {n: {t for t in ts if t in MODULES and t != n} for n, ts in GRAPH.items()}
    assert find_cycles(internal) == []


def test_the_graph_sees_lazy_and_type_checking_imports() -> None:
    src = (
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from tpsbench.cli import app\n"
        "def f():\n    import tpsbench.gate.gate\n    from . import record\n"
    )
    got = imports_of("tpsbench.core._probe", src)
    assert {"tpsbench.cli.app", "tpsbench.gate.gate", "tpsbench.core.record"} <= got


@pytest.mark.parametrize("name", sorted(MODULES))
def test_no_module_over_600_lines(name: str) -> None:
    n = len(MODULES[name].read_text(encoding="utf-8").splitlines())
    if name in KNOWN_LONG:
        pytest.skip(f"{name}: {n} lines, being split by its owner")
    assert n <= MAX_LINES, f"{name} has {n} lines (> {MAX_LINES}): split it by concern"


def test_known_long_modules_are_still_long() -> None:
    """An entry of KNOWN_LONG whose module got short (or went away) must be removed."""
    for name in KNOWN_LONG:
        assert name in MODULES and len(MODULES[name].read_text().splitlines()) > MAX_LINES, name


def test_the_transport_contract_imports_nothing_concrete_and_no_transport_reads_config() -> None:
    base = GRAPH["tpsbench.client.transport.base"]
    concrete = {"h11", "aiohttp", "httpx"}
    assert not {t for t in base if t.split(".")[0] in concrete or t.startswith("tpsbench.client.transport.")}
    for name, targets in GRAPH.items():
        if name.startswith("tpsbench.client.transport"):
            assert not [t for t in targets if t.startswith("tpsbench.config")], name  # Timeouts is in core


def test_only_the_cli_imports_typer() -> None:
    bad = [
        f"{name} imports {t}"
        for name, targets in GRAPH.items()
        for t in targets
        if t.split(".")[0] in CLI_ONLY and package_of(name) != "cli"
    ]
    assert not bad, "\n".join(bad)


DOC = ROOT / "docs" / "architecture.md"
BEGIN, END = "<!-- modules: generated by tests/test_architecture.py -->", "<!-- modules: end -->"


def _noun(path: Path) -> str:
    """The first sentence of a module's docstring, in Markdown."""
    doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
    first = " ".join(doc.split("\n\n")[0].split())
    first = re.split(r"(?<=[a-z)`])\. ", first)[0].rstrip(".:")
    first = re.sub(r":\w+:`~?([\w.]+)`", lambda m: f"`{m.group(1).split('.')[-1]}`", first)
    return first.replace("``", "`").replace("|", "\\|")


def module_table() -> str:
    header = "| rank | package | module | what it owns (its docstring's first sentence) |"
    rows = [header, "|---|---|---|---|"]
    for package, rank in sorted(RANKS.items(), key=lambda kv: (kv[1], kv[0])):
        for path in sorted((PKG / package).rglob("*.py")):
            if path.name != "__init__.py":
                rows.append(f"| {rank} | `{package}` | `{path.relative_to(ROOT)}` | {_noun(path)} |")
    return "\n".join(rows)


def _doc_with_table(doc: str) -> str:
    head, rest = doc.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{BEGIN}\n{module_table()}\n{END}{tail}"


def test_docs_architecture_shows_the_rank_table_and_every_module() -> None:
    doc = DOC.read_text(encoding="utf-8")
    for package, rank in RANKS.items():
        assert re.search(rf"\|\s*{rank}\s*\|\s*`{package}`\s*\|", doc), f"rank row of {package}"
    assert doc == _doc_with_table(doc), "docs/architecture.md is stale: run python tests/test_architecture.py"
    listed = set(re.findall(r"`(tpsbench/[\w/]+\.py)`", doc))
    assert listed <= {str(p.relative_to(ROOT)) for p in MODULES.values()}, "docs name modules that are gone"


if __name__ == "__main__":
    DOC.write_text(_doc_with_table(DOC.read_text(encoding="utf-8")), encoding="utf-8")
    print(f"wrote the module table of {DOC.relative_to(ROOT)}")
