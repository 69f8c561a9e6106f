"""Building blocks of the scenario schema: the strict model base every block derives from (unknown keys
and booleans-as-numbers are errors) and a token count (a fixed integer, or a distribution drawn per
request).

    >>> Distribution(mean=100, std=10).max is None
    True
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from tpsbench.config.errors import mentions

__all__ = ["Distribution", "Strict", "TokenCount"]


class Strict(BaseModel):
    """A scenario block: unknown keys are errors, values are frozen, booleans are not numbers."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_for_numbers(cls, v: Any, info: ValidationInfo) -> Any:
        # pydantic's lax mode turns `true` into 1; in a scenario file that is always a mistake.
        if isinstance(v, bool) and info.field_name is not None:
            ann = cls.model_fields[info.field_name].annotation
            if mentions(ann, (int, float)) and not mentions(ann, (bool,)):
                raise PydanticCustomError("bool_not_number", "expected a number, got a boolean")
        return v


class Distribution(Strict):
    """A token count drawn per request: ``clip(round(normal(mean, std)), min, max)`` (no upper bound if
    ``max`` is null)."""

    mean: float = Field(gt=0)
    std: float = Field(default=0.0, ge=0)
    min: int = Field(default=1, ge=1)
    max: int | None = None

    @model_validator(mode="after")
    def _bounds(self) -> Distribution:
        if self.max is not None and self.max < self.min:
            raise ValueError(f"'max' ({self.max}) must be >= 'min' ({self.min})")
        return self


def _token_count_tag(v: Any) -> str:
    # An explicit discriminator: a mapping is a Distribution, anything else must be an int. Without it
    # pydantic reports the errors of both union members, which reads as noise in a scenario file.
    return "Distribution" if isinstance(v, dict | Distribution) else "int"


TokenCount = Annotated[
    Annotated[int, Tag("int"), Field(ge=1)] | Annotated[Distribution, Tag("Distribution")],
    Discriminator(_token_count_tag),
]
"""A token count: a fixed integer >= 1, or a :class:`Distribution` drawn per request."""
