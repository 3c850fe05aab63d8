"""Releasing pending jobs to the work queue under the quotas, and failing jobs whose runner vanished or whose
scoring never finished."""

from __future__ import annotations

import logging
from datetime import datetime

from nats.js import JetStreamContext

from dispatcher.scheduler import is_waiting, plan_releases
from dispatcher.settings import DispatcherSettings
from dispatcher.view import JobView
from leadersboard.jobs import JobStore
from leadersboard.liveness import fail_scoring_overdue, fail_silent_runner, runner_silent, scoring_overdue
from leadersboard.models.base import utcnow
from leadersboard.models.queue import JobMessage
from leadersboard.models.records import JobRecord, Quota
from leadersboard.quotas import QuotaStore
from leadersboard.tokens import TokenStore

__all__ = ["Releaser"]

log = logging.getLogger("dispatcher")


class Releaser:
    def __init__(
        self,
        settings: DispatcherSettings,
        js: JetStreamContext,
        jobs: JobStore,
        quotas: QuotaStore,
        tokens: TokenStore,
        view: JobView,
    ) -> None:
        self.settings = settings
        self.js = js
        self.jobs = jobs
        self.quotas = quotas
        self.tokens = tokens
        self.view = view
        self._last_user: str | None = None
        # Released here but not yet seen released in the view (the watcher lags our own writes).
        self._in_flight: dict[str, JobRecord] = {}

    async def release_due(self) -> int:
        records = self._current()
        waiting_users = {r.user for r in records if is_waiting(r)}
        quotas = {user: await self.quotas.effective(user) for user in waiting_users}
        releases = plan_releases(
            records, lambda user: quotas[user].concurrent, queue_slots=self.settings.queue_slots,
            after_user=self._last_user,
        )  # fmt: skip
        for record in releases:
            if await self._owner_disabled(record):
                continue
            await self._release(record, quotas[record.user])
            self._last_user = record.user
        return len(releases)

    def _current(self) -> list[JobRecord]:
        current = dict(self.view.records)
        for sid, released in list(self._in_flight.items()):
            seen = current.get(sid)
            if seen is not None and not is_waiting(seen):
                del self._in_flight[sid]
            else:
                current[sid] = released
        return list(current.values())

    async def _release(self, record: JobRecord, quota: Quota) -> None:
        queued_at = utcnow()
        message = JobMessage(
            submission_id=record.submission_id,
            user=record.user,
            timeout_s=quota.job_timeout_s,
            disk_gib=quota.job_disk_gib,
            memory_gib=quota.job_memory_gib,
            queued_at=queued_at,
        )
        # Published before it is marked: a crash in between re-publishes, and the id deduplicates it.
        await self.js.publish(
            self.settings.jobs_subject,
            message.model_dump_json().encode(),
            headers={"Nats-Msg-Id": record.submission_id},
        )

        def mark_queued(current: JobRecord) -> JobRecord | None:
            if not is_waiting(current):
                return None
            current.queued_at = queued_at
            current.timeout_s = quota.job_timeout_s
            current.disk_gib = quota.job_disk_gib
            current.memory_gib = quota.job_memory_gib
            return current

        updated = await self.jobs.update(record.user, record.submission_id, mark_queued)
        if updated is not None:
            self._in_flight[record.submission_id] = updated
        log.info("released %s of %s", record.submission_id, record.user)

    async def _owner_disabled(self, record: JobRecord) -> bool:
        """Cancel instead of releasing a job whose owner was disabled: one recorded while the admin's
        `user disable` was cancelling the others must not run either."""
        state = await self.tokens.disabled(record.user)
        if state is None:
            return False

        await self.jobs.update(record.user, record.submission_id, state.cancel)
        log.info("not releasing %s: %s is disabled", record.submission_id, record.user)
        return True

    async def fail_lost(self) -> int:
        """Fail running jobs whose runner has been silent too long, or whose scoring has taken too long
        (leadersboard/liveness.py): a job never stays `running`."""
        now = utcnow()
        lost = [r for r in self.view.records.values() if self._lost(r, now)]

        def give_up(current: JobRecord) -> JobRecord | None:
            # Judged again on the stored record: a heartbeat or the scores may have come meanwhile.
            return self._verdict(current, utcnow())

        for record in lost:
            await self.jobs.update(record.user, record.submission_id, give_up)
        return len(lost)

    def _lost(self, record: JobRecord, now: datetime) -> bool:
        s = self.settings
        return runner_silent(record, now=now, after_s=s.runner_lost_after_s) or scoring_overdue(
            record, now=now, after_s=s.scoring_timeout_s
        )

    def _verdict(self, record: JobRecord, now: datetime) -> JobRecord | None:
        """`record` failed in place if it is lost, else None (left as it is)."""
        s = self.settings
        if runner_silent(record, now=now, after_s=s.runner_lost_after_s):
            return fail_silent_runner(record, now=now, after_s=s.runner_lost_after_s)
        if scoring_overdue(record, now=now, after_s=s.scoring_timeout_s):
            return fail_scoring_overdue(record, now=now, after_s=s.scoring_timeout_s)
        return None
