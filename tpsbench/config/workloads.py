"""The schema of production workloads: a dataset file (``workload.dataset``), multi-turn sessions
(``workload.sessions``, with their think time) and a replayed trace (``load[i].trace``). The files they name
must exist when the scenario is validated; their content is read by the workload package
(:func:`tpsbench.workload.levelwork.check_files`) before any request.

    >>> Sessions(turns=4, think_s=0.5).think_s
    0.5
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from tpsbench.config.base import Strict, TokenCount

__all__ = ["Dataset", "Sessions", "ThinkTime", "Trace"]


def _input_file(v: Path, info: ValidationInfo) -> Path:
    """A data file the scenario names, made absolute: relative to the scenario file's directory (the
    loader passes it as ``base_dir`` in the validation context), else to the current directory. It must
    exist; its content is checked by :func:`tpsbench.workload.levelwork.check_files`."""
    base = (info.context or {}).get("base_dir") if isinstance(info.context, dict) else None
    p = Path(v).expanduser()
    if not p.is_absolute():
        p = (Path(base) if base is not None else Path.cwd()) / p
    p = p.resolve()
    if not p.is_file():
        problem = "is not a file" if p.exists() else "not found"
        raise ValueError(f"file {problem}: {p} (relative paths are relative to the scenario file)")
    return p


class Dataset(Strict):
    """``workload.dataset``: prompts (and answers) from a local file, read by
    :mod:`tpsbench.workload.datasets`. ``format``: ``sharegpt`` (JSON list or JSONL of
    ``{"conversations": [{"from", "value"}, ...]}``), ``messages`` (JSONL of ``{"messages": [{"role",
    "content"}, ...]}``), ``csv`` (a header row; the prompt in ``prompt_column``, the answer, if any, in
    ``answer_column``) or ``parquet`` (the same columns; needs pyarrow, the ``parquet`` extra). Rows are
    used in seeded order (``workload.seed``); ``rows`` keeps a seeded sample of that many usable rows.
    Length filters count with the scenario's tokenizer (else the estimate)."""

    path: Path
    format: Literal["sharegpt", "messages", "csv", "parquet"]
    prompt_column: str | None = None  # csv and parquet only; default "prompt"
    answer_column: str | None = None  # csv and parquet only; default: no answer column
    rows: int | None = Field(default=None, ge=1)
    min_input_tokens: int = Field(default=1, ge=1)  # the prompt of a row (its first turn), inclusive
    max_input_tokens: int | None = Field(default=None, ge=1)
    max_output_tokens: int | None = Field(default=None, ge=1)  # the answer of a row, when it has one
    # "answer": ask for as many tokens as the dataset's answer has (rows without one, and every row with
    # "workload", draw from workload.output_tokens)
    output_tokens: Literal["answer", "workload"] = "answer"

    @field_validator("path")
    @classmethod
    def _exists(cls, v: Path, info: ValidationInfo) -> Path:
        return _input_file(v, info)

    @model_validator(mode="after")
    def _columns(self) -> Dataset:
        tables = ("csv", "parquet")
        if self.format not in tables and (self.prompt_column is not None or self.answer_column is not None):
            raise ValueError("'prompt_column' and 'answer_column' apply to 'format: csv' and 'parquet' only")
        if self.max_input_tokens is not None and self.max_input_tokens < self.min_input_tokens:
            raise ValueError(
                f"'max_input_tokens' ({self.max_input_tokens}) must be >= 'min_input_tokens' "
                f"({self.min_input_tokens})"
            )
        return self


class ThinkTime(Strict):
    """Seconds a user waits between receiving an answer and sending the next turn:
    ``clip(normal(mean, std), min, max)`` or, with ``distribution: exponential``, ``Exponential(mean)``
    clipped the same way."""

    mean: float = Field(ge=0)
    std: float = Field(default=0.0, ge=0)
    distribution: Literal["normal", "exponential"] = "normal"
    min: float = Field(default=0.0, ge=0)
    max: float | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _shape(self) -> ThinkTime:
        if self.distribution == "exponential" and self.std:
            raise ValueError(
                "'std' applies to 'distribution: normal' only (an exponential's std is its mean)"
            )
        if self.max is not None and self.max < self.min:
            raise ValueError(f"'max' ({self.max:g}) must be >= 'min' ({self.min:g})")
        return self


class Sessions(Strict):
    """``workload.sessions``: multi-turn conversations (:mod:`tpsbench.workload.sessions`). Each turn's
    request carries the whole history, the assistant turns being the text the server returned. Synthetic
    (no dataset): ``turns`` per session, each user message drawn from ``workload.input_tokens``, each
    answer from ``workload.output_tokens``. With ``workload.dataset``: the conversations' own user turns,
    at most ``max_turns``. ``think_s`` (seconds, or a :class:`ThinkTime`) passes between turns."""

    turns: TokenCount = 3
    max_turns: int | None = Field(default=None, ge=1)
    think_s: Annotated[float, Field(ge=0)] | ThinkTime = 0.0


class Trace(Strict):
    """``load[i].trace``: replay a recorded trace on its own clock (:mod:`tpsbench.workload.traces`).
    ``format``: ``mooncake`` (JSONL of ``timestamp`` ms, ``input_length``, ``output_length``, ``hash_ids``:
    one id per ``block_tokens`` block of the prompt, equal ids share a prefix), ``azure`` (CSV with
    ``TIMESTAMP``, ``ContextTokens``, ``GeneratedTokens``) or ``plain`` (CSV with a header, or JSONL, of
    ``time_s``, ``input_tokens``, ``output_tokens``). The window ``[start_s, start_s + duration_s)`` is
    taken on the trace's clock (seconds after its first request), then replayed ``speedup`` times faster."""

    path: Path
    format: Literal["mooncake", "azure", "plain"]
    speedup: float = Field(default=1.0, gt=0)
    start_s: float = Field(default=0.0, ge=0)
    duration_s: float | None = Field(default=None, gt=0)
    block_tokens: int = Field(default=512, ge=1)  # tokens per hash_ids block (Mooncake: 512)

    @field_validator("path")
    @classmethod
    def _exists(cls, v: Path, info: ValidationInfo) -> Path:
        return _input_file(v, info)
