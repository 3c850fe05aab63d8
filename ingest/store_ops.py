"""The store's side of deletion, retention and usage: listing and deleting under a prefix, the storage each user
takes, and aborting multipart uploads nobody completed. Blocking (boto3): call these in a thread."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from itertools import islice

from botocore.exceptions import ClientError

from ingest.errors import ServiceUnavailable
from leadersboard import keys
from leadersboard.models.housekeeping import USAGE_AREAS, StorageUse, UsageReport, UserUsage
from leadersboard.models.records import JobRecord
from leadersboard.s3 import S3Client, error_code

__all__ = [
    "DELETE_BATCH",
    "LIST_PAGE",
    "StoredObject",
    "abort_stale_uploads",
    "blob_keys",
    "delete_keys",
    "delete_prefix",
    "keys_if_all_before",
    "objects_under",
    "submission_dirs",
    "usage",
    "user_blobs",
]

DELETE_BATCH = 1000
"""Keys in one DeleteObjects request (S3's limit)."""
LIST_PAGE = 1000
"""Entries in one ListObjectsV2 answer (S3's limit): a listing holds one page in memory at a time."""


@dataclass(frozen=True)
class StoredObject:
    key: str
    size: int
    modified: datetime


def objects_under(s3: S3Client, bucket: str, prefix: str) -> Iterator[StoredObject]:
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            yield StoredObject(item["Key"], int(item["Size"]), item["LastModified"])


def submission_dirs(s3: S3Client, bucket: str, area: str) -> list[keys.SubmissionDir]:
    """Every `<area>/<user>/<id>/` in the store (area: `submissions` or `results`), listed a level at a time: one
    entry per user, then per submission, never one per file."""
    found = (
        keys.parse_submission_dir(prefix)
        for user in _folders(s3, bucket, f"{area}/")
        for prefix in _folders(s3, bucket, user)
    )
    return [submission for submission in found if submission is not None]


def _folders(s3: S3Client, bucket: str, prefix: str) -> Iterator[str]:
    pages = s3.get_paginator("list_objects_v2").paginate(
        Bucket=bucket, Prefix=prefix, Delimiter="/", PaginationConfig={"PageSize": LIST_PAGE}
    )
    for page in pages:
        yield from (common["Prefix"] for common in page.get("CommonPrefixes", []))


def keys_if_all_before(
    s3: S3Client, bucket: str, prefix: str, *, before: datetime, unless: str | None = None
) -> list[str]:
    """The keys under `prefix` if every one was written before `before` and none is `unless`; else [] (the
    listing stops at the first object that keeps the prefix)."""
    found = []
    for stored in objects_under(s3, bucket, prefix):
        if stored.modified >= before or stored.key == unless:
            return []
        found.append(stored.key)
    return found


def delete_keys(s3: S3Client, bucket: str, keys_: Iterable[str]) -> int:
    """Delete the objects (a missing one counts as deleted: S3 says nothing of it); how many were asked for."""
    deleted = 0
    it = iter(keys_)
    while batch := list(islice(it, DELETE_BATCH)):
        answer = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True})
        errors = answer.get("Errors", [])
        if errors:
            first = errors[0]
            raise ServiceUnavailable(
                f"the store refused to delete {len(errors)} objects (first: {first.get('Key')}: "
                f"{first.get('Code')}); nothing was lost, try again"
            )
        deleted += len(batch)
    return deleted


def delete_prefix(s3: S3Client, bucket: str, prefix: str) -> int:
    """Delete every object under `prefix` (which ends with `/`); how many there were."""
    if not prefix.endswith("/"):
        raise ValueError(f"a prefix to delete ends with '/': {prefix!r}")
    return delete_keys(s3, bucket, [found.key for found in objects_under(s3, bucket, prefix)])


def blob_keys(record: JobRecord) -> set[str]:
    """The deduplicated objects (`blobs/<user>/sha256/...`) the submission's files are stored as."""
    return {spec.store_key(record.user, record.submission_id) for spec in record.files if spec.blob and spec.sha256}


def user_blobs(s3: S3Client, bucket: str, user: str) -> list[StoredObject]:
    return list(objects_under(s3, bucket, keys.blob_key(user, "")))


def usage(s3: S3Client, bucket: str) -> UsageReport:
    """Bytes and objects of each user under `submissions/`, `blobs/` and `results/` (one listing of each)."""
    report = UsageReport()
    for area in USAGE_AREAS:
        for found in objects_under(s3, bucket, f"{area}/"):
            user = found.key.split("/", 2)[1]
            use: StorageUse = getattr(report.users.setdefault(user, UserUsage()), area)
            use.bytes += found.size
            use.objects += 1
    report.users = dict(sorted(report.users.items()))
    return report


def abort_stale_uploads(s3: S3Client, bucket: str, *, started_before: datetime) -> int:
    """Abort the multipart uploads begun before `started_before` and never completed; how many were aborted."""
    stale = []
    for page in s3.get_paginator("list_multipart_uploads").paginate(Bucket=bucket):
        stale += [(u["Key"], u["UploadId"]) for u in page.get("Uploads", []) if u["Initiated"] < started_before]
    aborted = 0
    for key, upload_id in stale:
        try:
            s3.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
        except ClientError as exc:
            if error_code(exc) != "NoSuchUpload":  # completed or aborted meanwhile
                raise
            continue
        aborted += 1
    return aborted
