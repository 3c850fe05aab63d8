"""Which pending jobs to release to the work queue: per-user concurrency, oldest first, round robin.

A job is *active* once released (queued) and until it ends. A user never has more active jobs than
their `concurrent` quota. Besides, only `queue_slots` released jobs may wait in the work queue at once
(jobs are released as runners take them), so the choice of who runs next is made here, round robin over
the users with waiting jobs, and not by the order of a long queue: a user with a hundred waiting jobs
delays another user's single job by at most `queue_slots` jobs.
"""

from __future__ import annotations

from collections import Counter, defaultdict, deque
from collections.abc import Callable, Iterable

from leadersboard.models.records import JobRecord, JobStatus

__all__ = ["is_active", "is_waiting", "plan_releases"]


def is_active(record: JobRecord) -> bool:
    return record.status is JobStatus.RUNNING or (record.status is JobStatus.PENDING and record.queued_at is not None)


def is_waiting(record: JobRecord) -> bool:
    return record.status is JobStatus.PENDING and record.queued_at is None


def plan_releases(
    records: Iterable[JobRecord],
    concurrency_of: Callable[[str], int],
    *,
    queue_slots: int,
    after_user: str | None = None,
) -> list[JobRecord]:
    """The jobs to release now, in order: one per user per round, users in rotation after `after_user`."""
    active: Counter[str] = Counter()
    queued = 0
    waiting: dict[str, deque[JobRecord]] = defaultdict(deque)
    for record in sorted(records, key=lambda r: (r.created_at, r.submission_id)):
        if is_active(record):
            active[record.user] += 1
            queued += record.status is JobStatus.PENDING
        elif is_waiting(record):
            waiting[record.user].append(record)
    users = sorted(waiting)
    if after_user is not None:
        users = [u for u in users if u > after_user] + [u for u in users if u <= after_user]
    limits = {user: concurrency_of(user) for user in users}
    releases: list[JobRecord] = []
    free = queue_slots - queued
    while free > 0:
        released_this_round = False
        for user in users:
            if free > 0 and waiting[user] and active[user] < limits[user]:
                releases.append(waiting[user].popleft())
                active[user] += 1
                free -= 1
                released_this_round = True
        if not released_this_round:
            break
    return releases
