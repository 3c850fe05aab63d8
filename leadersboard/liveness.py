"""When a running job's runner counts as lost, and the failed record that says so: the rule, once.

A runner shows it is alive by the job's `heartbeat_at` (every couple of seconds while the job runs); before its
first heartbeat the start of the run stands in for one, and the record's creation before that. A running job
whose runner has shown no sign of life for a limit is *silent*. Two parts of the platform look at silence, each
with its own limit, and both end the job with the same record (`_fail_runner_lost`):

- the runner that receives a job's message again (JetStream redelivers it after `ack_wait_s` when the runner
  holding it died): silent for `heartbeat_stale_s` means it may take the job over, unless `max_attempts` runs
  were made already, then the job fails (`runner lost: runner <id> vanished; <n> attempts made`);
- the dispatcher's sweep, for when no runner is left to receive the message: silent for `runner_lost_after_s`
  fails the job (`runner lost: runner <id> stopped reporting for over <n> s`).

A benchmark job whose run ended well stays `running` while the scorer works on its predictions
(`scoring_requested_at` set): its runner is done and sends no heartbeat, so it is never silent. It has its own
bound instead: the dispatcher's sweep fails it once scoring has taken `scoring_timeout_s`
(`scoring did not finish within <n> s`).

docs/failure-reasons.md explains `runner lost` to users.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from leadersboard.models.records import JobRecord, JobStatus

__all__ = [
    "RUNNER_LOST",
    "SCORING_TIMED_OUT",
    "fail_scoring_overdue",
    "fail_silent_runner",
    "fail_vanished_runner",
    "last_sign_of_life",
    "runner_silent",
    "scoring_overdue",
    "waiting_for_scores",
]

RUNNER_LOST = "runner lost"
"""How the reason of a job failed by this rule begins."""
SCORING_TIMED_OUT = "scoring did not finish"
"""How the reason of a job whose scoring took too long begins."""


def last_sign_of_life(record: JobRecord) -> datetime:
    """When the job's runner last showed it was alive: its last heartbeat, else the start of the run."""
    return record.heartbeat_at or record.started_at or record.created_at


def waiting_for_scores(record: JobRecord) -> bool:
    """True for a job whose run ended well and whose predictions are with the scorer: its runner is done."""
    return record.status is JobStatus.RUNNING and record.scoring_requested_at is not None


def runner_silent(record: JobRecord, *, now: datetime, after_s: float) -> bool:
    """True for a running job whose runner has shown no sign of life for `after_s` seconds (never for a job
    waiting for its scores: `scoring_overdue` bounds those)."""
    return (
        record.status is JobStatus.RUNNING
        and not waiting_for_scores(record)
        and now - last_sign_of_life(record) >= timedelta(seconds=after_s)
    )


def scoring_overdue(record: JobRecord, *, now: datetime, after_s: float) -> bool:
    """True for a job that has been waiting for its scores for `after_s` seconds."""
    requested_at = record.scoring_requested_at
    return waiting_for_scores(record) and requested_at is not None and now - requested_at >= timedelta(seconds=after_s)


def fail_vanished_runner(record: JobRecord, *, now: datetime) -> JobRecord:
    """The runner's verdict on a silent job whose message came back with no attempt left."""
    return _fail_runner_lost(record, now, f"vanished; {record.attempts} attempts made")


def fail_silent_runner(record: JobRecord, *, now: datetime, after_s: float) -> JobRecord:
    """The dispatcher's verdict on a job silent for `after_s` seconds (no runner took it over)."""
    return _fail_runner_lost(record, now, f"stopped reporting for over {after_s:.0f} s")


def fail_scoring_overdue(record: JobRecord, *, now: datetime, after_s: float) -> JobRecord:
    """The dispatcher's verdict on a job whose scoring took `after_s` seconds (the scorer down, or stuck):
    `record`, changed in place and returned. Its predictions stay stored: an admin's rescore can still score it."""
    record.status = JobStatus.FAILED
    record.error = f"{SCORING_TIMED_OUT} within {after_s:.0f} s"
    record.finished_at = now
    return record


def _fail_runner_lost(record: JobRecord, now: datetime, detail: str) -> JobRecord:
    """`record`, changed in place and returned: failed at `now` with `runner lost: runner <id> <detail>`.

    Only the status, error and finish time change; the runner, the start and the last heartbeat stay, so the
    record still says who ran the job, from when, and when it was last heard of.
    """
    record.status = JobStatus.FAILED
    record.error = f"{RUNNER_LOST}: runner {record.runner} {detail}"
    record.finished_at = now
    return record
