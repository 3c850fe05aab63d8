"""Leaderboard views made by hand: board entries put straight into the view's bucket (as the dispatcher keeps
them) and their replicates into the store (as the scorer writes them), then read through the real ingest app."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from nats.aio.client import Client as NATS
from nats.js.kv import KeyValue

from leadersboard import keys
from leadersboard.models.board import BoardEntry
from leadersboard.models.scores import AVERAGE, MetricSet, Scores, ScoresFile
from leadersboard.s3 import S3Client
from leadersboard.scoring import replicates
from leadersboard.scoring.bootstrap import Floats, interval
from leadersboard.settings import NatsSettings
from tests.api_fixtures import Api, bearer

__all__ = [
    "AUROC",
    "RESAMPLES",
    "START",
    "Published",
    "board_kv",
    "publish",
    "publish_demo",
    "scored",
    "self_reported",
    "until",
    "vectors",
]

RESAMPLES = 400
SEED = 13
START = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
Vectors = Mapping[str, Mapping[str, Floats]]
"""Per category: per metric, its replicates."""
AUROC, F1 = "image_AUROC", "image_F1Max"


@pytest.fixture
async def board_kv(nc: NATS) -> KeyValue:
    return await nc.jetstream().key_value(NatsSettings().board_kv_bucket)


def _metric_set(per_metric: Mapping[str, Floats]) -> MetricSet:
    return MetricSet(**{name: interval(float(np.mean(vector)), vector) for name, vector in per_metric.items()})


def scored(
    user: str, vectors: Vectors, *, version: int = 1, minutes: int = 0, method: str | None = None
) -> tuple[BoardEntry, ScoresFile]:
    """A benchmark job of `user` on `demo` whose scores are the means and percentile intervals of `vectors` (the
    average group: the category means, replicate by replicate), and its scores.json."""
    metrics = sorted({name for per_metric in vectors.values() for name in per_metric})
    average = {
        name: np.mean([per_metric[name] for per_metric in vectors.values() if name in per_metric], axis=0)
        for name in metrics
        if all(name in per_metric for per_metric in vectors.values())
    }
    top = _metric_set(average)
    scores = Scores(
        **dict(top),
        per_category={category: _metric_set(per_metric) for category, per_metric in vectors.items()},
        scorer_version="1",
        resamples=RESAMPLES,
        seed=SEED,
    )
    created = START + timedelta(minutes=minutes)
    entry = BoardEntry(
        submission_id=keys.new_submission_id(),
        user=user,
        method=method,
        created_at=created,
        finished_at=created + timedelta(minutes=1),
        mlflow_run_url=f"http://mlflow.example/#/runs/{user}{minutes}",
        benchmark="demo",
        benchmark_version=version,
        scores=scores,
    )
    file = ScoresFile(
        benchmark="demo",
        benchmark_version=version,
        scored_at=created,
        scores=scores,
        replicates={
            group: {name: [float(v) for v in vector] for name, vector in per_metric.items()}
            for group, per_metric in {AVERAGE: average, **vectors}.items()
        },
    )
    return entry, file


def self_reported(user: str, dataset: str, metrics: dict[str, float], *, minutes: int = 0) -> BoardEntry:
    created = START + timedelta(minutes=minutes)
    return BoardEntry(
        submission_id=keys.new_submission_id(), user=user, created_at=created, dataset=dataset, metrics=metrics
    )


async def publish(
    kv: KeyValue, s3: S3Client, bucket: str, entry: BoardEntry, file: ScoresFile | None = None, *, packed: bool = True
) -> None:
    """`entry` into the view; its replicates into the store: packed (replicates.u16, beside scores.json as the
    scorer writes them) or, `packed` False, only scores.json (a job scored before the packed file existed)."""
    if file is not None:
        user, sid = entry.user, entry.submission_id
        body = file.model_dump_json().encode()
        await asyncio.to_thread(s3.put_object, Bucket=bucket, Key=keys.scores_key(user, sid), Body=body)
        if packed:
            data = replicates.encode(file)
            await asyncio.to_thread(s3.put_object, Bucket=bucket, Key=keys.replicates_key(user, sid), Body=data)
    await kv.put(keys.kv_board_key(entry.user, entry.submission_id), entry.model_dump_json().encode())


async def until(
    api: Api, token: str, done: Callable[[dict[str, Any]], bool], timeout_s: float = 30, **query: str
) -> dict[str, Any]:
    """The board `query` asks for, once `done` holds for it: ingest's copy of the view follows the bucket a moment
    after a put."""
    deadline = time.monotonic() + timeout_s
    while True:
        response = await api.get("/api/v1/leaderboard", params=query, headers=bearer(token))
        body: dict[str, Any] = await response.json()
        if response.status == 200 and done(body):
            return body
        assert time.monotonic() < deadline, f"the board {query} never became as expected: {response.status} {body}"
        await asyncio.sleep(0.1)


def noise(seed: int, scale: float) -> Floats:
    return np.random.default_rng(seed).normal(0.0, scale, RESAMPLES)


BOTTLE = 0.7 + noise(1, 0.03)  # far enough from 0 and 1 that no shift below is clipped: differences are exact
WOOD = 0.72 + noise(2, 0.03)


def vectors(shift: float, jitter_seed: int | None = None, *, pixel: bool = False) -> dict[str, dict[str, Floats]]:
    """Both categories' replicates moved by `shift` (and jittered a little, a near copy, with `jitter_seed`)."""
    jitter = 0.0 if jitter_seed is None else noise(jitter_seed, 0.004)
    made: dict[str, dict[str, Floats]] = {}
    for category, base in (("bottle", BOTTLE), ("wood", WOOD)):
        auroc = np.clip(base + shift + jitter, 0, 1)
        made[category] = {AUROC: auroc, F1: np.clip(auroc - 0.1, 0, 1)}
        if pixel:
            made[category]["pixel_AUROC"] = np.clip(auroc - 0.05, 0, 1)
    return made


Published = dict[str, tuple[BoardEntry, ScoresFile]]


async def publish_demo(kv: KeyValue, s3: S3Client, bucket: str) -> Published:
    """Benchmark `demo`: in version 1 a leader, a near copy of it (tied), a job read from scores.json alone (scored
    before replicates.u16), a clearly worse user with two jobs, one whose replicates file is damaged; in version 2
    one job."""
    jobs: Published = {
        "alice": scored("alice", vectors(0.05, pixel=True), method="padim"),
        "bob": scored("bob", vectors(0.0495, jitter_seed=7), minutes=1),
        "dave": scored("dave", vectors(-0.1), minutes=2),
        "carol": scored("carol", vectors(-0.2), minutes=3),
        "carol-old": scored("carol", vectors(-0.3), minutes=4),
        "erin": scored("erin", vectors(-0.4), minutes=5),
        "frank": scored("frank", vectors(0.0), version=2, minutes=6),
    }
    for name, (entry, file) in jobs.items():
        await publish(kv, s3, bucket, entry, file, packed=name != "dave")
    erin = jobs["erin"][0]  # a store that answers badly: the board answers, without erin's tie
    await asyncio.to_thread(
        s3.put_object, Bucket=bucket, Key=keys.replicates_key("erin", erin.submission_id), Body=b"\x00\x01"
    )
    return jobs
