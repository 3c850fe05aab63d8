"""The scorer's reads and writes in the main bucket: a job's predictions in, its `scores.json` out.

- `results/<user>/<id>/output/predictions/...`: what the runner uploaded from the job's `<output>/predictions/`;
- `results/<user>/<id>/scores.json` (keys.scores_key): a ScoresFile (leadersboard/models/scores.py),

    {"version": 1, "benchmark": "<name>", "benchmark_version": <n>, "scored_at": "<ISO 8601>",
     "scores": {<the job record's `scores`: each metric's value, ci_low and ci_high; per_category;
                scorer_version, resamples, seed>},
     "replicates": {"average" or "<category>": {"image_AUROC": [<one float per resample>], "image_F1Max": [...],
                                                "pixel_AUROC": [...], "pixel_AUPRO": [...]}}}

Replicate b of every job of one benchmark version is computed on the same resample (the same images drawn:
leadersboard/scoring/bootstrap.py), so two jobs' replicates subtracted b by b give a paired comparison. The pixel
metrics are absent wherever they are absent from `scores`.

- `results/<user>/<id>/replicates.u16` (keys.replicates_key): the same replicates packed for range reads
  (leadersboard/scoring/replicates.py), written right after scores.json (a rescore rewrites both), so a job
  whose record shows its scores has both files.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path, PurePosixPath

from leadersboard.keys import PREDICTIONS_DIR, predictions_prefix, replicates_key, scores_key
from leadersboard.models.scores import Scores, ScoresFile
from leadersboard.s3 import S3Client
from leadersboard.scoring import replicates
from leadersboard.scoring.predictions import BadPredictions
from leadersboard.scoring.score import Evaluation

__all__ = ["download_predictions", "write_scores"]


def download_predictions(
    s3: S3Client, bucket: str, user: str, submission_id: str, destination: Path, *, max_bytes: int, max_files: int
) -> Path:
    """The job's `predictions/` downloaded into `destination`; BadPredictions, before anything is downloaded,
    when it holds more than `max_files` files or `max_bytes` in all. Missing, it is an empty directory (the
    scorer then says scores.csv is missing)."""
    prefix = predictions_prefix(user, submission_id)
    objects: list[tuple[str, int]] = []
    total = 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            objects.append((item["Key"], item["Size"]))
            total += item["Size"]
            if len(objects) > max_files:
                raise BadPredictions(f"{PREDICTIONS_DIR}/ holds more than {max_files} files, over the limit")
    if total > max_bytes:
        raise BadPredictions(f"{PREDICTIONS_DIR}/ is {total} bytes, over the limit of {max_bytes} bytes")
    destination.mkdir(parents=True, exist_ok=True)
    for key, _ in objects:
        target = destination / _relative(key.removeprefix(prefix))
        target.parent.mkdir(parents=True, exist_ok=True)
        s3.download_file(bucket, key, str(target))
    return destination


def _relative(name: str) -> PurePosixPath:
    """A stored name as a path inside the predictions directory (the runner uploads plain relative paths;
    anything else would land outside)."""
    path = PurePosixPath(name)
    if not name or path.is_absolute() or any(part in ("", ".", "..") for part in name.split("/")):
        raise BadPredictions(f"{PREDICTIONS_DIR}/ holds a file named {name[:80]!r}, which is not a plain path")
    return path


def write_scores(
    s3: S3Client,
    bucket: str,
    user: str,
    submission_id: str,
    *,
    scores: Scores,
    evaluation: Evaluation,
    benchmark: str,
    benchmark_version: int,
    scored_at: datetime,
) -> ScoresFile:
    """scores.json, then replicates.u16: both before the caller puts the scores in the record."""
    document = ScoresFile(
        benchmark=benchmark,
        benchmark_version=benchmark_version,
        scored_at=scored_at,
        scores=scores,
        replicates={
            where: {metric: replicated.replicates.tolist() for metric, replicated in metrics.items()}
            for where, metrics in evaluation.items()
        },
    )
    s3.put_object(
        Bucket=bucket,
        Key=scores_key(user, submission_id),
        Body=document.model_dump_json().encode(),
        ContentType="application/json",
    )
    s3.put_object(
        Bucket=bucket,
        Key=replicates_key(user, submission_id),
        Body=replicates.encode(document),
        ContentType="application/octet-stream",
    )
    return document
