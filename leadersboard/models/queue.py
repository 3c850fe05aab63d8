"""The message of the JetStream work queue: one job, released by the dispatcher, claimed by one runner."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from leadersboard.models.base import StrictModel

__all__ = ["JobMessage"]


class JobMessage(StrictModel):
    """One job on the JetStream work queue; the runner reads the rest from the job record."""

    version: Literal[1] = 1
    submission_id: str
    user: str
    timeout_s: float | None = None
    """The owner's time limit at release (None: the runner's default); the runner copies it into the record."""
    queued_at: datetime | None = None
    """When it was released; copied into the record by whichever comes first, the dispatcher or the runner."""
    disk_gib: float | None = None
    """The owner's per-job disk limit at release (None: the runner's default)."""
    memory_gib: float | None = None
    """The owner's per-job memory limit at release (None: the runner's default)."""
