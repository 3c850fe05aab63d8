"""From a bucket event to a job record: validation, signature, the creating token, the authoritative rate limit."""

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
from leadersboard.limits import MAX_METADATA_BYTES, MAX_RECORD_BYTES
from leadersboard.models.base import utcnow
from leadersboard.models.records import JobRecord, JobStatus
from leadersboard.models.s3_events import S3EventEnvelope
from leadersboard.models.submission import Manifest
from leadersboard.quotas import RATE_WINDOW_S, QuotaStore
from leadersboard.s3 import S3Client, is_not_found
from leadersboard.signing import signature_valid
from leadersboard.tokens import TokenStore

__all__ = ["CREATED_EVENTS", "TOKEN_REVOKED", "Intake"]

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
TOKEN_REVOKED = "token revoked before the upload finished"


class Intake:
    def __init__(
        self,
        settings: DispatcherSettings,
        jobs: JobStore,
        quotas: QuotaStore,
        tokens: TokenStore,
        s3: S3Client,
        view: JobView,
    ) -> None:
        self.settings = settings
        self.jobs = jobs
        self.quotas = quotas
        self.tokens = tokens
        self.s3 = s3
        self.view = view
        # Events of different users are handled concurrently; one user's in order, for the rate limit and age.
        self._user_locks: dict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

    async def handle_event(self, data: bytes) -> None:
        try:
            S3EventEnvelope.model_validate_json(data)
        except ValidationError as exc:
            log.warning("dropping an event that is not a MinIO S3 event: %s", exc.errors()[0]["msg"])
            return
        for where in self.manifests_in(data):
            await self.dispatch(where)

    def manifests_in(self, data: bytes) -> list[ManifestKey]:
        """The submissions whose manifest creation this event announces (none for any other event)."""
        try:
            envelope = S3EventEnvelope.model_validate_json(data)
        except ValidationError:
            return []
        found = []
        for record in envelope.Records:
            if record.eventName not in CREATED_EVENTS or record.s3.bucket.name != self.settings.bucket:
                continue
            where = keys.parse_manifest_key(unquote_plus(record.s3.object.key))
            if where is not None:
                found.append(where)
        return found

    async def dispatch(self, where: ManifestKey) -> None:
        """Record the submission once: `pending` (the scheduler releases it) or `failed` with the reason."""
        # One user's events are taken in the order they arrived (the lock is FIFO and taken first), so an
        # older submission is never recorded, hence released, after a newer one of the same user.
        async with self._user_locks[where.user]:
            if await self.jobs.get(where.user, where.submission_id) is not None:
                return  # a redelivered or replayed event
            record, token_id = await asyncio.to_thread(self._judge, where)
            await self._record(await self._token_checked(record, token_id))

    async def dead_letter(self, where: ManifestKey, reason: str) -> bool:
        """Record the submission `failed` with `reason`, unless it has a record already; True if recorded."""
        async with self._user_locks[where.user]:
            if await self.jobs.get(where.user, where.submission_id) is not None:
                return False
            record = _failed(where, reason)
            if not await self.jobs.create(record):
                return False
            self.view.put(record)
        log.error("submission %s of %s given up: %s", where.submission_id, where.user, reason)
        return True

    async def _record(self, record: JobRecord) -> None:
        where = ManifestKey(record.user, record.submission_id)
        if record.status is JobStatus.PENDING:
            record = await self._rate_limited(record)
        record = _fitting(record)
        if await self.jobs.create(record):
            self.view.put(record)
            log.info("submission %s of %s: %s %s", where.submission_id, where.user, record.status, record.error or "")

    def _judge(self, where: ManifestKey) -> tuple[JobRecord, str | None]:
        """The record to write, and the id of the token that created the submission (None: not recorded)."""
        try:
            manifest = parse_manifest(self._read_manifest(where), where)
            if not signature_valid(manifest, self.settings.manifest_secret):
                raise InvalidSubmission("manifest.json was modified after ingest issued it; submit again")
            check_uploads(self.s3, self.settings.bucket, manifest)
        except InvalidSubmission as exc:
            return _failed(where, str(exc)), None
        return _pending(manifest), manifest.token_id

    async def _token_checked(self, record: JobRecord, token_id: str | None) -> JobRecord:
        """Failed when the token that created it was revoked before now (tokens are never deleted, so an
        unknown one counts as revoked); an expired token does not stop it: its upload URLs were granted."""
        if record.status is not JobStatus.PENDING or token_id is None:
            return record
        found = await self.tokens.find(token_id)
        token = found[1] if found is not None else None
        # Exactly that id and the submission's owner: `find` also matches the start of an id (for admins).
        if token is not None and (token.token_id, token.user) == (token_id, record.user) and not token.revoked:
            return record
        return record.model_copy(update={"status": JobStatus.FAILED, "error": TOKEN_REVOKED, "finished_at": utcnow()})

    def _read_manifest(self, where: ManifestKey) -> bytes:
        key = keys.manifest_key(where.user, where.submission_id)
        limit = self.settings.max_manifest_bytes
        try:
            response = self.s3.get_object(Bucket=self.settings.bucket, Key=key, Range=f"bytes=0-{limit}")
        except ClientError as exc:
            if is_not_found(exc):
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


def _fitting(record: JobRecord) -> JobRecord:
    """The record, or when it would not fit a KV value, the same submission failed without its metadata."""
    size = len(record.model_dump_json().encode())
    if size <= MAX_RECORD_BYTES:
        return record
    reason = (
        f"metadata too large: the job record would be {size} bytes and at most {MAX_RECORD_BYTES} fit, so the "
        f"metadata was left out; keep metadata under {MAX_METADATA_BYTES} bytes of JSON and submit again"
    )
    slim = record.model_copy(
        update={"metadata": {}, "dataset": None, "status": JobStatus.FAILED, "error": reason, "finished_at": utcnow()}
    )
    if len(slim.model_dump_json().encode()) <= MAX_RECORD_BYTES:
        return slim
    return _failed(ManifestKey(record.user, record.submission_id), reason)


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
        benchmark=manifest.benchmark,
        benchmark_version=manifest.benchmark_version,
    )
