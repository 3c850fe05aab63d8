"""The scorer's replicates.u16 (keys.replicates_key), through the real scorer, nats-server, SeaweedFS and MLflow:
written with scores.json, holding exactly what a reader of scores.json would take, rewritten by a rescore."""

from __future__ import annotations

import numpy as np

from leadersboard import keys
from leadersboard.models.scores import ScoresFile
from leadersboard.scoring.replicates import byte_range, decode, from_scores_file, layout
from tests.scorer_fixtures import ScoringPlatform, informative, random_scores


def stored(scoring: ScoringPlatform, key: str, byte_range: str | None = None) -> bytes:
    """The object under `key`, or the bytes `byte_range` of it (an HTTP Range, `bytes=<first>-<last>`)."""
    bucket = scoring.settings.bucket
    if byte_range is None:
        response = scoring.s3.get_object(Bucket=bucket, Key=key)
    else:
        response = scoring.s3.get_object(Bucket=bucket, Key=key, Range=byte_range)
    body: bytes = response["Body"].read()
    return body


def check_agrees(scoring: ScoringPlatform, sid: str) -> ScoresFile:
    """Every vector read by a Range GET of replicates.u16 equals the scores.json fallback; returns scores.json."""
    document = ScoresFile.model_validate_json(stored(scoring, keys.scores_key("alice", sid)))
    packed_key = keys.replicates_key("alice", sid)
    assert len(stored(scoring, packed_key)) == len(layout(document.scores)) * document.scores.resamples * 2
    for group, metric in layout(document.scores):
        found = byte_range(document.scores, group, metric)
        assert found is not None
        vector = decode(stored(scoring, packed_key, f"bytes={found[0]}-{found[1] - 1}"))
        fallback = from_scores_file(document, group, metric)
        assert fallback is not None and np.array_equal(vector, decode(fallback)), (group, metric)
    return document


async def test_the_scorer_writes_the_packed_replicates_and_a_rescore_rewrites_them(scoring: ScoringPlatform) -> None:
    await scoring.register()
    await scoring.job("packed1")
    scoring.put_predictions("packed1", informative(scoring.split))
    await scoring.request("packed1")
    await scoring.score()
    record = await scoring.record("packed1")
    assert record.scores is not None
    first = check_agrees(scoring, "packed1")
    assert first.scores == record.scores
    assert ("average", "pixel_AUPRO") in layout(first.scores), "the maps' metrics are packed too"
    before = stored(scoring, keys.replicates_key("alice", "packed1"))

    scoring.put_predictions("packed1", random_scores(scoring.split))
    await scoring.request("packed1", rescore=True)
    await scoring.score()
    rescored = check_agrees(scoring, "packed1")
    assert rescored.scores == (await scoring.record("packed1")).scores != first.scores
    assert ("average", "pixel_AUPRO") not in layout(rescored.scores), "no maps this time"
    assert stored(scoring, keys.replicates_key("alice", "packed1")) != before
