"""What every config section shares: the base model (unknown keys are errors)
and the constrained value types more than one section uses."""
from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from fulcrum.config.units import Duration


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _absolute_path(path: str) -> str:
    if not path.startswith("/"):
        raise ValueError(f"must start with '/' (got {path!r})")
    return path


PositiveDuration = Annotated[Duration, Field(gt=0)]
UrlPath = Annotated[str, AfterValidator(_absolute_path)]
