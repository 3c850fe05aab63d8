"""Deletion and retention: the admins' retention policy (a record in the quotas KV bucket) and the API's reports of
a deletion, a retention sweep and the storage each user takes (README "Deleting submissions, retention")."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from leadersboard.models.base import StrictModel

__all__ = [
    "MAX_RETENTION_DAYS",
    "USAGE_AREAS",
    "DeletionReport",
    "RetentionPolicy",
    "StorageUse",
    "SweepReport",
    "UsageReport",
    "UserUsage",
]

MAX_RETENTION_DAYS = 36_500
"""A hundred years: beyond that a date overflows, and "keep" (None) says it better."""


class RetentionPolicy(StrictModel):
    """How long what a submission leaves behind is kept; None: for ever. Key `retention` in the quotas bucket."""

    version: Literal[1] = 1
    submission_files_days: int | None = Field(default=None, ge=1, le=MAX_RETENTION_DAYS)
    """Days after a job finished that its submitted files (and the blobs no kept submission shares) are kept.
    The job record, its results and its MLflow run stay: the leaderboard is unchanged."""
    results_days: int | None = Field(default=None, ge=1, le=MAX_RETENTION_DAYS)
    """Days after a job finished that the whole submission is kept: then it is deleted as `admin delete` does
    (record, results, MLflow run, files), and leaves the leaderboard."""
    updated_at: datetime | None = None
    updated_by: str | None = None


class DeletionReport(StrictModel):
    """What `DELETE /api/v1/submissions/{id}` removed."""

    submission_id: str
    user: str
    objects_deleted: int
    """Objects under the submission's `submissions/` and `results/` prefixes, and its blobs no other shares."""
    blobs_kept: int
    """Deduplicated files kept because another submission of the user still uses them (or may: one uploading)."""
    mlflow_run: Literal["deleted", "already gone", "none"]


class SweepReport(StrictModel):
    """One pass of the retention sweep (ingest/retention.py)."""

    files_expired: list[str] = Field(default_factory=list)
    """Submissions whose files were deleted (their records and results kept)."""
    submissions_deleted: list[str] = Field(default_factory=list)
    """Submissions deleted whole (`results_days`)."""
    objects_deleted: int = 0
    """Objects of the submissions above and of the abandoned submissions and orphan results below (the unused blobs
    are counted apart)."""
    uploads_aborted: int = 0
    """Multipart uploads older than `stale_upload_s` that nobody completed."""
    orphan_blobs_deleted: int = 0
    """Blobs no submission uses any more (left by a deletion while one of the user's uploads was in progress)."""
    abandoned_submissions_deleted: int = 0
    """Submissions whose manifest never came (a client gave up): their uploaded files, after `orphan_upload_grace_s`."""
    orphan_results_deleted: int = 0
    """Results of submissions without a record (written after the submission's deletion, by a late scorer)."""
    failures: list[str] = Field(default_factory=list)
    """Submissions the pass could not finish (tried again on the next pass), with the reason."""


class StorageUse(StrictModel):
    bytes: int = 0
    objects: int = 0


class UserUsage(StrictModel):
    submissions: StorageUse = Field(default_factory=StorageUse)
    blobs: StorageUse = Field(default_factory=StorageUse)
    results: StorageUse = Field(default_factory=StorageUse)

    @property
    def total_bytes(self) -> int:
        return self.submissions.bytes + self.blobs.bytes + self.results.bytes


class UsageReport(StrictModel):
    """Storage per user in the main bucket, under `submissions/`, `blobs/` and `results/` (MLflow's artifacts and
    benchmarks are not any user's)."""

    users: dict[str, UserUsage] = Field(default_factory=dict)


USAGE_AREAS = ("submissions", "blobs", "results")
"""The top-level prefixes of the main bucket that belong to a user (`<area>/<user>/...`, leadersboard/keys.py)."""
