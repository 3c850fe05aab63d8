"""What every model of the platform shares: the strict base and the clock."""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict

__all__ = ["StrictModel", "utcnow"]


def utcnow() -> datetime:
    return datetime.now(UTC)


class StrictModel(BaseModel):
    """A model the platform writes and reads itself: an unknown field is an error, not silently dropped."""

    model_config = ConfigDict(extra="forbid")
