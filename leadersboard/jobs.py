"""Job records in a NATS key-value bucket, keyed `<user>.<submission id>` (keys.kv_submission_key), updated
compare-and-set."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from nats.js.errors import KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from leadersboard.keys import kv_submission_id, kv_submission_key, kv_submissions
from leadersboard.models.records import JobRecord
from leadersboard.nats_io import kv_keys, kv_read, kv_values

__all__ = ["JobStore", "Mutation"]

Mutation = Callable[[JobRecord], JobRecord | None]
"""Takes the current record, returns the new one, or None to leave it as it is."""


class JobStore:
    def __init__(self, kv: KeyValue) -> None:
        self._kv = kv

    async def create(self, record: JobRecord) -> bool:
        """Store a new record; False when one already exists (a redelivered event)."""
        try:
            await self._kv.create(kv_submission_key(record.user, record.submission_id), _encode(record))
        except KeyWrongLastSequenceError:
            return False
        return True

    async def get(self, user: str, submission_id: str) -> JobRecord | None:
        found = await self._get(kv_submission_key(user, submission_id))
        return None if found is None else found[0]

    async def find(self, submission_id: str) -> JobRecord | None:
        """Any user's record by id (for admins)."""
        found = await self._watch(kv_submissions(submission_id=submission_id))
        return found[0] if found else None

    async def update(self, user: str, submission_id: str, mutate: Mutation) -> JobRecord | None:
        """Apply `mutate` atomically, retrying on concurrent writes; returns the stored record."""
        key = kv_submission_key(user, submission_id)
        while True:
            found = await self._get(key)
            if found is None:
                return None
            current, revision = found
            changed = mutate(current.model_copy(deep=True))
            if changed is None:
                return current
            try:
                await self._kv.update(key, _encode(changed), last=revision)
            except KeyWrongLastSequenceError:
                continue
            return changed

    async def remove(self, user: str, submission_id: str) -> None:
        """Purge the record, its history with it (a deletion: ingest/deletion.py)."""
        await self._kv.purge(kv_submission_key(user, submission_id))

    async def list_records(self, user: str | None = None) -> list[JobRecord]:
        """All records of `user` (or everyone's), oldest first."""
        return sorted(await self._watch(kv_submissions(user=user)), key=lambda r: r.submission_id)

    async def page(
        self, user: str | None, *, limit: int, after: str | None = None
    ) -> tuple[list[JobRecord], str | None]:
        """A page of `user`'s records (None: everyone's), newest first: the `limit` next after the submission id
        `after` (ids sort by creation time), and the cursor of the next page (None: this is the last).

        Lists only `user`'s keys (the server filters them by subject), then reads the page's records alone.
        """
        listed = await kv_keys(self._kv, kv_submissions(user=user))
        newest_first = sorted(listed, key=kv_submission_id, reverse=True)
        if after is not None:
            newest_first = [key for key in newest_first if kv_submission_id(key) < after]
        window = newest_first[:limit]
        found = await asyncio.gather(*(self._get(key) for key in window))
        records = [record for record, _ in filter(None, found)]  # a key deleted since the listing is left out
        more = len(newest_first) > limit
        return records, kv_submission_id(window[-1]) if more else None

    async def _watch(self, pattern: str) -> list[JobRecord]:
        """The current records whose keys match the subject pattern, filtered by the server."""
        values = await kv_values(self._kv, pattern)
        return [JobRecord.model_validate_json(value) for value in values.values()]

    async def _get(self, key: str) -> tuple[JobRecord, int] | None:
        found = await kv_read(self._kv, key)
        return None if found is None else (JobRecord.model_validate_json(found[0]), found[1])


def _encode(record: JobRecord) -> bytes:
    return record.model_dump_json().encode()
