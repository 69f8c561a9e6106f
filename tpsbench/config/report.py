"""The scenario's ``report:`` section: what the report draws besides the run. ``marks`` are the user's
own reference numbers (a vendor's claim, an SLA, last quarter's result): the headline reads the run
against them and the Pareto chart draws them, a ``tps_user`` mark as a vertical line and an
``output_tps`` mark as a horizontal one. For a run of the bundled reference endpoint they stand beside
the published Maverick figures (:mod:`tpsbench.reference.published`, the same shape: who, speed, note).

    >>> Report.model_validate({"marks": [{"name": "vendor X", "tps_user": 800}]}).marks[0].tps_user
    800.0
    >>> parse_mark("SLA:output_tps=50000,note=contract, p50").note
    'contract, p50'
"""

from __future__ import annotations

import re

from pydantic import Field, ValidationError, model_validator

from tpsbench.config.base import Strict
from tpsbench.config.errors import (
    ScenarioError,
    ScenarioIssue,
    SchemaHints,
    did_you_mean,
    issues_from_validation,
)

__all__ = ["MARK_KINDS", "Mark", "Report", "parse_mark"]

MARK_KINDS: tuple[str, ...] = ("tps_user", "output_tps")  # what a mark may give: the Pareto chart's axes


class Mark(Strict):
    """One reference number to read a run against: a per-user speed (``tps_user``, median TPS/user,
    tokens/s), a server throughput (``output_tps``, output tokens/s of the whole deployment), or both."""

    name: str = Field(min_length=1, max_length=40)
    tps_user: float | None = Field(default=None, gt=0)
    output_tps: float | None = Field(default=None, gt=0)
    note: str = ""

    @model_validator(mode="after")
    def _some_number(self) -> Mark:
        if self.tps_user is None and self.output_tps is None:
            raise ValueError(
                f"a mark needs 'tps_user', 'output_tps' or both (mark {self.name!r} has neither)"
            )
        return self


class Report(Strict):
    """``report:``: ``marks``, a list of :class:`Mark`."""

    marks: list[Mark] = Field(default_factory=list, max_length=12)


CLI_MARK = "--mark"


# A mark's name ends at the first colon followed by KEY= (a name may hold colons of its own); a comma
# starts the next KEY=VALUE only when KEY= follows it, so a note may hold commas and colons.
_NAME_END = re.compile(r":(?=\s*[A-Za-z_]\w*\s*=)")
_NEXT_KEY = re.compile(r",(?=\s*[A-Za-z_]\w*\s*=)")


def parse_mark(text: str) -> Mark:
    """A mark given on the command line: ``NAME:KEY=VALUE[,KEY=VALUE...]`` with keys ``tps_user``,
    ``output_tps`` and ``note``, e.g. ``"vendor X:tps_user=800"``. A comma starts the next key only when
    ``KEY=`` follows it, so a note may hold commas and colons: ``"vendor X:tps_user=800,note=blog, May"``.
    :class:`ScenarioError` (file ``command line``, field ``--mark``) naming what was expected."""
    found = _NAME_END.search(text)
    name = text[: found.start()].strip() if found else ""
    if found is None or not name:
        raise ScenarioError(
            "command line",
            None,
            CLI_MARK,
            f"expected NAME:KEY=VALUE, e.g. 'vendor X:tps_user=800', got {text!r}",
        )
    fields: dict[str, object] = {"name": name}
    allowed = [*MARK_KINDS, "note"]
    for item in _NEXT_KEY.split(text[found.end() :]):
        key, eq, value = (s.strip() for s in item.partition("="))
        if not eq or key not in allowed:
            hint = did_you_mean(key, allowed) or f" (allowed: {', '.join(allowed)})"
            raise ScenarioError("command line", None, CLI_MARK, f"unknown key {key!r} in {text!r}{hint}")
        if key == "note":
            fields[key] = value
            continue
        try:
            fields[key] = float(value.replace("_", ""))
        except ValueError:
            raise ScenarioError(
                "command line", None, f"{CLI_MARK} {key}", f"expected a number > 0, got {value!r}"
            ) from None
    try:
        return Mark.model_validate(fields)
    except ValidationError as e:
        issues = issues_from_validation(e, None, "command line", SchemaHints(Mark, {}, {}))
        raise ScenarioError.from_issues(
            [
                ScenarioIssue(i.file, None, f"{CLI_MARK} {i.field}".strip(), f"{i.message} (in {text!r})")
                for i in issues
            ]
        ) from None
