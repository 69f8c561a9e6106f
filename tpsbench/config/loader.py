"""Reading a scenario file: :func:`load_scenario` parses the YAML (keeping line numbers), validates it
against :class:`~tpsbench.config.scenario.Scenario` and reports every problem at once, each as
``file:line: field: message``, e.g.::

    scenarios/x.yaml:12: load[1].rate: expected a number > 0, got 'fast'
    scenarios/x.yaml:3: endpoint.modle: unknown key 'modle' (did you mean 'model'?)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.scalarbool import ScalarBoolean

from tpsbench.config.errors import (
    ScenarioError,
    ScenarioIssue,
    SourceLines,
    issues_from_validation,
    line_of,
    show,
)
from tpsbench.config.scenario import SCHEMA, Scenario

__all__ = ["load_scenario"]


def load_scenario(path: str | Path) -> Scenario:
    """Read, parse and validate a scenario YAML file.

    Every problem is collected and raised at once as a :class:`ScenarioError` whose lines read
    ``file:line: field: message``. ``workload.prompts_file`` is resolved against the scenario file's
    directory and must exist; the returned scenario holds the absolute path, and where each key was written
    (``Scenario.source``), so its warnings are placed the same way.
    """
    p = Path(path)
    file = str(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ScenarioError(file, None, "", "no such file") from None
    except IsADirectoryError:
        raise ScenarioError(file, None, "", "is a directory, expected a scenario YAML file") from None
    except UnicodeDecodeError as e:
        raise ScenarioError(file, None, "", f"not UTF-8 text ({e.reason} at byte {e.start})") from None
    except OSError as e:
        raise ScenarioError(file, None, "", f"cannot read: {e.strerror or e}") from None

    try:
        doc = YAML(typ="rt").load(text)  # round-trip nodes carry line numbers in `.lc`
    except MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = mark.line + 1 if mark is not None else None
        what = e.problem or e.context or "syntax error"
        raise ScenarioError(file, line, "", f"invalid YAML: {what}") from None
    except YAMLError as e:
        raise ScenarioError(file, None, "", f"invalid YAML: {e}") from None
    if doc is None:
        raise ScenarioError(file, None, "", "the file is empty; a scenario needs at least a 'load' list")
    if not isinstance(doc, CommentedMap):
        raise ScenarioError(
            file, 1, "", f"expected a mapping of scenario keys (load, endpoint, ...), got {show(doc)}"
        )

    issues: list[ScenarioIssue] = []
    scenario: Scenario | None = None
    try:
        scenario = Scenario.model_validate(_plain(doc), context={"base_dir": p.parent})
    except ValidationError as e:
        issues += issues_from_validation(e, doc, file, SCHEMA)
    prompts_file, issue = _check_prompts_file(doc, p.parent, file)
    if issue is not None:
        issues.append(issue)
    tokenizer, issue = _check_tokenizer_path(doc, p.parent, file)
    if issue is not None:
        issues.append(issue)
    tls_paths: dict[str, Path] = {}
    for key in ("ca_bundle", "client_cert", "client_key"):
        tls_path, issue = _check_tls_path(doc, p.parent, file, key)
        if issue is not None:
            issues.append(issue)
        elif tls_path is not None:
            tls_paths[key] = tls_path
    if issues or scenario is None:
        issues.sort(key=lambda i: i.line if i.line is not None else 0)  # stable: same line keeps order
        raise ScenarioError.from_issues(issues)
    if prompts_file is not None:
        workload = scenario.workload.model_copy(update={"prompts_file": prompts_file})
        scenario = scenario.model_copy(update={"workload": workload})
    if tokenizer is not None:
        endpoint = scenario.endpoint.model_copy(update={"tokenizer": tokenizer})
        scenario = scenario.model_copy(update={"endpoint": endpoint})
    if tls_paths:
        tls = scenario.endpoint.tls.model_copy(update=tls_paths)
        scenario = scenario.model_copy(update={"endpoint": scenario.endpoint.model_copy(update={"tls": tls})})
    return scenario.located(SourceLines.of(file, doc))  # for its warnings (tpsbench/config/caveats.py)


def _check_tls_path(
    doc: CommentedMap, base: Path, file: str, key: str
) -> tuple[Path | None, ScenarioIssue | None]:
    """``endpoint.tls.<key>`` made absolute, or the issue if the file is missing."""
    endpoint = doc.get("endpoint")
    tls = endpoint.get("tls") if isinstance(endpoint, CommentedMap) else None
    raw = tls.get(key) if isinstance(tls, CommentedMap) else None
    if not isinstance(raw, str):
        return None, None
    resolved = (base / Path(raw).expanduser()).resolve()
    if resolved.is_file():
        return resolved, None
    line = line_of(doc, ["endpoint", "tls", key])
    msg = f"file not found: {resolved} (relative paths are relative to the scenario file)"
    return None, ScenarioIssue(file, line, f"endpoint.tls.{key}", msg)


def _check_tokenizer_path(
    doc: CommentedMap, base: Path, file: str
) -> tuple[str | None, ScenarioIssue | None]:
    """``endpoint.tokenizer`` with its file made absolute (``gguf:`` kept), or the issue if it is missing."""
    endpoint = doc.get("endpoint")
    raw = endpoint.get("tokenizer") if isinstance(endpoint, CommentedMap) else None
    if not isinstance(raw, str) or raw in ("estimate", "server"):
        return None, None
    prefix = "gguf:" if raw.startswith("gguf:") else ""
    resolved = (base / Path(raw.removeprefix(prefix)).expanduser()).resolve()
    if resolved.is_file():
        return prefix + str(resolved), None
    line = line_of(doc, ["endpoint", "tokenizer"])
    msg = f"tokenizer file not found: {resolved} (relative paths are relative to the scenario file)"
    return None, ScenarioIssue(file, line, "endpoint.tokenizer", msg)


def _check_prompts_file(doc: CommentedMap, base: Path, file: str) -> tuple[Path | None, ScenarioIssue | None]:
    workload = doc.get("workload")
    if not isinstance(workload, CommentedMap):
        return None, None
    raw = workload.get("prompts_file")
    if not isinstance(raw, str):
        return None, None  # null means "synthetic"; other types are reported by the schema
    resolved = (base / Path(raw).expanduser()).resolve()
    if resolved.is_file():
        return resolved, None
    problem = "is not a file" if resolved.exists() else "not found"
    line = line_of(doc, ["workload", "prompts_file"])
    msg = f"prompts file {problem}: {resolved} (relative paths are relative to the scenario file)"
    return None, ScenarioIssue(file, line, "workload.prompts_file", msg)


def _plain(node: Any) -> Any:
    """ruamel's round-trip nodes as plain Python values (what pydantic should see)."""
    if isinstance(node, dict):
        return {_plain(k): _plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(v) for v in node]
    if isinstance(node, bool | ScalarBoolean):  # ScalarBoolean subclasses int, not bool
        return bool(node)
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    if isinstance(node, str):
        return str(node)
    return node
