"""The leaderboard view (the board KV bucket, `NatsSettings.board_kv_bucket`), kept by the dispatcher.

The view is derived: `e.<user>.<id>` = `BoardEntry.of(record)` for every job record that has one, nothing else.
The keeper hears of every change of the dispatcher's job view (dispatcher/view.py) and writes the entries that
changed. On each full load of the job view (start, reconnect) it reconciles: it reads every `e.>` entry, writes
what differs and deletes what no record backs. When `meta.built` is absent (a new or lost view) or an admin's
`meta.rebuild` names a request that `meta.built` has not answered, it rebuilds: every entry written again, the
stale ones deleted (found by listing the keys alone), then `meta.built` put. Entries are overwritten in place
rather than purged first, so readers never see an empty board while it runs, and it costs one write per entry
instead of two.

The requests are followed with the kernel's KV mirror (leadersboard/kv_mirror.py), loaded before the first step:
a request put while the dispatcher was down makes that step the rebuild, not a reconciliation then a rebuild.

Writes run `writes_in_flight` at a time. A failed step is logged and followed, after a delay, by a
reconciliation: the view converges on the records whatever was half written.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TypeVar

from nats.js.kv import KeyValue
from pydantic import ValidationError

from dispatcher.view import JobView
from leadersboard import nats_io
from leadersboard.keys import BOARD_BUILT_KEY, BOARD_REBUILD_KEY, kv_board_key, kv_submission_id
from leadersboard.kv_mirror import KvMirror
from leadersboard.models.base import utcnow
from leadersboard.models.board import BoardBuilt, BoardEntry, BoardRebuild
from leadersboard.models.records import JobRecord

__all__ = ["ENTRIES", "BoardKeeper"]

log = logging.getLogger("dispatcher")

ENTRIES = "e.>"
"""The subject filter of every entry of the view (`keys.kv_board_key`), beside its `meta.*` keys."""
_CHUNK = 2048
"""Records turned into entries, then written, at a time in a reconciliation (100,000 of them take seconds)."""

T = TypeVar("T")


class BoardKeeper:
    """Keeps the board bucket `kv` equal to `BoardEntry.of` of every record of `view` (a `ViewListener`)."""

    def __init__(self, kv: KeyValue, view: JobView, *, writes_in_flight: int, retry_delay_s: float) -> None:
        self.kv, self.view = kv, view
        self.writes_in_flight, self.retry_delay_s = writes_in_flight, retry_delay_s
        self._written: dict[str, tuple[str, bytes]] = {}
        """By submission id: the key and digest of the entry the view holds, as far as the keeper knows."""
        self._pending: dict[str, BoardEntry | None] = {}
        """By submission id: entries to write (None: to delete) since the last step."""
        self._resync = True
        self._asked: BoardRebuild | None = None
        self._answered: str | None = None
        self._wake = asyncio.Event()
        self.requests = KvMirror[BoardRebuild](
            "leaderboard view's rebuild requests", BOARD_REBUILD_KEY, decode=_request,
            loaded=lambda found: self._noted(found.get(BOARD_REBUILD_KEY)), changed=lambda _, asked: self._noted(asked),
            retry_delay_s=retry_delay_s,
        )  # fmt: skip
        view.listeners.append(self)

    # --- ViewListener: called synchronously by the job view's watcher ---------------------------------------

    def record_put(self, record: JobRecord) -> None:
        self._pending[record.submission_id] = BoardEntry.of(record)
        self._wake.set()

    def record_removed(self, key: str) -> None:
        self._pending[kv_submission_id(key)] = None
        self._wake.set()

    def reloaded(self, records: Mapping[str, JobRecord]) -> None:
        # A reconnect may have ended the rebuild requests' watch too: load them again.
        self.requests.resync.set()
        self._resync = True
        self._wake.set()

    # --- the keeper's task ----------------------------------------------------------------------------------

    async def run(self) -> None:
        """Keep the view until cancelled (start it once the job view is loaded: it reconciles against it)."""
        await self.view.ready.wait()
        async with self.requests.running(self.kv):
            await self.requests.ready.wait()
            self._wake.set()
            while True:
                await self._wake.wait()
                self._wake.clear()
                await self._step()

    async def _step(self) -> None:
        try:
            if self._resync:
                self._resync = False
                await self._sync()
            else:
                await self._flush()
        except Exception as exc:  # NATS down for a moment, a write refused: reconcile once it answers
            log.warning("leaderboard view: %r; reconciling in %s s", exc, self.retry_delay_s)
            self._resync = True
            await asyncio.sleep(self.retry_delay_s)
            self._wake.set()

    async def _sync(self) -> None:
        """Rebuild when no rebuild is recorded or one was asked and not answered; else reconcile."""
        built = await self._built()
        asked = self._asked
        if built is None or (asked is not None and asked.request_id != built.request_id):
            await self._rebuild(None if asked is None else asked.request_id)
        else:
            self._answered = built.request_id
            started = time.monotonic()
            entries, written, deleted = await self._reconcile(force=False)
            took_s = time.monotonic() - started
            log.info("leaderboard view reconciled: %d entries, %d written, %d deleted, %.1f s", entries, written,
                     deleted, took_s)  # fmt: skip

    async def _rebuild(self, request_id: str | None) -> None:
        asked = "for a request of its own" if request_id is None else f"for request {request_id}"
        log.info("leaderboard view: rebuilding %s", asked)
        started = time.monotonic()
        entries, _, deleted = await self._reconcile(force=True)
        built = BoardBuilt(request_id=request_id, built_at=utcnow(), entries=entries, took_s=time.monotonic() - started)
        await self.kv.put(BOARD_BUILT_KEY, built.model_dump_json().encode())
        self._answered = request_id
        log.info("leaderboard view rebuilt %s: %d entries (%d stale deleted) in %.1f s", asked, entries, deleted,
                 built.took_s)  # fmt: skip

    async def _built(self) -> BoardBuilt | None:
        found = await nats_io.kv_read(self.kv, BOARD_BUILT_KEY)
        if found is None:
            return None
        try:
            return BoardBuilt.model_validate_json(found[0])
        except ValidationError:
            log.warning("leaderboard view: %s is unreadable; rebuilding", BOARD_BUILT_KEY)
            return None

    async def _reconcile(self, *, force: bool) -> tuple[int, int, int]:
        """Make the stored entries those of the job view (all written again if `force`): (entries, written,
        deleted)."""
        # The snapshot and the pending changes it includes, taken at once: what changes later stays pending.
        records, self._pending = list(self.view.records.values()), {}
        stored = await self._stored(keys_only=force)
        written: dict[str, tuple[str, bytes]] = {}
        puts = 0
        # In chunks: a few thousand entries' JSON in memory at a time, and the event loop served in between.
        for start in range(0, len(records), _CHUNK):
            changed = []
            for record in records[start : start + _CHUNK]:
                entry = BoardEntry.of(record)
                if entry is not None:
                    key, payload = kv_board_key(entry.user, entry.submission_id), entry.model_dump_json().encode()
                    written[entry.submission_id] = (key, _digest(payload))
                    if force or stored.get(key) != written[entry.submission_id][1]:
                        changed.append((key, payload))
            await self._each(changed, self._put)
            puts += len(changed)
        kept = {key for key, _ in written.values()}
        stale = [key for key in stored if key not in kept]
        await self._each(stale, self.kv.delete)
        self._written = written
        return len(written), puts, len(stale)

    async def _stored(self, *, keys_only: bool) -> dict[str, bytes | None]:
        """The digest of every stored entry by key; only the keys (digests None) when every entry is written again
        anyway: a rebuild needs only the stale keys, and need not fetch the whole view's values."""
        if keys_only:
            return dict.fromkeys(await nats_io.kv_live_keys(self.kv, ENTRIES))
        return {key: _digest(value) for key, value in (await nats_io.kv_values(self.kv, ENTRIES)).items()}

    async def _flush(self) -> None:
        """Write the entries that changed since the last step, delete those whose record no longer has one."""
        batch, self._pending = self._pending, {}
        puts: list[tuple[str, bytes]] = []
        deletes: list[str] = []
        for submission_id, entry in batch.items():
            old = self._written.pop(submission_id, None)
            if entry is None:
                if old is not None:
                    deletes.append(old[0])
                continue
            key, payload = kv_board_key(entry.user, entry.submission_id), entry.model_dump_json().encode()
            self._written[submission_id] = (key, _digest(payload))
            if old != self._written[submission_id]:
                puts.append((key, payload))
        await self._each(puts, self._put)
        await self._each(deletes, self.kv.delete)

    async def _put(self, item: tuple[str, bytes]) -> None:
        await self.kv.put(*item)

    async def _each(self, items: Sequence[T], write: Callable[[T], Awaitable[object]]) -> None:
        """`write` each item, `writes_in_flight` at a time; the first failure cancels the rest and is raised."""
        pending = iter(items)

        async def worker() -> None:
            for item in pending:
                await write(item)

        try:
            async with asyncio.TaskGroup() as group:
                for _ in range(min(self.writes_in_flight, len(items))):
                    group.create_task(worker())
        except ExceptionGroup as failed:
            raise failed.exceptions[0] from None

    def _noted(self, asked: BoardRebuild | None) -> None:
        """A request not yet answered makes the next step a rebuild (a deleted or unreadable one changes nothing)."""
        if asked is None:
            return
        self._asked = asked
        if asked.request_id != self._answered:
            self._resync = True
            self._wake.set()


def _digest(payload: bytes) -> bytes:
    """What the keeper remembers of an entry: 100,000 entries of a few KB each stay a few MB."""
    return hashlib.blake2b(payload, digest_size=16).digest()


def _request(key: str, value: bytes) -> BoardRebuild | None:
    # Left out, loudly: raising would make the mirror reload the request again and again.
    try:
        return BoardRebuild.model_validate_json(value)
    except ValidationError:
        log.warning("leaderboard view: an unreadable %s is ignored", key)
        return None
