"""A benchmark job's two ends on the runner: before the run, its benchmark's public part mounted read-only at
`benchmark/` in the working directory; after a good run, its predictions handed to the scorer.

The public part (`benchmarks/<name>/v<version>/public.zip` in the main bucket) is downloaded only when the
dataset cache (gpu_runner/datasets.py) has no tree for its sha256, checked against the size and sha256 the
catalogue recorded, and extracted there once, like an uploaded dataset: every job of that version shares the
read-only tree. The download goes into the cache's directory, never into the job's (it would count against the
job's disk). The reference part (labels and masks) lives in a bucket no runner credential can read; nothing
here names it.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from nats.js import JetStreamContext

from gpu_runner.datasets import DatasetCache, Extractor, file_sha256
from gpu_runner.sandbox import Bind
from gpu_runner.workspace import BadSubmission
from leadersboard.benchmarks.catalogue import BenchmarkCatalogue
from leadersboard.models.benchmarks import StoredPart
from leadersboard.models.queue import ScoreRequest
from leadersboard.models.records import JobRecord
from leadersboard.s3 import S3Client, head

__all__ = ["BENCHMARK_DIR", "Mounted", "ScoringQueue", "mount_public", "public_part", "score_request"]

BENCHMARK_DIR = "benchmark"
"""Where a benchmark job finds its benchmark's public part, in its working directory (read-only)."""


def _label(record: JobRecord) -> str:
    return f"benchmark {record.benchmark} v{record.benchmark_version}"


async def public_part(catalogue: BenchmarkCatalogue, record: JobRecord) -> StoredPart:
    """Where the job's benchmark version keeps its public part; BadSubmission if the catalogue has no ready one."""
    if record.benchmark is None or record.benchmark_version is None:
        raise ValueError(f"{record.submission_id} is not a benchmark job")
    found = await catalogue.get(record.benchmark, record.benchmark_version)
    if found is None or found.status != "ready":
        raise BadSubmission(
            f"{_label(record)} is not in the catalogue any more; submit again to use the benchmark's latest version"
        )
    return found.public


@dataclass(frozen=True)
class Mounted:
    bind: Bind
    note: str
    """What happened, for the job's log."""


def mount_public(
    s3: S3Client,
    bucket: str,
    record: JobRecord,
    part: StoredPart,
    *,
    cache: DatasetCache,
    work: Path,
    taken: list[Bind],
    extract: Extractor,
) -> Mounted:
    """The public part's cached tree, to mount at `work/benchmark/` (downloaded and extracted if not cached).

    `taken`: the mounts already planned (the submission's datasets). Blocking: call it in a thread.
    """
    target = work / BENCHMARK_DIR
    if target.exists() or target.is_symlink() or any(bind.target == target for bind in taken):
        raise BadSubmission(
            f"the submission has its own {BENCHMARK_DIR!r} (a file, a directory or a zip's top-level entry): "
            f"rename it; a benchmark job finds its benchmark's public part at {BENCHMARK_DIR}/"
        )
    label = _label(record)
    dataset = cache.cached(part.sha256, name=label)
    if dataset is None:
        with _downloaded(s3, bucket, part, label, cache.root) as archive:
            dataset = cache.ensure(archive, part.sha256, name=label, extract=extract)
    how = "cache hit" if dataset.hit else "downloaded and extracted into the dataset cache"
    note = f"[leadersboard] {label}: {how} (sha256 {part.sha256[:16]}), at {BENCHMARK_DIR}/ (read-only)"
    return Mounted(Bind(dataset.tree, target), note)


@contextlib.contextmanager
def _downloaded(s3: S3Client, bucket: str, part: StoredPart, label: str, directory: Path) -> Iterator[Path]:
    """The part downloaded into `directory` and checked against the catalogue; removed afterwards."""
    stored = head(s3, bucket, part.key)
    if stored is None or stored.size != part.size:
        found = "missing" if stored is None else f"{stored.size} bytes"
        raise BadSubmission(
            f"{label}: its public part in the store is {found}, the catalogue says {part.size} bytes; "
            "an administrator must register the benchmark again"
        )
    handle, name = tempfile.mkstemp(prefix=".download-", suffix=".zip", dir=directory)
    os.close(handle)
    path = Path(name)
    try:
        s3.download_file(bucket, part.key, name)
        digest = file_sha256(path)
        if digest != part.sha256:
            raise BadSubmission(
                f"{label}: its public part does not match the catalogue's sha256 ({digest} downloaded, "
                f"{part.sha256} recorded); an administrator must register the benchmark again"
            )
        yield path
    finally:
        path.unlink(missing_ok=True)


def score_request(record: JobRecord) -> ScoreRequest:
    """The scorer's work for a benchmark job whose run ended well (`scoring_requested_at` set)."""
    if record.benchmark is None or record.benchmark_version is None or record.scoring_requested_at is None:
        raise ValueError(f"{record.submission_id} is not waiting for its scores")
    return ScoreRequest(
        user=record.user,
        submission_id=record.submission_id,
        benchmark=record.benchmark,
        benchmark_version=record.benchmark_version,
        requested_at=record.scoring_requested_at,
    )


@dataclass(frozen=True)
class ScoringQueue:
    """The scoring work queue (JetStream), as the runner publishes to it."""

    js: JetStreamContext
    subject: str

    async def request(self, record: JobRecord) -> None:
        """Ask for the scoring of `record`. Published again on a redelivered job message (the first
        publish may be lost with the runner): the message id makes the stream drop a repeat."""
        request = score_request(record)
        message_id = f"score.{record.user}.{record.submission_id}.{request.requested_at.timestamp():.6f}"
        await self.js.publish(self.subject, request.model_dump_json().encode(), headers={"Nats-Msg-Id": message_id})
