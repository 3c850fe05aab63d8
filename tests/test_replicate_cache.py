"""ingest/replicates.py against a real SeaweedFS: one Range GET per vector of replicates.u16, the scores.json
fallback giving the same numbers, a bounded cache, and a rescore never answered from the old vector."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest

from ingest.replicates import ReplicateCache
from leadersboard import keys
from leadersboard.models.scores import AVERAGE
from leadersboard.s3 import S3Client, make_client
from leadersboard.scoring import replicates
from leadersboard.settings import S3Settings
from tests.leaderboard_fixtures import AUROC, RESAMPLES, scored, vectors

pytestmark = pytest.mark.timeout(60)
VECTOR_BYTES = RESAMPLES * 2  # kept packed: uint16


@pytest.fixture
def s3(s3_settings: S3Settings) -> S3Client:
    return make_client(s3_settings)


def put(s3: S3Client, bucket: str, key: str, body: bytes) -> None:
    s3.put_object(Bucket=bucket, Key=key, Body=body)


async def test_packed_and_fallback_reads_agree_and_the_cache_stays_bounded(
    s3: S3Client, s3_settings: S3Settings
) -> None:
    bucket = s3_settings.bucket
    packed, packed_file = scored("alice", vectors(0.05))
    old, old_file = scored("bob", vectors(0.05))  # the same replicates, scored before replicates.u16 existed
    put(s3, bucket, keys.replicates_key("alice", packed.submission_id), replicates.encode(packed_file))
    put(s3, bucket, keys.scores_key("bob", old.submission_id), old_file.model_dump_json().encode())
    cache = ReplicateCache(s3, bucket, max_bytes=VECTOR_BYTES)  # room for one vector

    found = await cache.vectors([packed, old], "wood", AUROC)
    assert np.array_equal(found[packed.submission_id], found[old.submission_id])
    exact = np.asarray(packed_file.replicates["wood"][AUROC])
    assert np.max(np.abs(found[packed.submission_id] - exact)) <= replicates.MAX_ERROR
    assert cache.size_bytes == VECTOR_BYTES

    missing = scored("carol", vectors(0.0))[0]  # neither file: left out, the others answered
    assert set(await cache.vectors([packed, missing], AVERAGE, AUROC)) == {packed.submission_id}
    assert cache.size_bytes <= VECTOR_BYTES


async def test_a_rescored_job_is_read_again(s3: S3Client, s3_settings: S3Settings) -> None:
    bucket = s3_settings.bucket
    entry, file = scored("alice", vectors(0.05))
    key = keys.replicates_key("alice", entry.submission_id)
    put(s3, bucket, key, replicates.encode(file))
    cache = ReplicateCache(s3, bucket, max_bytes=10 * VECTOR_BYTES)
    before = (await cache.vectors([entry], AVERAGE, AUROC))[entry.submission_id]

    _, again = scored("alice", vectors(-0.2))
    put(s3, bucket, key, replicates.encode(again))
    assert np.array_equal((await cache.vectors([entry], AVERAGE, AUROC))[entry.submission_id], before)  # cached
    assert entry.finished_at is not None
    rescored = entry.model_copy(update={"finished_at": entry.finished_at + timedelta(hours=1)})
    after = (await cache.vectors([rescored], AVERAGE, AUROC))[entry.submission_id]
    assert np.mean(before) - np.mean(after) == pytest.approx(0.25, abs=1e-4)
