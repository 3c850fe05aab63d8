"""Consume bucket events; record and queue one job per submission manifest, exactly once."""

from __future__ import annotations

import asyncio
import logging
from urllib.parse import unquote_plus

from botocore.exceptions import BotoCoreError, ClientError
from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from pydantic import ValidationError

from dispatcher.settings import DispatcherSettings
from dispatcher.validate import InvalidSubmission, check_uploads, parse_manifest
from leadersboard import keys, nats_io
from leadersboard.jobs import JobStore
from leadersboard.keys import ManifestKey
from leadersboard.models import JobMessage, JobRecord, JobStatus, Manifest, S3EventEnvelope, utcnow
from leadersboard.s3 import S3Client, make_client

__all__ = ["CREATED_EVENTS", "Dispatcher", "run"]

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
RETRY_DELAY_S = 2.0


class Dispatcher:
    def __init__(self, settings: DispatcherSettings, js: JetStreamContext, jobs: JobStore, s3: S3Client) -> None:
        self.settings = settings
        self.js = js
        self.jobs = jobs
        self.s3 = s3

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
        existing = await self.jobs.get(where.user, where.submission_id)
        if existing is not None:
            # A redelivered event: finish what a crashed predecessor may have left half done.
            if existing.status is JobStatus.PENDING and existing.queued_at is None:
                await self._enqueue(existing)
            return
        record = await asyncio.to_thread(self._judge, where)
        if await self.jobs.create(record) and record.status is JobStatus.PENDING:
            await self._enqueue(record)
        log.info("submission %s of %s: %s %s", where.submission_id, where.user, record.status, record.error or "")

    def _judge(self, where: ManifestKey) -> JobRecord:
        """A pending record for a valid submission, a failed one with the reason otherwise."""
        try:
            manifest = parse_manifest(self._read_manifest(where), where)
            check_uploads(self.s3, self.settings.bucket, manifest)
        except InvalidSubmission as exc:
            return JobRecord(
                submission_id=where.submission_id,
                user=where.user,
                status=JobStatus.FAILED,
                entrypoint="",
                config="",
                created_at=utcnow(),
                finished_at=utcnow(),
                error=str(exc),
            )
        return _pending_record(manifest)

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

    async def _enqueue(self, record: JobRecord) -> None:
        message = JobMessage(submission_id=record.submission_id, user=record.user)
        await self.js.publish(
            self.settings.jobs_subject,
            message.model_dump_json().encode(),
            headers={"Nats-Msg-Id": record.submission_id},
        )

        def mark_queued(current: JobRecord) -> JobRecord | None:
            if current.queued_at is not None:
                return None
            current.queued_at = utcnow()
            return current

        await self.jobs.update(record.user, record.submission_id, mark_queued)


def _pending_record(manifest: Manifest) -> JobRecord:
    return JobRecord(
        submission_id=manifest.submission_id,
        user=manifest.user,
        entrypoint=manifest.entrypoint,
        config=manifest.config,
        metadata=manifest.metadata,
        files=manifest.files,
        dataset=_dataset_hint(manifest),
        created_at=manifest.created_at,
    )


def _dataset_hint(manifest: Manifest) -> str | None:
    value = manifest.metadata.get("dataset")
    return str(value) if value else None


async def run(settings: DispatcherSettings, *, stop: asyncio.Event | None = None) -> None:
    stop = stop or asyncio.Event()
    nc = await nats_io.connect(settings, name="dispatcher")
    js = nc.jetstream()
    await nats_io.ensure_topology(js, settings)
    dispatcher = Dispatcher(settings, js, JobStore(await js.key_value(settings.jobs_kv_bucket)), make_client(settings))
    subscription = await js.pull_subscribe(
        settings.events_subject,
        durable=settings.consumer_name,
        stream=settings.events_stream,
        config=ConsumerConfig(
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=settings.ack_wait_s,
            deliver_policy=DeliverPolicy.ALL,
            max_ack_pending=10_000,
        ),
    )
    log.info("dispatcher consuming %s", settings.events_subject)
    try:
        while not stop.is_set():
            try:
                messages = await subscription.fetch(settings.fetch_batch, timeout=settings.fetch_timeout_s)
            except (NatsTimeoutError, TimeoutError):
                if settings.burst:
                    break
                continue
            for message in messages:
                await _process(dispatcher, message)
    finally:
        await nc.drain()


async def _process(dispatcher: Dispatcher, message: Msg) -> None:
    try:
        await dispatcher.handle_event(message.data)
    except (BotoCoreError, ClientError, NatsTimeoutError, ConnectionError) as exc:
        # The store or NATS is down: leave the event for later, nothing is lost.
        log.warning("will retry an event: %r", exc)
        await message.nak(delay=RETRY_DELAY_S)
        return
    except Exception:
        log.exception("unexpected error on an event; it will be redelivered")
        await message.nak(delay=RETRY_DELAY_S)
        return
    await message.ack()
