"""The message of the JetStream work queue: one job, released by the dispatcher, claimed by one runner."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from leadersboard.models.base import StrictModel

__all__ = ["JobMessage", "ScoreRequest"]


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


class ScoreRequest(StrictModel):
    """One job's predictions to score against its benchmark's reference, on the scoring work queue.

    Published by the runner when a benchmark job's run ended well, and by ingest for each job of an admin's
    `benchmark rescore`. Only the scorer consumes it.
    """

    version: Literal[1] = 1
    user: str
    submission_id: str
    benchmark: str
    benchmark_version: int
    requested_at: datetime
    rescore: bool = False
    """A re-scoring of a finished job: its status stays as it is, only its scores change."""
