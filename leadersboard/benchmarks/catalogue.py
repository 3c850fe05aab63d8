"""The catalogue of official benchmarks: one record per version in the benchmarks KV bucket (`<name>.v<version>`).

Ingest writes it (an admin's registration), everyone else reads it: ingest to resolve a submission's benchmark,
the runner and the scorer to find a version's parts.
"""

from __future__ import annotations

from nats.js.errors import KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from leadersboard.keys import kv_benchmark_key
from leadersboard.models.benchmarks import BenchmarkRecord
from leadersboard.nats_io import kv_read, kv_values

__all__ = ["BenchmarkCatalogue", "VersionTaken"]


class VersionTaken(Exception):
    """Another registration created this version first: take the next one."""


class BenchmarkCatalogue:
    def __init__(self, kv: KeyValue) -> None:
        self._kv = kv

    async def get(self, name: str, version: int) -> BenchmarkRecord | None:
        found = await kv_read(self._kv, kv_benchmark_key(name, version))
        return None if found is None else BenchmarkRecord.model_validate_json(found[0])

    async def versions(self, name: str) -> list[BenchmarkRecord]:
        """Every version of `name`, oldest first, whatever its status."""
        values = await kv_values(self._kv, f"{name}.*")
        return sorted((BenchmarkRecord.model_validate_json(v) for v in values.values()), key=_version)

    async def latest_ready(self, name: str) -> BenchmarkRecord | None:
        ready = [record for record in await self.versions(name) if record.status == "ready"]
        return ready[-1] if ready else None

    async def listing(self, *, all_versions: bool = False) -> list[BenchmarkRecord]:
        """Ready versions by name: the latest of each name, or every one."""
        ready = [BenchmarkRecord.model_validate_json(value) for value in (await kv_values(self._kv, ">")).values()]
        ready = sorted((r for r in ready if r.status == "ready"), key=lambda r: (r.info.name, r.info.version))
        if all_versions:
            return ready
        latest: dict[str, BenchmarkRecord] = {record.info.name: record for record in ready}
        return list(latest.values())

    async def create(self, record: BenchmarkRecord) -> None:
        """Store a new version; VersionTaken if that version exists already."""
        try:
            await self._kv.create(kv_benchmark_key(record.info.name, record.info.version), _encode(record))
        except KeyWrongLastSequenceError as exc:
            raise VersionTaken(f"{record.info.name} v{record.info.version}") from exc

    async def put(self, record: BenchmarkRecord) -> None:
        await self._kv.put(kv_benchmark_key(record.info.name, record.info.version), _encode(record))


def _version(record: BenchmarkRecord) -> int:
    return record.info.version


def _encode(record: BenchmarkRecord) -> bytes:
    return record.model_dump_json().encode()
