"""Presigned requests for a new submission: one PUT per file, then the manifest."""

from __future__ import annotations

from datetime import timedelta

from pydantic import SecretStr

from leadersboard import keys
from leadersboard.models import (
    CreateSubmissionRequest,
    CreateSubmissionResponse,
    Manifest,
    PresignedRequest,
    utcnow,
)
from leadersboard.s3 import S3Client
from leadersboard.signing import sign_manifest

__all__ = ["presign_submission"]


def presign_submission(
    presigner: S3Client,
    *,
    bucket: str,
    user: str,
    request: CreateSubmissionRequest,
    expiry_s: int,
    secret: SecretStr,
) -> CreateSubmissionResponse:
    submission_id = keys.new_submission_id()
    now = utcnow()
    uploads = [
        _put(presigner, bucket, keys.file_key(user, submission_id, spec.path), spec.size, expiry_s, spec.path)
        for spec in request.files
    ]
    manifest = Manifest(
        submission_id=submission_id,
        user=user,
        entrypoint=request.entrypoint,
        config=request.config,
        metadata=request.metadata,
        files=request.files,
        created_at=now,
    )
    body = sign_manifest(manifest, secret).model_dump_json()
    manifest_put = _put(presigner, bucket, keys.manifest_key(user, submission_id), len(body.encode()), expiry_s, None)
    manifest_put.body = body
    return CreateSubmissionResponse(
        submission_id=submission_id,
        uploads=uploads,
        manifest=manifest_put,
        expires_at=now + timedelta(seconds=expiry_s),
    )


def _put(presigner: S3Client, bucket: str, key: str, size: int, expiry_s: int, path: str | None) -> PresignedRequest:
    # Content-Length is signed: the store refuses a body of any other size than the one declared.
    url = presigner.generate_presigned_url(
        "put_object",
        Params={"Bucket": bucket, "Key": key, "ContentLength": size},
        ExpiresIn=expiry_s,
        HttpMethod="PUT",
    )
    return PresignedRequest(path=path, method="PUT", url=url, headers={})
