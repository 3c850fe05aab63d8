"""Finding uploaded submissions whose bucket event never arrived.

Every submission ingest issued is noted (leadersboard/issued.py). Once a note is older than
`recover_after_s`, the dispatcher asks the store for its manifest: present without a job means the
event was lost on the way, and the submission goes through the same intake as an event would. A note
is dropped as soon as its job exists, or once its upload URLs expired (plus a grace period) without a
manifest; the bucket's TTL drops whatever is left.

A submission whose dispatch fails in a way that is not an outage is tried on `max_event_deliveries`
passes (counted in memory: a restarted dispatcher tries again as often), then recorded `failed` with the
error and forgotten; the others of the same pass go on meanwhile. An outage ends the pass (every other
submission would meet it too); the next pass tries again.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from dispatcher.faults import describe, is_outage, repeated_failure
from dispatcher.intake import Intake
from dispatcher.settings import DispatcherSettings
from dispatcher.view import JobView
from leadersboard import keys
from leadersboard.issued import IssuedStore
from leadersboard.keys import ManifestKey
from leadersboard.models.base import utcnow
from leadersboard.models.records import IssuedSubmission
from leadersboard.s3 import S3Client, head

__all__ = ["Recovery"]

log = logging.getLogger("dispatcher")

UPLOAD_GRACE_S = 600.0


class Recovery:
    def __init__(
        self, settings: DispatcherSettings, issued: IssuedStore, s3: S3Client, view: JobView, intake: Intake
    ) -> None:
        self.settings = settings
        self.issued = issued
        self.s3 = s3
        self.view = view
        self.intake = intake
        self._failures: dict[str, int] = {}
        """Passes on which a submission's dispatch failed (not for an outage), by submission id."""

    async def recover_unseen(self) -> int:
        """Dispatch the uploaded submissions no event announced; the number dispatched."""
        recovered = 0
        for note in await self.issued.older_than(self.settings.recover_after_s):
            where = ManifestKey(note.user, note.submission_id)
            if note.submission_id in self.view.records:
                pass  # its event came: nothing to do
            elif await asyncio.to_thread(self._manifest_uploaded, where):
                log.warning("no bucket event for %s of %s: dispatching it from the store", *_named(note))
                if not await self._dispatch(where):
                    continue  # tried again on the next pass
                recovered += 1
            elif not _abandoned(note):
                continue  # still uploading
            else:
                log.info("submission %s of %s was never uploaded; not looked for any more", *_named(note))
            self._failures.pop(note.submission_id, None)
            await self.issued.forget(note.user, note.submission_id)
        return recovered

    async def _dispatch(self, where: ManifestKey) -> bool:
        """True once the submission has a record: dispatched, or given up on with the reason."""
        try:
            await self.intake.dispatch(where)
        except Exception as exc:
            if is_outage(exc):
                raise
            failures = self._failures.get(where.submission_id, 0) + 1
            self._failures[where.submission_id] = failures
            if failures < self.settings.max_event_deliveries:
                log.warning("recovering %s of %s failed (%s); trying again", where.submission_id, where.user,
                            describe(exc))  # fmt: skip
                return False
            await self.intake.dead_letter(where, repeated_failure(failures, exc))
        return True

    def _manifest_uploaded(self, where: ManifestKey) -> bool:
        return head(self.s3, self.settings.bucket, keys.manifest_key(where.user, where.submission_id)) is not None


def _abandoned(note: IssuedSubmission) -> bool:
    """Its upload URLs expired a while ago (a PUT started just before expiry may still be finishing)."""
    if note.uploads_expire_at is None:
        return False  # the bucket's TTL forgets it
    return utcnow() > note.uploads_expire_at + timedelta(seconds=UPLOAD_GRACE_S)


def _named(note: IssuedSubmission) -> tuple[str, str]:
    return note.submission_id, note.user
