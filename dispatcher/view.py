"""An in-memory mirror of the jobs bucket, kept current by a KV watcher, for scheduling decisions.

Listeners (`ViewListener`, e.g. dispatcher/board.py) hear of every change the watcher applies, and of each full
(re)load: called synchronously from the watcher, so they only note what changed and do their I/O elsewhere."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Protocol

from nats.js.kv import KeyValue

from leadersboard import nats_io
from leadersboard.keys import kv_submission_id
from leadersboard.models.records import JobRecord

__all__ = ["JobView", "ViewListener"]

log = logging.getLogger("dispatcher")
RESTART_DELAY_S = 1.0


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
        self.ready = asyncio.Event()
        self.resync = asyncio.Event()
        """Set after a NATS reconnect: the watcher's consumer may be gone, so the view reloads."""

    def put(self, record: JobRecord) -> None:
        self.records[record.submission_id] = record
        self.changed.set()

    async def follow(self, kv: KeyValue) -> None:
        """Keep the view current until cancelled, reloading everything after a reconnect or an error."""
        while True:
            try:
                await self._follow_once(kv)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("job view watcher failed (%r); reloading", exc)
                await asyncio.sleep(RESTART_DELAY_S)

    async def _follow_once(self, kv: KeyValue) -> None:
        self.resync.clear()
        watcher = await kv.watch(">")
        loaded: dict[str, JobRecord] = {}
        initial = True
        resync = asyncio.create_task(self.resync.wait())
        try:
            while True:
                update = asyncio.create_task(nats_io.next_update(watcher))
                await asyncio.wait({update, resync}, return_when=asyncio.FIRST_COMPLETED)
                if resync.done():
                    update.cancel()
                    return
                entry = update.result()
                target = loaded if initial else self.records
                if entry is None:
                    if initial:  # the full current state has arrived: swap it in at once
                        self.records, initial = loaded, False
                        self.ready.set()
                        self.changed.set()
                        for listener in self.listeners:
                            listener.reloaded(self.records)
                    continue
                if entry.operation in ("DEL", "PURGE") or not entry.value:
                    target.pop(kv_submission_id(entry.key), None)
                    if not initial:
                        for listener in self.listeners:
                            listener.record_removed(entry.key)
                else:
                    record = JobRecord.model_validate_json(entry.value)
                    target[record.submission_id] = record
                    if not initial:
                        self.changed.set()
                        for listener in self.listeners:
                            listener.record_put(record)
        finally:
            resync.cancel()
            await nats_io.stop_watcher(watcher)
