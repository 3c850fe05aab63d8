"""Presigned requests for a new submission: per file a PUT, a multipart upload or "already present"; the manifest.

Files that declare a sha256 are content-addressed per user (`blobs/<user>/sha256/<hex>`): when that blob is
already in the store with the declared size, the answer is `{"path", "status": "present"}` and nothing is
uploaded again. A single-PUT blob carries a signed `x-amz-checksum-sha256` header, so the store itself refuses
content that does not match the declared hash. Files of at least `multipart_threshold_bytes` are offered as a
presigned multipart upload (a part URL each, whose Content-Length is signed, and a presigned complete), plus a
single presigned PUT of the whole file for clients that do not do multipart. This module makes only small
store calls (HEAD, CreateMultipartUpload): no byte of a file passes through ingest.
"""

from __future__ import annotations

import base64
import math
from dataclasses import dataclass
from datetime import timedelta

from pydantic import SecretStr

from ingest.settings import IngestSettings
from leadersboard import keys
from leadersboard.models.api import (
    CreateSubmissionRequest,
    CreateSubmissionResponse,
    MultipartUpload,
    PresentFile,
    PresignedRequest,
    UploadItem,
    UploadPart,
)
from leadersboard.models.base import utcnow
from leadersboard.models.benchmarks import BenchmarkInfo
from leadersboard.models.submission import FileSpec, Manifest
from leadersboard.s3 import S3Client, head
from leadersboard.signing import sign_manifest

__all__ = ["MAX_PARTS", "UploadPolicy", "part_size_for", "presign_object", "presign_submission"]

MAX_PARTS = 10_000


@dataclass(frozen=True)
class UploadPolicy:
    expiry_s: int
    multipart_threshold_bytes: int
    multipart_part_bytes: int

    @classmethod
    def of(cls, settings: IngestSettings) -> UploadPolicy:
        return cls(settings.presign_expiry_s, settings.multipart_threshold_bytes, settings.multipart_part_bytes)


def presign_submission(
    presigner: S3Client,
    store: S3Client,
    *,
    bucket: str,
    user: str,
    request: CreateSubmissionRequest,
    policy: UploadPolicy,
    secret: SecretStr,
    token_id: str | None = None,
    benchmark: BenchmarkInfo | None = None,
) -> CreateSubmissionResponse:
    """Blocking (HEADs blobs, creates multipart uploads): call it in a thread.

    `token_id` (the creating token's) is signed into the manifest: the dispatcher fails the submission
    if that token is revoked before the manifest arrives. `benchmark` (the version the request's benchmark
    resolved to) is signed into it too: the job is scored against exactly that version."""
    submission_id = keys.new_submission_id()
    now = utcnow()
    files: list[FileSpec] = []
    uploads: list[UploadItem] = []
    claimed: set[str] = set()
    for declared in request.files:
        spec = declared.model_copy(update={"blob": declared.sha256 is not None})
        files.append(spec)
        key = spec.store_key(user, submission_id)
        if key in claimed:  # the same content twice in this very request: its earlier entry uploads it
            uploads.append(PresentFile(path=spec.path))
            continue
        claimed.add(key)
        # Only a blob can be in the store already: the submission's own files live under its brand-new id.
        uploads.append(
            presign_object(presigner, store, bucket=bucket, key=key, spec=spec, policy=policy, may_exist=spec.blob)
        )
    manifest = Manifest(
        submission_id=submission_id,
        user=user,
        entrypoint=request.entrypoint,
        config=request.config,
        metadata=request.metadata,
        files=files,
        created_at=now,
        token_id=token_id,
        benchmark=None if benchmark is None else benchmark.name,
        benchmark_version=None if benchmark is None else benchmark.version,
    )
    body = sign_manifest(manifest, secret).model_dump_json()
    signer = _Signer(presigner, bucket, policy.expiry_s)
    manifest_put = signer.put(keys.manifest_key(user, submission_id), len(body.encode()), None, {})
    manifest_put.body = body
    return CreateSubmissionResponse(
        submission_id=submission_id,
        uploads=uploads,
        manifest=manifest_put,
        expires_at=now + timedelta(seconds=policy.expiry_s),
    )


def presign_object(
    presigner: S3Client,
    store: S3Client,
    *,
    bucket: str,
    key: str,
    spec: FileSpec,
    policy: UploadPolicy,
    may_exist: bool = True,
) -> UploadItem:
    """One object to put at `key` (a submission's file, a benchmark's part): `present` when the store has it with
    that size, else a presigned PUT (its sha256 signed, when declared) or, from the threshold on, a multipart
    upload. `may_exist=False` skips the HEAD for a key that cannot be taken yet. Blocking."""
    if may_exist and _present(store, bucket, key, spec.size):
        return PresentFile(path=spec.path)
    signer = _Signer(presigner, bucket, policy.expiry_s)
    if spec.size >= policy.multipart_threshold_bytes:
        return signer.multipart(store, spec, key, policy.multipart_part_bytes)
    return signer.put(key, spec.size, spec.path, _checksum_headers(spec))


def part_size_for(size: int, part_bytes: int) -> int:
    """The configured part size, raised so that the file needs at most MAX_PARTS parts."""
    return max(part_bytes, math.ceil(size / MAX_PARTS))


def _present(store: S3Client, bucket: str, key: str, size: int) -> bool:
    info = head(store, bucket, key)
    return info is not None and info.size == size


def _checksum_headers(spec: FileSpec) -> dict[str, str]:
    if spec.sha256 is None:
        return {}
    return {"x-amz-checksum-sha256": base64.b64encode(bytes.fromhex(spec.sha256)).decode()}


@dataclass(frozen=True)
class _Signer:
    presigner: S3Client
    bucket: str
    expiry_s: int

    def put(self, key: str, size: int, path: str | None, headers: dict[str, str]) -> PresignedRequest:
        # Content-Length (and the checksum, when given) are signed: the store refuses any other body.
        params: dict[str, object] = {"Bucket": self.bucket, "Key": key, "ContentLength": size}
        if "x-amz-checksum-sha256" in headers:
            params["ChecksumSHA256"] = headers["x-amz-checksum-sha256"]
        url = self.presigner.generate_presigned_url("put_object", Params=params, ExpiresIn=self.expiry_s)
        return PresignedRequest(path=path, method="PUT", url=url, headers=headers)

    def multipart(self, store: S3Client, spec: FileSpec, key: str, part_bytes: int) -> MultipartUpload:
        upload_id = store.create_multipart_upload(Bucket=self.bucket, Key=key)["UploadId"]
        part_size = part_size_for(spec.size, part_bytes)
        parts = []
        for number, offset in enumerate(range(0, spec.size, part_size), start=1):
            length = min(part_size, spec.size - offset)
            params = {"Bucket": self.bucket, "Key": key, "UploadId": upload_id, "PartNumber": number,
                      "ContentLength": length}  # fmt: skip
            url = self.presigner.generate_presigned_url("upload_part", Params=params, ExpiresIn=self.expiry_s)
            parts.append(UploadPart(part_number=number, size=length, url=url))
        complete_url = self.presigner.generate_presigned_url(
            "complete_multipart_upload",
            Params={"Bucket": self.bucket, "Key": key, "UploadId": upload_id},
            ExpiresIn=self.expiry_s,
            HttpMethod="POST",
        )
        whole = self.put(key, spec.size, spec.path, _checksum_headers(spec))
        return MultipartUpload(
            path=spec.path,
            url=whole.url,
            headers=whole.headers,
            upload_id=upload_id,
            part_size=part_size,
            parts=parts,
            complete=PresignedRequest(method="POST", url=complete_url, headers={"Content-Type": "application/xml"}),
        )
