"""An in-memory copy of the leaderboard view (the board KV bucket, kept by the dispatcher), pushed current by a
KV watch, from which every board is served without reading a job record.

Entries are grouped by board: one group per (benchmark, version) for the verified boards, one for the
self-reported entries. Each group carries a generation, bumped on every change to it, so that a ranked board
is computed once and then served from a cache until its group changes (a completed job, a rescore, a deletion).
A board is ranked in a worker thread (`BoardIndex.cached`), not on the event loop, which meanwhile answers the
other requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from nats.js.kv import KeyValue

from leadersboard.kv_mirror import KvMirror
from leadersboard.models.board import BoardEntry
from leadersboard.models.leaderboard import METRICS
from leadersboard.models.scores import AVERAGE

__all__ = ["BOARD_ENTRIES", "SELF_REPORTED", "BoardIndex", "GroupKey", "VersionSummary", "following"]

log = logging.getLogger("ingest")

BOARD_ENTRIES = "e.>"
"""The entries of the view (keys.kv_board_key), beside its `meta.*` keys."""
MAX_CACHED = 512
"""Computed boards kept (least recently used dropped): a self-reported board's metric and dataset are the
caller's choice, so their number is not bounded by the data."""
RANKING_THREADS = 2
"""Boards ranked at once. Ranking's pass over the entries is Python and holds the GIL most of the time: more
threads would only take more of it from the event loop."""

GroupKey = tuple[str, int] | None
"""(benchmark, version) of a verified board's entries; None (SELF_REPORTED) for the self-reported ones."""
SELF_REPORTED: GroupKey = None
Flight = tuple[GroupKey, Hashable, int]
"""A computation under way: (group, key, the group's generation it started from)."""
T = TypeVar("T")


@dataclass(frozen=True)
class VersionSummary:
    """What a verified board of one benchmark version offers, whichever metric and category it is ranked by."""

    metrics: list[str]
    """The metrics at least one entry has (in the average), in MetricSet order."""
    categories: list[str]
    label: str
    resamples: int


class BoardIndex:
    def __init__(self) -> None:
        self._entries: dict[str, BoardEntry] = {}
        self._groups: dict[GroupKey, dict[str, BoardEntry]] = {}
        self._generations: dict[GroupKey, int] = {}
        self._counter = 0
        self._cache: OrderedDict[Hashable, tuple[int, object]] = OrderedDict()
        self._in_flight: dict[Flight, asyncio.Future[Any]] = {}
        self._ranking = ThreadPoolExecutor(RANKING_THREADS, thread_name_prefix="board-ranking")  # threads on demand
        self.mirror = KvMirror[BoardEntry](
            "leaderboard view", BOARD_ENTRIES, decode=_decode, loaded=self._loaded, changed=self._changed
        )
        self.ready = self.mirror.ready
        """Set once the whole view has been loaded."""
        self.resync = self.mirror.resync
        """Set after a NATS reconnect: the watcher's consumer may be gone, so the index reloads."""

    # --- reading ------------------------------------------------------------------------------------------------

    def benchmarks(self) -> list[str]:
        """The benchmarks that have verified entries, sorted."""
        return sorted({key[0] for key in self._groups if key is not None})

    def versions(self, benchmark: str) -> list[int]:
        """The versions of `benchmark` that have entries, ascending."""
        return sorted(key[1] for key in self._groups if key is not None and key[0] == benchmark)

    def entries(self, group: GroupKey) -> list[BoardEntry]:
        return list(self._groups.get(group, {}).values())

    def generation(self, group: GroupKey) -> int:
        """Changes whenever the group's entries change (0: the group has never had entries)."""
        return self._generations.get(group, 0)

    async def cached(self, group: GroupKey, key: Hashable, compute: Callable[[list[BoardEntry]], T]) -> T:
        """`compute(the entries of group)`, remembered under `key` until `group` changes.

        Computed in a worker thread: ranking a board is CPU-bound (a cold request took 0.3-0.4 s at 10,000-100,000
        jobs, bench/README.md), and on the event loop no other request would be answered meanwhile. The thread gets
        a list of the entries taken here, on the loop: the loop's changes replace entries in the index's dicts and
        never change an entry, so nothing it reads changes under it. One computation per (group, key, generation)
        at a time: a request that arrives meanwhile awaits the same one; its error reaches each of them as it would
        have on the loop, and is not remembered.
        """
        found = self.lookup(group, key)
        if found is not None:
            return found  # type: ignore[no-any-return]  # stored by this method under the same key
        flight = (group, key, self.generation(group))
        running = self._in_flight.get(flight)
        if running is None:
            running = self._start(flight, compute)
        value: T = await asyncio.shield(running)  # a waiter cancelled (its client gone) cancels no other's
        return value

    def _start(self, flight: Flight, compute: Callable[[list[BoardEntry]], T]) -> asyncio.Future[T]:
        group, key, generation = flight
        running = asyncio.get_running_loop().run_in_executor(self._ranking, compute, self.entries(group))
        self._in_flight[flight] = running

        def landed(done: asyncio.Future[T]) -> None:  # on the loop, before the waiters resume
            del self._in_flight[flight]
            if not done.cancelled() and done.exception() is None:
                self.remember(group, key, done.result(), generation)

        running.add_done_callback(landed)
        return running

    def lookup(self, group: GroupKey, key: Hashable) -> Any:
        """What `remember` stored under `key` while `group` was as it is now; None otherwise."""
        found = self._cache.get((group, key))
        if found is None or found[0] != self.generation(group):
            return None
        self._cache.move_to_end((group, key))
        return found[1]

    def remember(self, group: GroupKey, key: Hashable, value: object, generation: int) -> None:
        """Keep `value`, computed from `group` at `generation` (taken before any await), for `lookup`."""
        if generation != self.generation(group):
            return  # the group changed meanwhile: `lookup` would never give it, and it must not replace a newer one
        self._cache[(group, key)] = (generation, value)
        self._cache.move_to_end((group, key))
        while len(self._cache) > MAX_CACHED:
            self._cache.popitem(last=False)

    async def summary(self, group: tuple[str, int]) -> VersionSummary | None:
        """What the board of `group` offers; None when it has no entries."""
        return await self.cached(group, "summary", _summarize)

    def close(self) -> None:
        """Stop the ranking threads (ingest's cleanup, when no request is left): one still ranking ends by itself."""
        self._ranking.shutdown(wait=False, cancel_futures=True)

    # --- following the bucket -------------------------------------------------------------------------------------

    def put(self, entry: BoardEntry) -> None:
        self.remove(entry.submission_id)
        self._entries[entry.submission_id] = entry
        group = group_of(entry)
        self._groups.setdefault(group, {})[entry.submission_id] = entry
        self._bump(group)

    def remove(self, submission_id: str) -> None:
        old = self._entries.pop(submission_id, None)
        if old is None:
            return
        group = group_of(old)
        members = self._groups.get(group, {})
        members.pop(submission_id, None)
        if not members:
            self._groups.pop(group, None)
        self._bump(group)

    def replace(self, entries: list[BoardEntry]) -> None:
        """The whole view at once (the initial load, a reload)."""
        for group in list(self._groups):
            self._bump(group)
        self._entries, self._groups = {}, {}
        for entry in entries:
            self.put(entry)

    def _bump(self, group: GroupKey) -> None:
        # One counter for every group: a group emptied and filled again never returns to a generation it had.
        self._counter += 1
        self._generations[group] = self._counter

    async def follow(self, kv: KeyValue) -> None:
        """Keep the index current until cancelled, reloading everything after a reconnect or an error."""
        await self.mirror.run(kv)

    def _loaded(self, entries: dict[str, BoardEntry]) -> None:
        self.replace(list(entries.values()))  # the whole view has arrived: swapped in at once

    def _changed(self, key: str, entry: BoardEntry | None) -> None:
        if entry is None:
            self.remove(key.rsplit(".", 1)[-1])
        else:
            self.put(entry)


@contextlib.asynccontextmanager
async def following(index: BoardIndex, kv: KeyValue) -> AsyncIterator[None]:
    """`index` follows the view's bucket `kv` while the context lasts (ingest's lifetime)."""
    async with index.mirror.running(kv):
        yield


def group_of(entry: BoardEntry) -> GroupKey:
    if entry.verified and entry.benchmark is not None and entry.benchmark_version is not None:
        return entry.benchmark, entry.benchmark_version
    return SELF_REPORTED


def _decode(key: str, value: bytes) -> BoardEntry | None:
    """The entry of a watched key; None for a value that is no entry, which is logged: one bad entry must not stop
    every board."""
    try:
        return BoardEntry.model_validate_json(value)
    except ValueError as exc:
        log.warning("leaderboard view: %s is no board entry (%s); left out", key, exc)
        return None


def _summarize(entries: list[BoardEntry]) -> VersionSummary | None:
    scored = [e.scores for e in entries if e.scores is not None]
    if not scored:
        return None
    computed = {name for scores in scored for name in METRICS if scores.interval(name, AVERAGE) is not None}
    return VersionSummary(
        metrics=[name for name in METRICS if name in computed],
        categories=sorted({category for scores in scored for category in scores.per_category}),
        label=scored[0].label,
        resamples=scored[0].resamples,
    )
