"""An in-memory mirror of the jobs bucket, kept current by a KV watcher, for scheduling decisions.

Listeners (`ViewListener`, e.g. dispatcher/board.py) hear of every change the watcher applies, and of each full
(re)load: called synchronously from the watcher, so they only note what changed and do their I/O elsewhere."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Protocol

from nats.js.kv import KeyValue
from pydantic import ValidationError

from leadersboard.keys import kv_submission_id
from leadersboard.kv_mirror import KvMirror
from leadersboard.models.records import JobRecord

__all__ = ["JobView", "ViewListener"]

log = logging.getLogger("dispatcher")


class ViewListener(Protocol):
    def record_put(self, record: JobRecord) -> None:
        """A record was written (after the initial load)."""

    def record_removed(self, key: str) -> None:
        """The record under the jobs bucket key `key` (`keys.kv_submission_key`) was deleted or purged."""

    def reloaded(self, records: Mapping[str, JobRecord]) -> None:
        """The view was (re)loaded in full, at start and after a reconnect: `records` by submission id."""


class JobView:
    def __init__(self) -> None:
        self.records: dict[str, JobRecord] = {}
        self.listeners: list[ViewListener] = []
        self.changed = asyncio.Event()
        self.mirror = KvMirror[JobRecord]("job view", ">", decode=_decode, loaded=self._loaded, changed=self._changed)
        self.ready = self.mirror.ready
        self.resync = self.mirror.resync
        """Set after a NATS reconnect: the watcher's consumer may be gone, so the view reloads."""

    def put(self, record: JobRecord) -> None:
        self.records[record.submission_id] = record
        self.changed.set()

    async def follow(self, kv: KeyValue) -> None:
        """Keep the view current until cancelled, reloading everything after a reconnect or an error."""
        await self.mirror.run(kv)

    def _loaded(self, records: dict[str, JobRecord]) -> None:
        self.records = {record.submission_id: record for record in records.values()}
        self.changed.set()
        for listener in self.listeners:
            listener.reloaded(self.records)

    def _changed(self, key: str, record: JobRecord | None) -> None:
        if record is None:
            self.records.pop(kv_submission_id(key), None)
            for listener in self.listeners:
                listener.record_removed(key)
            return
        self.put(record)
        for listener in self.listeners:
            listener.record_put(record)


def _decode(key: str, value: bytes) -> JobRecord | None:
    # A record that is not one is left out, loudly: raising would make the mirror reload the whole bucket
    # again and again on that one value, and the dispatcher would stop seeing every other change.
    try:
        return JobRecord.model_validate_json(value)
    except ValidationError as exc:
        log.error("job view: the record under %s is not a job record, left out of scheduling: %s", key, exc)
        return None
