"""The job's own `<output>/metrics.json`, as the user guide defines it."""

from __future__ import annotations

import math
from typing import Any

from pydantic import BaseModel, Field, field_validator

from leadersboard.limits import MAX_PARAM_VALUE_CHARS

__all__ = ["MetricsFile"]


class MetricsFile(BaseModel):
    """The job's `<output>/metrics.json`, as the guide defines it. Other top-level keys are the user's own
    business and are ignored: the guide does not forbid them."""

    params: dict[str, Any] = Field(default_factory=dict)
    metrics: dict[str, float]

    @field_validator("metrics", mode="before")
    @classmethod
    def _numbers_only(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            raise ValueError("must be an object of name -> number")
        for name, number in value.items():
            if isinstance(number, bool) or not isinstance(number, int | float):
                raise ValueError(f"metric {name!r} is {number!r}, not a number")
            if not math.isfinite(number):
                raise ValueError(f"metric {name!r} is {number!r}, not a finite number")
        return value

    def params_as_strings(self) -> dict[str, str]:
        """Every param as the string stored in the record and MLflow, cut at MAX_PARAM_VALUE_CHARS."""
        return {str(k): str(v)[:MAX_PARAM_VALUE_CHARS] for k, v in self.params.items()}

    def long_params(self) -> list[str]:
        """The params whose values `params_as_strings` cuts (the runner notes them in the job's log)."""
        return [str(k) for k, v in self.params.items() if len(str(v)) > MAX_PARAM_VALUE_CHARS]
