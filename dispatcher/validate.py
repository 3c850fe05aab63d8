"""Checking a manifest against its key and against what was really uploaded."""

from __future__ import annotations

from pydantic import ValidationError

from leadersboard.keys import ManifestKey
from leadersboard.models.submission import Manifest, entrypoint_problem, missing_declared
from leadersboard.s3 import S3Client, head

__all__ = ["InvalidSubmission", "check_uploads", "parse_manifest"]


class InvalidSubmission(Exception):
    """The submission cannot run; the message is the reason shown to its owner."""


def parse_manifest(raw: bytes, where: ManifestKey) -> Manifest:
    try:
        manifest = Manifest.model_validate_json(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "manifest"
        raise InvalidSubmission(f"manifest.json is not valid: {field}: {first['msg']}") from exc
    if (manifest.user, manifest.submission_id) != (where.user, where.submission_id):
        raise InvalidSubmission(
            f"manifest.json names user {manifest.user!r} and id {manifest.submission_id!r} "
            f"but was uploaded under submissions/{where.user}/{where.submission_id}/"
        )
    paths = {spec.path for spec in manifest.files}
    if len(paths) != len(manifest.files):
        raise InvalidSubmission("manifest.json lists the same file twice")
    missing = missing_declared(manifest.entrypoint, manifest.config, paths)
    if missing:
        raise InvalidSubmission(f"the {missing[0].role} {missing[0].name!r} is not among the uploaded files")
    problem = entrypoint_problem(manifest.entrypoint)
    if problem is not None:
        raise InvalidSubmission(problem)
    if (manifest.benchmark is None) != (manifest.benchmark_version is None):
        # Ingest writes both or neither; one alone is a hand-made manifest (signing off, in development).
        raise InvalidSubmission("manifest.json is not valid: benchmark and benchmark_version go together")
    return manifest


def check_uploads(client: S3Client, bucket: str, manifest: Manifest) -> None:
    """Every declared file is in the store with its declared size."""
    problems = []
    for spec in manifest.files:
        # A deduplicated file is the user's blob (possibly from an earlier submission), not files/<path>.
        info = head(client, bucket, spec.store_key(manifest.user, manifest.submission_id))
        if info is None:
            problems.append(f"{spec.path} was never uploaded")
        elif info.size != spec.size:
            problems.append(f"{spec.path} is {info.size} bytes in the store but {spec.size} were declared")
    if problems:
        raise InvalidSubmission("upload incomplete: " + "; ".join(problems[:10]))
