"""What scoring does to a job record, and which jobs a score request may touch: the one home of both.

A benchmark job whose run ended well waits for its scores `running` (leadersboard/liveness.py
`waiting_for_scores`). The scorer then records either

- `completed` with its `scores` (the job's self-reported `metrics` stay as they are), or
- `failed` with a reason: `predictions rejected: <what to fix>`, `the benchmark's reference data is damaged:
  <what> (admins: re-register it)`, or `scoring failed: <an outage or a refusal>`.

A rescore (an admin's `benchmark rescore`) takes a finished job whose predictions went to the scorer:
completed, or failed by scoring (including the scoring timeout). It changes the scores, and the status only
between completed and failed; the finish time stays the run's.
"""

from __future__ import annotations

from datetime import datetime

from leadersboard.liveness import waiting_for_scores
from leadersboard.models.records import JobRecord, JobStatus
from leadersboard.models.scores import Scores

__all__ = [
    "PREDICTIONS_REJECTED",
    "REFERENCE_DAMAGED",
    "SCORING_FAILED",
    "damaged_reason",
    "failed",
    "rejected_reason",
    "rescorable",
    "scored",
    "takes",
]

PREDICTIONS_REJECTED = "predictions rejected"
REFERENCE_DAMAGED = "the benchmark's reference data is damaged"
SCORING_FAILED = "scoring failed"
"""The scorer could not score: an outage that outlasted the retries, a refusal of the store or MLflow."""


def rejected_reason(problem: str) -> str:
    """The reason of a job whose predictions cannot be scored; `problem` says what to fix (BadPredictions)."""
    return f"{PREDICTIONS_REJECTED}: {problem}"


def damaged_reason(problem: str) -> str:
    """The reason of a job whose benchmark's reference cannot be used; `problem` never names an image."""
    return f"{REFERENCE_DAMAGED}: {problem} (admins: re-register it)"


def rescorable(record: JobRecord) -> bool:
    """A finished job whose predictions went to the scorer: completed, or failed by scoring. Not a cancelled
    job, nor one that failed before its predictions were stored."""
    return record.scoring_requested_at is not None and record.status in (JobStatus.COMPLETED, JobStatus.FAILED)


def takes(record: JobRecord, *, rescore: bool) -> bool:
    """Whether a score request (a rescore or not) applies to the job as it is now."""
    return rescorable(record) if rescore else waiting_for_scores(record)


def scored(record: JobRecord, scores: Scores, *, now: datetime, rescore: bool) -> JobRecord | None:
    """`record` completed with `scores` (changed in place), or None when the request no longer applies."""
    if not takes(record, rescore=rescore):
        return None
    if not rescore:
        record.finished_at = now
    record.status = JobStatus.COMPLETED
    record.error = None
    record.scores = scores
    return record


def failed(record: JobRecord, reason: str, *, now: datetime, rescore: bool) -> JobRecord | None:
    """`record` failed by scoring with `reason`, its scores cleared (changed in place), or None when the
    request no longer applies."""
    if not takes(record, rescore=rescore):
        return None
    if not rescore:
        record.finished_at = now
    record.status = JobStatus.FAILED
    record.error = reason
    record.scores = None
    return record
