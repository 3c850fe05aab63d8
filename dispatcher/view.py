"""An in-memory mirror of the jobs bucket, kept current by a KV watcher, for scheduling decisions."""

from __future__ import annotations

import asyncio
import logging

from nats.js.kv import KeyValue

from leadersboard.models import JobRecord

__all__ = ["JobView"]

log = logging.getLogger("dispatcher")


class JobView:
    def __init__(self) -> None:
        self.records: dict[str, JobRecord] = {}
        self.changed = asyncio.Event()
        self.ready = asyncio.Event()

    def put(self, record: JobRecord) -> None:
        self.records[record.submission_id] = record
        self.changed.set()

    async def follow(self, kv: KeyValue) -> None:
        """Load every record, set `ready`, then apply each change as it happens (until cancelled)."""
        watcher = await kv.watch(">")
        try:
            async for entry in watcher:
                if entry is None:
                    self.ready.set()
                    continue
                if entry.operation in ("DEL", "PURGE") or not entry.value:
                    self.records.pop(entry.key.split(".", 1)[-1], None)
                else:
                    self.put(JobRecord.model_validate_json(entry.value))
        finally:
            await watcher.stop()
