"""An in-memory mirror of a NATS JetStream KV bucket (the keys matching one pattern), kept current by a watch.

The owner (dispatcher/view.py's job view, ingest/board.py's leaderboard index, dispatcher/board.py's rebuild
requests) is handed the whole contents at once when they have arrived (`loaded`: at start and after every
reload), so that it never serves half a bucket, then each change as it comes (`changed`). Both are called
synchronously from the watch: they update memory and leave any I/O to others.

Everything is reloaded after a NATS reconnect (the owner sets `resync` from its connection's reconnect callback:
the watch's ordered consumer may have gone with the old server, and changes made meanwhile were never pushed) and
after any failure of the watch, which is logged; the wait before a reload doubles from `retry_delay_s` up to
`max_retry_delay_s` while failures repeat, and ends early on a reconnect. The mirror is the service's only copy,
so it does not give up: a service whose mirror stopped would serve a frozen copy without a word.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Generic, TypeVar

import nats.errors
from nats.js.kv import KeyValue

from leadersboard import nats_io
from leadersboard.waiting import stop_tasks, wait_set

__all__ = ["KvMirror"]

log = logging.getLogger("leadersboard.kv_mirror")

V = TypeVar("V")
RETRY_DELAY_S = 1.0
MAX_RETRY_DELAY_S = 30.0


class KvMirror(Generic[V]):
    """Follows the keys of a bucket matching `pattern`, each value turned into a `V` by `decode(key, value)`.

    `decode` may return None for a value the owner leaves out (it then counts as removed); an exception it raises
    counts as a failure of the watch (logged, then everything is reloaded).
    """

    def __init__(
        self,
        name: str,
        pattern: str,
        *,
        decode: Callable[[str, bytes], V | None],
        loaded: Callable[[dict[str, V]], None],
        changed: Callable[[str, V | None], None],
        retry_delay_s: float = RETRY_DELAY_S,
        max_retry_delay_s: float = MAX_RETRY_DELAY_S,
    ) -> None:
        self.name = name
        self.pattern = pattern
        self._decode = decode
        self._loaded = loaded
        self._changed = changed
        self.retry_delay_s = retry_delay_s
        self.max_retry_delay_s = max_retry_delay_s
        self._failures = 0
        self.ready = asyncio.Event()
        """Set once the whole bucket has been loaded the first time."""
        self.resync = asyncio.Event()
        """Set after a NATS reconnect: the watch is dropped and everything reloaded."""

    async def run(self, kv: KeyValue) -> None:
        """Keep the mirror current until cancelled (the watch is stopped on the way out)."""
        while True:
            try:
                await self._follow_once(kv)
            except Exception as exc:
                self._failures += 1
                delay_s = self._delay_s()
                log.warning(
                    "%s: the watch of %s failed (%r); reloading in %.1f s", self.name, self.pattern, exc, delay_s
                )
                await wait_set(self.resync, delay_s)  # a reconnect meanwhile is worth trying at once

    @contextlib.asynccontextmanager
    async def running(self, kv: KeyValue) -> AsyncIterator[None]:
        """The mirror follows `kv` while the context lasts, and has stopped its watch when it ends."""
        task = asyncio.create_task(self.run(kv), name=f"{self.name} mirror")
        try:
            yield
        finally:
            await stop_tasks(task)

    def _delay_s(self) -> float:
        return min(self.retry_delay_s * 2.0 ** (self._failures - 1), self.max_retry_delay_s)

    async def _follow_once(self, kv: KeyValue) -> None:
        """Load the whole bucket then follow it, until a reconnect asks for a reload (or an error)."""
        self.resync.clear()
        watcher = await kv.watch(self.pattern)
        resync = asyncio.create_task(self.resync.wait())
        update: asyncio.Task[KeyValue.Entry | None] | None = None
        initial: dict[str, V] | None = {}
        seen = 0
        try:
            while True:
                update = asyncio.create_task(nats_io.next_update(watcher))
                await asyncio.wait({update, resync}, return_when=asyncio.FIRST_COMPLETED)
                if resync.done():
                    return
                found = update.result()
                if initial is None:
                    if found is not None:  # (later end markers are ignored)
                        self._changed(found.key, self._value(found))
                    continue
                if found is not None:
                    seen += 1
                    value = self._value(found)
                    if value is None:
                        initial.pop(found.key, None)
                    else:
                        initial[found.key] = value
                if await self._load_complete(kv, found, seen):
                    self._loaded(initial)
                    initial, self._failures = None, 0
                    self.ready.set()
        finally:
            resync.cancel()
            if update is not None:
                update.cancel()
            # Its consumer deleted with it, not left to the server for minutes after each reload. A closed
            # connection took the watch with it; raising here would turn a stop into a reload.
            with contextlib.suppress(nats.errors.Error):
                await nats_io.stop_watcher(watcher)

    def _value(self, found: KeyValue.Entry) -> V | None:
        raw = nats_io.put_value(found)
        return None if raw is None else self._decode(found.key, raw)

    async def _load_complete(self, kv: KeyValue, found: KeyValue.Entry | None, seen: int) -> bool:
        """Whether the current values have all arrived, `found` being the last of the `seen` so far.

        nats-py marks their end with None, but may do so before the first one when the server delivered them all
        before answering its consumer-info request (see `nats_io.kv_keys`): the half-loaded view would then be
        served, and the dispatcher's leaderboard keeper would delete the entries of every record not yet seen. So
        the entries' own count of what is still pending (`delta`) is trusted, and a marker before any entry only
        when the bucket has no key to deliver.
        """
        if found is not None:
            return found.delta == 0
        return seen > 0 or not await nats_io.kv_keys(kv, self.pattern)
