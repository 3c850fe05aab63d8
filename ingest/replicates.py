"""The bootstrap replicates of the entries a verified board shows, read from the store and kept in a bounded LRU.

A board pairs each entry it shows with its leader over the shared resamples (verified_ranking.py), so it needs
one vector per shown entry: that metric in that group. The scorer packs every vector of a job in
`replicates.u16` (leadersboard/scoring/replicates.py), so a vector is one HTTP Range GET of `resamples * 2`
bytes; jobs scored before that file existed fall back to their scores.json. A vector is cached under the job's
`finished_at` too, so that a rescore (a new `finished_at`) is never answered from the old scores. Vectors stay
packed (2 bytes a value) in the cache, four times as many as float64 would fit, and are decoded when used.

A store that fails leaves the entry without a vector: its `tied_with_leader` is None, and the board answers.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Iterable
from datetime import datetime

from leadersboard import keys
from leadersboard.models.board import BoardEntry
from leadersboard.models.scores import ScoresFile
from leadersboard.s3 import S3Client, is_not_found
from leadersboard.scoring import replicates
from leadersboard.scoring.bootstrap import Floats

__all__ = ["MAX_CONCURRENT_READS", "ReplicateCache"]

log = logging.getLogger("ingest")

MAX_CONCURRENT_READS = 16
"""Range GETs in flight at once for one board (a page holds up to 500 entries)."""

_Key = tuple[str, datetime | None, str, str]
"""(submission id, finished_at, group, metric)."""


class ReplicateCache:
    def __init__(self, s3: S3Client, bucket: str, *, max_bytes: int) -> None:
        self._s3 = s3
        self._bucket = bucket
        self._max_bytes = max_bytes
        self._size = 0
        self._vectors: OrderedDict[_Key, bytes] = OrderedDict()
        self._reads = asyncio.Semaphore(MAX_CONCURRENT_READS)

    @property
    def size_bytes(self) -> int:
        return self._size

    async def vectors(self, entries: Iterable[BoardEntry], group: str, metric: str) -> dict[str, Floats]:
        """Each entry's vector of `metric` in `group`, by submission id; entries without one (not computed, or the
        store failed) are left out."""
        wanted = {entry.submission_id: entry for entry in entries if entry.scores is not None}
        found: dict[str, Floats] = {}
        missing = []
        for submission_id, entry in wanted.items():
            cached = self._get(_key(entry, group, metric))
            if cached is None:
                missing.append(entry)
            else:
                found[submission_id] = replicates.decode(cached)
        read = await asyncio.gather(*(self._read(entry, group, metric) for entry in missing))
        for entry, vector in zip(missing, read, strict=True):
            if vector is not None:
                self._put(_key(entry, group, metric), vector)
                found[entry.submission_id] = replicates.decode(vector)
        return found

    def _get(self, key: _Key) -> bytes | None:
        vector = self._vectors.get(key)
        if vector is not None:
            self._vectors.move_to_end(key)
        return vector

    def _put(self, key: _Key, vector: bytes) -> None:
        if key in self._vectors or len(vector) > self._max_bytes:
            return
        self._vectors[key] = vector
        self._size += len(vector)
        while self._size > self._max_bytes:
            _, dropped = self._vectors.popitem(last=False)
            self._size -= len(dropped)

    async def _read(self, entry: BoardEntry, group: str, metric: str) -> bytes | None:
        async with self._reads:
            try:
                return await asyncio.to_thread(self._read_sync, entry, group, metric)
            except Exception as exc:  # the board answers without this entry's tie
                log.warning("replicates of %s (%s, %s) unreadable: %r", entry.submission_id, group, metric, exc)
                return None

    def _read_sync(self, entry: BoardEntry, group: str, metric: str) -> bytes | None:
        assert entry.scores is not None  # only scored entries are read (`vectors`)
        span = replicates.byte_range(entry.scores, group, metric)
        if span is None:
            return None
        start, end = span
        key = keys.replicates_key(entry.user, entry.submission_id)
        try:
            response = self._s3.get_object(Bucket=self._bucket, Key=key, Range=f"bytes={start}-{end - 1}")
        except Exception as exc:
            if not is_not_found(exc):
                raise
            return self._from_scores_file(entry, group, metric)  # scored before replicates.u16 existed
        data = response["Body"].read()
        if len(data) != end - start:
            raise ValueError(f"{key}: {len(data)} bytes at {start}, not {end - start}")
        return bytes(data)

    def _from_scores_file(self, entry: BoardEntry, group: str, metric: str) -> bytes | None:
        body = self._s3.get_object(Bucket=self._bucket, Key=keys.scores_key(entry.user, entry.submission_id))["Body"]
        return replicates.from_scores_file(ScoresFile.model_validate_json(body.read()), group, metric)


def _key(entry: BoardEntry, group: str, metric: str) -> _Key:
    return entry.submission_id, entry.finished_at, group, metric
