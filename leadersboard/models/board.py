"""The leaderboard view's records (the board KV bucket, `NatsSettings.board_kv_bucket`).

One `BoardEntry` per completed job, under `keys.kv_board_key(user, id)`, derived from its job record by
`BoardEntry.of` and nothing else, so that the view can always be rebuilt from the records. The dispatcher keeps
the entries (dispatcher/board.py); ingest serves boards from them. `meta.rebuild` holds an admin's
`BoardRebuild` request, `meta.built` the dispatcher's `BoardBuilt` answer.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from leadersboard.models.base import StrictModel
from leadersboard.models.records import JobRecord, JobStatus
from leadersboard.models.scores import Scores

__all__ = ["BoardBuilt", "BoardEntry", "BoardRebuild"]


class BoardEntry(StrictModel):
    """A completed job as a board shows it: verified (`scores` set, on a benchmark) or self-reported (`metrics`)."""

    version: Literal[1] = 1
    submission_id: str
    user: str
    method: str | None = None
    description: str | None = None
    created_at: datetime
    finished_at: datetime | None = None
    mlflow_run_url: str | None = None
    benchmark: str | None = None
    benchmark_version: int | None = None
    scores: Scores | None = None
    """The platform's scores, with intervals (verified entries)."""
    dataset: str | None = None
    """What the job said it ran on (self-reported entries)."""
    metrics: dict[str, float] = Field(default_factory=dict)
    """What the job reported in its metrics.json: shown only in the self-reported table."""

    @property
    def verified(self) -> bool:
        return self.scores is not None

    @classmethod
    def of(cls, record: JobRecord) -> BoardEntry | None:
        """The entry of `record`, or None when it belongs on no board (not completed, or a benchmark job that
        was never scored)."""
        if record.status is not JobStatus.COMPLETED:
            return None
        if record.benchmark is not None and record.scores is None:
            return None
        return cls(
            submission_id=record.submission_id,
            user=record.user,
            # The submission's own label first; else what the job logged as its `method` param.
            method=_text(record.metadata.get("method") or record.params.get("method")),
            description=_text(record.metadata.get("description")),
            created_at=record.created_at,
            finished_at=record.finished_at,
            mlflow_run_url=record.mlflow_run_url,
            benchmark=record.benchmark,
            benchmark_version=record.benchmark_version,
            scores=record.scores,
            dataset=None if record.benchmark is not None else record.dataset,
            metrics={} if record.benchmark is not None else dict(record.metrics),
        )


def _text(value: object) -> str | None:
    return None if value is None else str(value)


class BoardRebuild(StrictModel):
    """`meta.rebuild`: an admin asked for the view to be rebuilt from the job records."""

    version: Literal[1] = 1
    request_id: str
    requested_at: datetime
    requested_by: str


class BoardBuilt(StrictModel):
    """`meta.built`: the dispatcher's last full rebuild of the view."""

    version: Literal[1] = 1
    request_id: str | None
    """The `BoardRebuild` it answered; None for a rebuild of its own (an empty or lost view at start)."""
    built_at: datetime
    entries: int
    took_s: float
