"""From a bucket event to a job record: validation, signature, the authoritative rate limit."""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from datetime import timedelta
from urllib.parse import unquote_plus

from botocore.exceptions import ClientError
from pydantic import ValidationError

from dispatcher.settings import DispatcherSettings
from dispatcher.validate import InvalidSubmission, check_uploads, parse_manifest
from dispatcher.view import JobView
from leadersboard import keys
from leadersboard.jobs import JobStore
from leadersboard.keys import ManifestKey
from leadersboard.models import JobRecord, JobStatus, Manifest, S3EventEnvelope, utcnow
from leadersboard.quotas import RATE_WINDOW_S, QuotaStore
from leadersboard.s3 import S3Client
from leadersboard.signing import signature_valid

__all__ = ["CREATED_EVENTS", "Intake"]

log = logging.getLogger("dispatcher")

# Tagging, retention and legal-hold events are "created" too in MinIO but carry no new content.
CREATED_EVENTS = frozenset(
    {
        "s3:ObjectCreated:Put",
        "s3:ObjectCreated:Post",
        "s3:ObjectCreated:Copy",
        "s3:ObjectCreated:CompleteMultipartUpload",
    }
)
RATE_LIMIT_PREFIX = "rate limit:"


class Intake:
    def __init__(
        self, settings: DispatcherSettings, jobs: JobStore, quotas: QuotaStore, s3: S3Client, view: JobView
    ) -> None:
        self.settings = settings
        self.jobs = jobs
        self.quotas = quotas
        self.s3 = s3
        self.view = view
        # Events of different users are handled concurrently; one user's in order, for the rate limit and age.
        self._user_locks: dict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

    async def handle_event(self, data: bytes) -> None:
        try:
            envelope = S3EventEnvelope.model_validate_json(data)
        except ValidationError as exc:
            log.warning("dropping an event that is not a MinIO S3 event: %s", exc.errors()[0]["msg"])
            return
        for record in envelope.Records:
            if record.eventName not in CREATED_EVENTS or record.s3.bucket.name != self.settings.bucket:
                continue
            where = keys.parse_manifest_key(unquote_plus(record.s3.object.key))
            if where is not None:
                await self.dispatch(where)

    async def dispatch(self, where: ManifestKey) -> None:
        """Record the submission once: `pending` (the scheduler releases it) or `failed` with the reason."""
        # One user's events are taken in the order they arrived (the lock is FIFO and taken first), so an
        # older submission is never recorded, hence released, after a newer one of the same user.
        async with self._user_locks[where.user]:
            if await self.jobs.get(where.user, where.submission_id) is not None:
                return  # a redelivered or replayed event
            record = await asyncio.to_thread(self._judge, where)
            await self._record(record)

    async def _record(self, record: JobRecord) -> None:
        where = ManifestKey(record.user, record.submission_id)
        if record.status is JobStatus.PENDING:
            record = await self._rate_limited(record)
        if await self.jobs.create(record):
            self.view.put(record)
            log.info("submission %s of %s: %s %s", where.submission_id, where.user, record.status, record.error or "")

    def _judge(self, where: ManifestKey) -> JobRecord:
        try:
            manifest = parse_manifest(self._read_manifest(where), where)
            if not signature_valid(manifest, self.settings.manifest_secret):
                raise InvalidSubmission("manifest.json was modified after ingest issued it; submit again")
            check_uploads(self.s3, self.settings.bucket, manifest)
        except InvalidSubmission as exc:
            return _failed(where, str(exc))
        return _pending(manifest)

    def _read_manifest(self, where: ManifestKey) -> bytes:
        key = keys.manifest_key(where.user, where.submission_id)
        limit = self.settings.max_manifest_bytes
        try:
            response = self.s3.get_object(Bucket=self.settings.bucket, Key=key, Range=f"bytes=0-{limit}")
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                raise InvalidSubmission("manifest.json was deleted before it could be read") from exc
            raise
        raw = bytes(response["Body"].read())
        if len(raw) > limit:
            raise InvalidSubmission(f"manifest.json is larger than {limit} bytes")
        return raw

    async def _rate_limited(self, record: JobRecord) -> JobRecord:
        """The authoritative check: presigned URLs can be replayed, ingest's count is only a first gate."""
        limit = (await self.quotas.effective(record.user)).per_hour
        window_start = record.created_at - timedelta(seconds=RATE_WINDOW_S)
        counted = [
            r
            for r in self.view.records.values()
            if r.user == record.user
            and r.submission_id != record.submission_id
            and window_start < r.created_at <= record.created_at
            and not (r.error or "").startswith(RATE_LIMIT_PREFIX)
        ]
        if len(counted) < limit:
            return record
        next_at = min(r.created_at for r in counted) + timedelta(seconds=RATE_WINDOW_S)
        reason = (
            f"{RATE_LIMIT_PREFIX} more than {limit} submissions in the hour before this one; "
            f"submit again after {next_at.strftime('%H:%M:%S UTC')}"
        )
        return record.model_copy(update={"status": JobStatus.FAILED, "error": reason, "finished_at": utcnow()})


def _failed(where: ManifestKey, reason: str) -> JobRecord:
    now = utcnow()
    return JobRecord(
        submission_id=where.submission_id,
        user=where.user,
        status=JobStatus.FAILED,
        entrypoint="",
        config="",
        created_at=now,
        finished_at=now,
        error=reason,
    )


def _pending(manifest: Manifest) -> JobRecord:
    dataset = manifest.metadata.get("dataset")
    return JobRecord(
        submission_id=manifest.submission_id,
        user=manifest.user,
        entrypoint=manifest.entrypoint,
        config=manifest.config,
        metadata=manifest.metadata,
        files=manifest.files,
        dataset=str(dataset) if dataset else None,
        created_at=manifest.created_at,
    )
