"""Where a submission lives: the storage layout of the one bucket, readable in the MinIO console (see
docs/architecture.md), and the keys of its records in the NATS KV buckets of jobs and of issued submissions."""

from __future__ import annotations

import re
import secrets
import time
from dataclasses import dataclass

__all__ = [
    "BENCHMARK_NAME_PATTERN",
    "BOARD_BUILT_KEY",
    "BOARD_REBUILD_KEY",
    "PREDICTIONS_DIR",
    "SCORES_CSV",
    "SUBMISSION_ID_PATTERN",
    "USER_NAME_PATTERN",
    "ManifestKey",
    "SubmissionDir",
    "benchmark_public_key",
    "benchmark_reference_key",
    "blob_key",
    "file_key",
    "is_benchmark_name",
    "is_submission_id",
    "is_user_name",
    "kv_benchmark_key",
    "kv_board_key",
    "kv_submission_id",
    "kv_submission_key",
    "kv_submissions",
    "manifest_key",
    "new_submission_id",
    "parse_manifest_key",
    "parse_submission_dir",
    "predictions_prefix",
    "replicates_key",
    "result_key",
    "results_prefix",
    "scores_key",
    "submission_prefix",
]

USER_NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"
"""A user name: it is a path segment in the bucket and a token of NATS KV keys, so it holds no `.`, `/` or `*`."""
SUBMISSION_ID_PATTERN = r"^[0-9a-z]{8,40}$"
_USER_NAME = re.compile(USER_NAME_PATTERN)
_SUBMISSION_ID = re.compile(SUBMISSION_ID_PATTERN)
_MANIFEST_KEY = re.compile(
    rf"^submissions/(?P<user>{USER_NAME_PATTERN[1:-1]})/(?P<id>{SUBMISSION_ID_PATTERN[1:-1]})/manifest\.json$"
)
_SUBMISSION_DIR = re.compile(  # what submission_prefix and results_prefix make
    rf"^(?:submissions|results)/(?P<user>{USER_NAME_PATTERN[1:-1]})/(?P<id>{SUBMISSION_ID_PATTERN[1:-1]})/$"
)


def new_submission_id() -> str:
    """Sortable by creation time (millisecond hex prefix), unguessable (random suffix)."""
    return f"{int(time.time() * 1000):012x}{secrets.token_hex(6)}"


def is_submission_id(text: str) -> bool:
    return _SUBMISSION_ID.fullmatch(text) is not None  # fullmatch: `$` alone would let a trailing newline in


def is_user_name(text: str) -> bool:
    return _USER_NAME.fullmatch(text) is not None


def kv_submission_key(user: str, submission_id: str) -> str:
    """`<user>.<submission id>`: the key of a submission's job record and of its issued note (NATS KV)."""
    return f"{user}.{submission_id}"


def kv_submissions(*, user: str | None = None, submission_id: str | None = None) -> str:
    """The subject filter matching the KV keys of `user`'s submissions, of one id whoever owns it, or all."""
    return kv_submission_key(user or "*", submission_id or "*")


def kv_submission_id(key: str) -> str:
    """The submission id of a KV key made by `kv_submission_key`."""
    return key.split(".", 1)[-1]


def submission_prefix(user: str, submission_id: str) -> str:
    return f"submissions/{user}/{submission_id}/"


def file_key(user: str, submission_id: str, path: str) -> str:
    return f"{submission_prefix(user, submission_id)}files/{path}"


def blob_key(user: str, sha256: str) -> str:
    """A user's content-addressed file (deduplicated across that user's submissions)."""
    return f"blobs/{user}/sha256/{sha256}"


def manifest_key(user: str, submission_id: str) -> str:
    return f"{submission_prefix(user, submission_id)}manifest.json"


def results_prefix(user: str, submission_id: str) -> str:
    return f"results/{user}/{submission_id}/"


def result_key(user: str, submission_id: str, name: str) -> str:
    return f"{results_prefix(user, submission_id)}{name}"


@dataclass(frozen=True)
class ManifestKey:
    user: str
    submission_id: str


def parse_manifest_key(key: str) -> ManifestKey | None:
    """The user and id of a manifest key, or None for any other object."""
    match = _MANIFEST_KEY.match(key)
    if match is None:
        return None
    return ManifestKey(user=match["user"], submission_id=match["id"])


@dataclass(frozen=True)
class SubmissionDir:
    user: str
    submission_id: str


def parse_submission_dir(prefix: str) -> SubmissionDir | None:
    """The user and id of a submission's own prefix (`submission_prefix`, `results_prefix`), or None for any
    other (a stray object's folder the sweep leaves alone)."""
    match = _SUBMISSION_DIR.fullmatch(prefix)
    if match is None:
        return None
    return SubmissionDir(user=match["user"], submission_id=match["id"])


BENCHMARK_NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"
"""A benchmark's name: a path segment in both buckets, a KV key token and (prefixed) an MLflow experiment name."""


def is_benchmark_name(text: str) -> bool:
    return re.fullmatch(BENCHMARK_NAME_PATTERN[1:-1], text) is not None


def benchmark_public_key(name: str, version: int) -> str:
    """The public part of one benchmark version (main bucket): what jobs see, mounted at `benchmark/`."""
    return f"benchmarks/{name}/v{version}/public.zip"


def benchmark_reference_key(name: str, version: int) -> str:
    """The reference part (labels and masks) of one benchmark version, in the REFERENCE bucket, which no runner
    credential can read."""
    return f"{name}/v{version}/reference.zip"


def kv_benchmark_key(name: str, version: int) -> str:
    """The catalogue record of one benchmark version in the benchmarks KV bucket."""
    return f"{name}.v{version}"


PREDICTIONS_DIR = "predictions"
"""Where a benchmark job writes its predictions, under its --output directory (docs/benchmarks.md)."""
SCORES_CSV = "scores.csv"
"""The predictions' one required file: `image_id,score`, one row per test image."""


def predictions_prefix(user: str, submission_id: str) -> str:
    """A job's stored predictions: its output's predictions directory, as the runner uploaded it."""
    return result_key(user, submission_id, f"output/{PREDICTIONS_DIR}/")


def scores_key(user: str, submission_id: str) -> str:
    """The platform's scores of a benchmark job, with the bootstrap replicates for paired comparisons."""
    return result_key(user, submission_id, "scores.json")


def replicates_key(user: str, submission_id: str) -> str:
    """The bootstrap replicates of a benchmark job's scores, packed for range reads (scoring/replicates.py):
    the leaderboard reads only the vectors of the metric and category it shows."""
    return result_key(user, submission_id, "replicates.u16")


def kv_board_key(user: str, submission_id: str) -> str:
    """`e.<user>.<submission id>`: a completed job's entry in the leaderboard view (the board KV bucket), beside
    the view's own `meta.*` keys."""
    return f"e.{user}.{submission_id}"


BOARD_REBUILD_KEY = "meta.rebuild"
"""In the board bucket: an admin's request to rebuild the view from the job records (a `BoardRebuild`)."""
BOARD_BUILT_KEY = "meta.built"
"""In the board bucket: when the dispatcher last rebuilt the view, how many entries, and which request it answered."""
