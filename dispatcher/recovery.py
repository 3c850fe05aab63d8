"""Finding uploaded submissions whose bucket event never arrived.

Every submission ingest issued is noted (leadersboard/issued.py). Once a note is older than
`recover_after_s`, the dispatcher asks the store for its manifest: present without a job means the
event was lost on the way, and the submission goes through the same intake as an event would. A note
is dropped as soon as its job exists; a note whose manifest never came expires with the bucket's TTL.
"""

from __future__ import annotations

import asyncio
import logging

from botocore.exceptions import ClientError

from dispatcher.intake import Intake
from dispatcher.settings import DispatcherSettings
from dispatcher.view import JobView
from leadersboard import keys
from leadersboard.issued import IssuedStore
from leadersboard.keys import ManifestKey
from leadersboard.s3 import S3Client

__all__ = ["Recovery"]

log = logging.getLogger("dispatcher")


class Recovery:
    def __init__(
        self, settings: DispatcherSettings, issued: IssuedStore, s3: S3Client, view: JobView, intake: Intake
    ) -> None:
        self.settings = settings
        self.issued = issued
        self.s3 = s3
        self.view = view
        self.intake = intake

    async def recover_unseen(self) -> int:
        """Dispatch the uploaded submissions no event announced; the number dispatched."""
        recovered = 0
        for note in await self.issued.older_than(self.settings.recover_after_s):
            where = ManifestKey(note.user, note.submission_id)
            if note.submission_id not in self.view.records:
                if not await asyncio.to_thread(self._manifest_uploaded, where):
                    continue  # still uploading, or abandoned: the TTL forgets it
                log.warning(
                    "no bucket event for %s of %s: dispatching it from the store", where.submission_id, where.user
                )
                await self.intake.dispatch(where)
                recovered += 1
            await self.issued.forget(note.user, note.submission_id)
        return recovered

    def _manifest_uploaded(self, where: ManifestKey) -> bool:
        key = keys.manifest_key(where.user, where.submission_id)
        try:
            self.s3.head_object(Bucket=self.settings.bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
        return True
