"""``tpsbench export --format llm-d-br``: every load point's report validates against the published llm-d
Benchmark Report v0.2 JSON Schema (tests/data/llmd/, Apache-2.0, see its README)."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from tpsbench import importers
from tpsbench.exporters import export_run, llmd
from tpsbench.results.files import read_summary

DATA = Path(__file__).parent / "data"
SCHEMA = json.loads((DATA / "llmd" / "br_v0_2_json_schema.json").read_text())


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    imp = importers.read(DATA / "importers" / "aiperf")
    return importers.write_run(imp, tmp_path_factory.mktemp("runs"))


def test_export_validates_against_the_llmd_schema(run_dir: Path) -> None:
    out = export_run(run_dir, "llm-d-br")
    files = sorted(out.glob("level-*.json"))
    assert files
    validator = jsonschema.Draft202012Validator(SCHEMA, format_checker=jsonschema.FormatChecker())
    for f in files:
        doc = json.loads(f.read_text())
        errors = sorted(validator.iter_errors(doc), key=str)
        assert not errors, [e.message for e in errors[:5]]
        assert doc["version"] == "0.2"
        agg = doc["results"]["request_performance"]["aggregate"]
        point = read_summary(run_dir / "summary.json")["points"][0]
        assert agg["requests"]["total"] == 32
        assert agg["latency"]["time_to_first_token"]["p50"] == point["ttft_s"]["p50"]
        assert doc["scenario"]["load"]["standardized"]["tool"] == "aiperf"  # the source tool, named


def test_the_schema_check_can_fail(run_dir: Path) -> None:
    doc = json.loads(llmd.serialize(read_summary(run_dir / "summary.json"), 0))
    doc["results"]["request_performance"]["aggregate"]["latency"]["time_to_first_token"]["units"] = "parsecs"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(doc, SCHEMA)
    with pytest.raises(ValueError, match="no load point with level 7"):
        llmd.serialize(read_summary(run_dir / "summary.json"), 7)
