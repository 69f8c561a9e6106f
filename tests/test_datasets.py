"""Datasets from local files (workload/datasets.py) and the prompts built from them (workload/prompts.py)."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from tpsbench.config.loader import load_scenario
from tpsbench.config.scenario import Dataset, ScenarioError, Workload
from tpsbench.core.estimate import estimate_tokens
from tpsbench.workload.datasets import DatasetError, Turn, read_dataset, select_conversations
from tpsbench.workload.prompts import build_prompts

DATA = Path(__file__).parent / "data" / "workloads"


def _workload(**dataset: object) -> Workload:
    return Workload.model_validate({"dataset": dataset, "unique_prompts": False})


def test_sharegpt_turns_system_and_skipped_rows() -> None:
    convs = read_dataset(DATA / "sharegpt.json", "sharegpt")
    assert [c.index for c in convs] == [0, 1, 3]  # row 2 has no human message: skipped
    assert convs[0].system == "You are a terse assistant."
    assert [t.user for t in convs[0].turns] == [
        "Name three prime numbers.",
        "And the next one?",
        "Is one prime?",
    ]
    assert convs[0].turns[1].answer == "Seven."


def test_sharegpt_jsonl_equals_json(tmp_path: Path) -> None:
    rows = json.loads((DATA / "sharegpt.json").read_text())
    f = tmp_path / "s.jsonl"
    f.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    assert read_dataset(f, "sharegpt") == read_dataset(DATA / "sharegpt.json", "sharegpt")


def test_messages_content_parts_and_missing_answer() -> None:
    convs = read_dataset(DATA / "messages.jsonl", "messages")
    assert convs[0].system == "Be brief." and len(convs[0].turns) == 2
    assert convs[1].turns[0].user == "Define throughput."  # a list of text parts
    assert convs[2].turns[0].answer is None


def test_csv_columns_and_did_you_mean() -> None:
    convs = read_dataset(DATA / "table.csv", "csv", prompt_column="question", answer_column="reference")
    assert convs[1].turns[0].user == "What is an SLO?"
    with pytest.raises(DatasetError) as e:
        read_dataset(DATA / "table.csv", "csv", prompt_column="questoin")
    assert (
        e.value.line == 1
        and "no column 'questoin'" in str(e.value)
        and "did you mean 'question'" in str(e.value)
    )


def test_malformed_rows_name_file_line_and_field(tmp_path: Path) -> None:
    f = tmp_path / "bad.jsonl"
    f.write_text(
        json.dumps({"messages": [{"role": "user", "content": "ok"}]})
        + "\n{not json\n"
        + json.dumps({"messages": [{"role": "user", "content": 3}]})
        + "\n"
    )
    with pytest.raises(DatasetError) as e:
        read_dataset(f, "messages")
    lines = str(e.value).splitlines()
    assert lines[0].startswith(f"{f}:2: invalid JSON")
    assert (
        lines[1] == f"{f}:3: messages[0].content: expected a string (or a list of text parts), got a number"
    )


def test_json_list_rows_are_named_by_index(tmp_path: Path) -> None:
    f = tmp_path / "s.json"
    f.write_text(json.dumps([{"conversations": []}, {"conversations": "x"}]))
    with pytest.raises(DatasetError) as e:
        read_dataset(f, "sharegpt")
    assert str(e.value) == f"{f}: [1].conversations: expected a list of messages, got a string"


def test_no_usable_rows(tmp_path: Path) -> None:
    f = tmp_path / "s.json"
    f.write_text(json.dumps([{"conversations": [{"from": "gpt", "value": "hi"}]}]))
    with pytest.raises(DatasetError, match="no usable sharegpt rows: none of its 1 rows has a user message"):
        read_dataset(f, "sharegpt")
    ds = Dataset(path=DATA / "table.csv", format="csv", prompt_column="question", min_input_tokens=1000)
    with pytest.raises(
        DatasetError, match=r"no usable rows: none of its 3 usable rows has input tokens in \[1000, inf\]"
    ):
        select_conversations(ds, estimate_tokens, 0)


def test_prompts_first_turn_answer_length_and_index() -> None:
    specs = build_prompts(_workload(path=DATA / "sharegpt.json", format="sharegpt"), "chat", 3)
    by_index = {s.prompt_index: s for s in specs}
    assert sorted(by_index) == [0, 1, 3]  # one seeded pass over the three usable rows
    first = by_index[0]
    assert first.messages == [
        {"role": "system", "content": "You are a terse assistant."},
        {"role": "user", "content": "Name three prime numbers."},
    ]
    assert first.max_tokens == estimate_tokens("Two, three and five are the first three primes.")
    assert first.input_tokens == estimate_tokens("You are a terse assistant.") + estimate_tokens(
        "Name three prime numbers."
    )


def test_output_tokens_from_workload_and_rows_without_answer() -> None:
    w = Workload.model_validate(
        {"dataset": {"path": DATA / "messages.jsonl", "format": "messages"}, "output_tokens": 77}
    )
    specs = {s.prompt_index: s for s in build_prompts(w, "completions", 3)}
    assert specs[2].max_tokens == 77  # no answer: the workload's
    assert specs[1].max_tokens == estimate_tokens("Tokens generated per second, summed over all requests.")
    assert specs[1].prompt is not None and specs[1].prompt.endswith("Define throughput.")
    w2 = w.model_copy(update={"dataset": w.dataset.model_copy(update={"output_tokens": "workload"})})  # type: ignore[union-attr]
    assert {s.max_tokens for s in build_prompts(w2, "chat", 3)} == {77}


def test_length_filters_and_seeded_sample() -> None:
    ds = Dataset(path=DATA / "sharegpt.json", format="sharegpt", max_input_tokens=10)
    assert [c.index for c in select_conversations(ds, estimate_tokens, 0)] == [1]
    ds = Dataset(path=DATA / "sharegpt.json", format="sharegpt", max_output_tokens=20)
    assert [c.index for c in select_conversations(ds, estimate_tokens, 0)] == [0, 1]
    ds = Dataset(path=DATA / "sharegpt.json", format="sharegpt", rows=2)
    picks = {tuple(c.index for c in select_conversations(ds, estimate_tokens, s)) for s in range(12)}
    assert all(len(p) == 2 for p in picks) and len(picks) > 1  # seeded: different seeds, different rows
    assert select_conversations(ds, estimate_tokens, 5) == select_conversations(ds, estimate_tokens, 5)


def test_schema_errors(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="apply to 'format: csv' and 'parquet' only"):
        Dataset(path=DATA / "sharegpt.json", format="sharegpt", prompt_column="x")
    f = tmp_path / "s.yaml"
    f.write_text(
        "workload:\n  dataset:\n    path: missing.json\n    format: sharegpt\n"
        "load: [{concurrency: 1, requests: 1}]\n"
    )
    with pytest.raises(ScenarioError) as e:
        load_scenario(f)
    assert str(e.value) == (
        f"{f}:3: workload.dataset.path: file not found: {tmp_path / 'missing.json'} "
        "(relative paths are relative to the scenario file)"
    )


def test_relative_path_is_taken_from_the_scenario_file(tmp_path: Path) -> None:
    (tmp_path / "d.csv").write_text("prompt\nhello there\n")
    f = tmp_path / "s.yaml"
    f.write_text("workload:\n  dataset: {path: d.csv, format: csv}\nload: [{concurrency: 1, requests: 1}]\n")
    s = load_scenario(f)
    assert s.workload.dataset is not None and s.workload.dataset.path == tmp_path / "d.csv"
    assert build_prompts(s.workload, "chat", 1)[0].messages[0]["content"].endswith("hello there")  # type: ignore[index]


def test_cli_validate_reads_the_dataset(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from tpsbench.cli.app import app

    (tmp_path / "d.jsonl").write_text('{"messages": [{"role": "user", "content": "hi"}]}\n{"messages": 5}\n')
    f = tmp_path / "s.yaml"
    f.write_text(
        "workload:\n  dataset: {path: d.jsonl, format: messages}\nload: [{concurrency: 1, requests: 1}]\n"
    )
    res = CliRunner().invoke(app, ["validate", str(f)])
    assert res.exit_code == 2
    assert f"{tmp_path / 'd.jsonl'}:2: messages: expected a list of messages, got a number" in res.output


def _write_parquet(path: Path, columns: dict[str, list[Any]]) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table(columns), path)
    return path


def _table_csv() -> dict[str, list[Any]]:
    with (DATA / "table.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    return {
        "id": [int(r["id"]) for r in rows],
        "question": [r["question"] for r in rows],
        "reference": [r["reference"] for r in rows],
    }


def test_parquet_reads_as_the_same_table_as_csv(tmp_path: Path) -> None:
    f = _write_parquet(tmp_path / "t.parquet", _table_csv())
    cols = {"prompt_column": "question", "answer_column": "reference"}
    assert read_dataset(f, "parquet", **cols) == read_dataset(DATA / "table.csv", "csv", **cols)
    ds = Dataset(path=f, format="parquet", prompt_column="question", answer_column="reference", rows=2)
    csv_ds = ds.model_copy(update={"path": DATA / "table.csv", "format": "csv"})
    assert select_conversations(ds, estimate_tokens, 3) == select_conversations(csv_ds, estimate_tokens, 3)
    spec = build_prompts(_workload(path=f, format="parquet", prompt_column="question"), "chat", 1)[0]
    assert spec.messages == [{"role": "user", "content": "What does TPOT stand for?"}]


def test_parquet_null_cells_dictionary_columns_and_the_default_prompt_column(tmp_path: Path) -> None:
    import pyarrow as pa

    prompts = pa.array(["first", None, "", "fourth"]).dictionary_encode()  # pandas' category dtype
    f = _write_parquet(tmp_path / "n.parquet", {"prompt": prompts, "answer": ["a", "b", "c", None]})
    convs = read_dataset(f, "parquet", answer_column="answer")
    assert [c.index for c in convs] == [0, 3]  # null and empty prompts: skipped, as an empty CSV cell
    assert [c.turns[0] for c in convs] == [Turn("first", "a"), Turn("fourth", None)]
    empty = _write_parquet(tmp_path / "e.parquet", {"prompt": pa.array([], pa.string())})
    with pytest.raises(DatasetError) as e:
        read_dataset(empty, "parquet")
    assert str(e.value) == f"{empty}: no usable parquet rows: the file has no rows"


def test_parquet_errors_name_the_file_and_the_column(tmp_path: Path) -> None:
    f = _write_parquet(tmp_path / "t.parquet", _table_csv())
    with pytest.raises(DatasetError) as e:
        read_dataset(f, "parquet", prompt_column="questoin")
    assert str(e.value) == (
        f"{f}: no column 'questoin' (prompt_column) in the schema: 'id', 'question', 'reference' "
        "(did you mean 'question'?)"
    )
    with pytest.raises(DatasetError) as e:
        read_dataset(f, "parquet", prompt_column="question", answer_column="id")
    assert str(e.value) == f"{f}: id: column 'id' (answer_column) holds int64, expected strings"
    bad = tmp_path / "bad.parquet"
    bad.write_text("prompt\nnot parquet at all\n")
    with pytest.raises(DatasetError, match=rf"^{bad}: invalid Parquet: "):
        read_dataset(bad, "parquet")


def test_parquet_without_pyarrow_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from tpsbench.cli.app import app

    f = _write_parquet(tmp_path / "d.parquet", {"prompt": ["hello"]})
    for name in [m for m in sys.modules if m == "pyarrow" or m.startswith("pyarrow.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # import pyarrow now raises ImportError
    s = tmp_path / "s.yaml"
    s.write_text(
        "workload:\n  dataset: {path: d.parquet, format: parquet}\nload: [{concurrency: 1, requests: 1}]\n"
    )
    res = CliRunner().invoke(app, ["validate", str(s)])
    assert res.exit_code == 2 and "Traceback" not in res.output, res.output
    assert f"{f}: reading Parquet needs pyarrow: pip install 'tpsbench[parquet]'" in res.output
