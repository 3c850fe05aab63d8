"""Submissions ingest issued upload URLs for, kept until their job exists: the dispatcher's safety net.

The bucket event of a manifest is the fast path from upload to job. It can be lost where no
acknowledgement covers it (an object store restarting before its event log reached disk), so ingest
notes every submission it issues, and the dispatcher looks in the store for the manifests of those
still without a job. Keys are `<user>.<submission id>` (keys.kv_submission_key); the bucket's TTL forgets
abandoned ones.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from nats.js.kv import KeyValue
from pydantic import ValidationError

from leadersboard.keys import kv_submission_key
from leadersboard.models.base import utcnow
from leadersboard.models.records import IssuedSubmission
from leadersboard.nats_io import kv_keys, kv_read

__all__ = ["IssuedStore"]


class IssuedStore:
    def __init__(self, kv: KeyValue) -> None:
        self._kv = kv

    async def note(self, user: str, submission_id: str, *, uploads_expire_in_s: float) -> None:
        now = utcnow()
        issued = IssuedSubmission(
            user=user,
            submission_id=submission_id,
            issued_at=now,
            uploads_expire_at=now + timedelta(seconds=uploads_expire_in_s),
        )
        await self._kv.put(kv_submission_key(user, submission_id), issued.model_dump_json().encode())

    async def forget(self, user: str, submission_id: str) -> None:
        await self._kv.purge(kv_submission_key(user, submission_id))

    async def older_than(self, age_s: float, *, now: datetime | None = None) -> list[IssuedSubmission]:
        """Issued submissions at least `age_s` old, oldest first."""
        cutoff = (now or utcnow()) - timedelta(seconds=age_s)
        due = []
        for key in await kv_keys(self._kv):  # exact, unlike kv.keys() (see nats_io.kv_keys)
            raw = await kv_read(self._kv, key)
            try:
                issued = IssuedSubmission.model_validate_json(raw[0] if raw else b"")
            except ValidationError:
                continue  # forgotten meanwhile, or not ours
            if issued.issued_at <= cutoff:
                due.append(issued)
        return sorted(due, key=lambda issued: issued.issued_at)
