"""The release plan: per-user concurrency, oldest first, round robin, bounded queue."""

from __future__ import annotations

from datetime import timedelta

from dispatcher.scheduler import plan_releases
from leadersboard.models.base import utcnow
from leadersboard.models.records import JobRecord, JobStatus

T0 = utcnow()


def job(user: str, n: int, status: JobStatus = JobStatus.PENDING, *, queued: bool = False) -> JobRecord:
    return JobRecord(
        submission_id=f"{n:012x}{user[:4]:0>12}",
        user=user,
        status=status,
        entrypoint="main.py",
        config="config.yaml",
        created_at=T0 + timedelta(seconds=n),
        queued_at=T0 if queued else None,
    )


def ids(records: list[JobRecord]) -> list[tuple[str, int]]:
    return [(r.user, int(r.submission_id[:12], 16)) for r in records]


def test_per_user_limit_counts_running_and_queued_jobs() -> None:
    records = [job("alice", 1, JobStatus.RUNNING), job("alice", 2, queued=True), job("alice", 3), job("alice", 4)]
    assert plan_releases(records, lambda _: 2, queue_slots=10) == []
    assert ids(plan_releases(records, lambda _: 3, queue_slots=10)) == [("alice", 3)]


def test_oldest_first_within_a_user() -> None:
    records = [job("alice", 5), job("alice", 2), job("alice", 9)]
    assert ids(plan_releases(records, lambda _: 2, queue_slots=10)) == [("alice", 2), ("alice", 5)]


def test_round_robin_over_users_with_waiting_jobs() -> None:
    records = [job("alice", n) for n in range(1, 100)] + [job("bob", 200), job("carol", 300), job("carol", 301)]
    plan = ids(plan_releases(records, lambda _: 2, queue_slots=5))
    assert plan == [("alice", 1), ("bob", 200), ("carol", 300), ("alice", 2), ("carol", 301)]


def test_queue_slots_bound_what_waits_in_the_work_queue() -> None:
    records = [job("alice", 1, queued=True), job("alice", 2), job("bob", 3)]
    assert ids(plan_releases(records, lambda _: 10, queue_slots=2)) == [("alice", 2)]
    assert plan_releases(records, lambda _: 10, queue_slots=1) == []


def test_rotation_continues_after_the_last_released_user() -> None:
    records = [job("alice", 1), job("bob", 2), job("carol", 3)]
    assert ids(plan_releases(records, lambda _: 1, queue_slots=1, after_user="alice")) == [("bob", 2)]
    assert ids(plan_releases(records, lambda _: 1, queue_slots=1, after_user="carol")) == [("alice", 1)]


def test_terminal_jobs_free_their_slot() -> None:
    records = [job("alice", 1, JobStatus.COMPLETED), job("alice", 2, JobStatus.FAILED), job("alice", 3)]
    assert ids(plan_releases(records, lambda _: 1, queue_slots=1)) == [("alice", 3)]
