"""Events that fail the same way on every delivery end their submission `failed`: never an endless redelivery.

Real nats-server and SeaweedFS; the dispatcher's own consumer loop (`dispatcher.service.run`) where the
redelivery happens. Each attack is followed by a normal manifest that must still be dispatched.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from nats.aio.client import Client as NATS
from nats.js.api import KeyValueConfig
from pydantic import SecretStr

from dispatcher.faults import GAVE_UP
from dispatcher.service import run
from dispatcher.settings import DispatcherSettings
from leadersboard import keys
from leadersboard.issued import IssuedStore
from leadersboard.jobs import JobStore
from leadersboard.limits import MAX_RECORD_BYTES
from leadersboard.models.base import utcnow
from leadersboard.models.records import JobRecord, JobStatus
from leadersboard.models.submission import FileSpec, Manifest
from leadersboard.s3 import S3Client, make_client
from leadersboard.settings import NatsSettings, S3Settings
from leadersboard.signing import sign_manifest
from tests.reference import minio_event
from tests.test_dispatcher import GOOD, make_dispatcher

SECRET = SecretStr("test-signing-secret")
WAIT_S = 60.0
"""How long a submission may take to get its record: far more than the second or two it takes."""
SMALL_RECORD_BYTES = 4096


def dispatcher_settings(nats: NatsSettings, s3: S3Settings, **extra: Any) -> DispatcherSettings:
    fast = {"event_retry_delay_s": 0.1, "event_retry_max_delay_s": 0.5, "fetch_timeout_s": 0.2, "recover_after_s": 0}
    return DispatcherSettings(**nats.model_dump(), **s3.model_dump(), manifest_secret=SECRET, **(fast | extra))


def put_submission(
    s3: S3Client, bucket: str, user: str, metadata: dict[str, Any] | None = None, *, token_id: str | None = None
) -> str:
    """Files and a manifest signed as ingest signs it, straight into the store (as presigned PUTs would)."""
    sid = keys.new_submission_id()
    for path, data in GOOD.items():
        s3.put_object(Bucket=bucket, Key=keys.file_key(user, sid, path), Body=data)
    manifest = Manifest(
        submission_id=sid, user=user, entrypoint="main.py", config="config.yaml", metadata=metadata or {},
        files=[FileSpec(path=p, size=len(d)) for p, d in GOOD.items()], created_at=utcnow(), token_id=token_id,
    )  # fmt: skip
    body = sign_manifest(manifest, SECRET).model_dump_json().encode()
    s3.put_object(Bucket=bucket, Key=keys.manifest_key(user, sid), Body=body)
    return sid


async def announce(nc: NATS, settings: DispatcherSettings, user: str, sid: str) -> None:
    """The bucket event MinIO (or the bridge) publishes for the manifest."""
    event = minio_event(settings.bucket, keys.manifest_key(user, sid))
    await nc.jetstream().publish(settings.events_subject, event)


@asynccontextmanager
async def consuming(settings: DispatcherSettings) -> AsyncIterator[None]:
    stop = asyncio.Event()
    task = asyncio.create_task(run(settings, stop=stop))
    try:
        yield
    finally:
        stop.set()
        await task


async def recorded(jobs: JobStore, user: str, sid: str) -> JobRecord:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        record = await jobs.get(user, sid)
        if record is not None:
            return record
        await asyncio.sleep(0.1)
    raise AssertionError(f"submission {sid} still has no job record after {WAIT_S:.0f} s (endless redelivery?)")


async def unsettled_events(nc: NATS, settings: DispatcherSettings) -> int:
    """Events delivered and neither acknowledged nor terminated, plus those not yet delivered."""
    info = await nc.jetstream().consumer_info(settings.events_stream, settings.consumer_name)
    return (info.num_ack_pending or 0) + (info.num_pending or 0)


async def small_jobs_bucket(nc: NATS, settings: DispatcherSettings) -> JobStore:
    """The jobs bucket re-declared with values of at most SMALL_RECORD_BYTES: NATS refuses bigger records."""
    js = nc.jetstream()
    await js.delete_key_value(settings.jobs_kv_bucket)
    config = KeyValueConfig(bucket=settings.jobs_kv_bucket, history=1, max_value_size=SMALL_RECORD_BYTES)
    return JobStore(await js.create_key_value(config))


async def test_metadata_too_large_for_a_record_fails_the_job_then_others_run(
    nc: NATS, nats_settings: NatsSettings, s3_settings: S3Settings
) -> None:
    # The case: a 560,000-character dataset name makes the record (metadata + dataset) exceed
    # NATS's 1 MiB max_payload; it used to be redelivered every 2 s forever while its owner saw 404.
    settings = dispatcher_settings(nats_settings, s3_settings)
    jobs = JobStore(await nc.jetstream().key_value(settings.jobs_kv_bucket))
    s3 = make_client(settings)
    huge = put_submission(s3, settings.bucket, "alice", {"dataset": "d" * 560_000, "method": "padim"})
    async with consuming(settings):
        await announce(nc, settings, "alice", huge)
        failed = await recorded(jobs, "alice", huge)
        normal = put_submission(s3, settings.bucket, "alice", {"dataset": "mvtec"})
        await announce(nc, settings, "alice", normal)
        assert (await recorded(jobs, "alice", normal)).status is JobStatus.PENDING
    assert failed.status is JobStatus.FAILED
    assert failed.error is not None and failed.error.startswith("metadata too large: the job record would be")
    assert f"at most {MAX_RECORD_BYTES} fit, so the metadata was left out" in failed.error
    assert (failed.metadata, failed.dataset, failed.entrypoint) == ({}, None, "main.py")
    assert await unsettled_events(nc, settings) == 0


async def test_an_event_failing_the_same_way_ends_failed_after_n_deliveries(
    nc: NATS, nats_settings: NatsSettings, s3_settings: S3Settings
) -> None:
    # A fault the dispatcher cannot foresee and that repeats on every delivery: the jobs bucket refuses the
    # record (values are capped below it). It is given up after max_event_deliveries, with the reason.
    settings = dispatcher_settings(nats_settings, s3_settings, max_event_deliveries=3)
    jobs = await small_jobs_bucket(nc, settings)
    s3 = make_client(settings)
    refused = put_submission(s3, settings.bucket, "alice", {"description": "x" * SMALL_RECORD_BYTES})
    async with consuming(settings):
        await announce(nc, settings, "alice", refused)
        failed = await recorded(jobs, "alice", refused)
        normal = put_submission(s3, settings.bucket, "bob")
        await announce(nc, settings, "bob", normal)
        assert (await recorded(jobs, "bob", normal)).status is JobStatus.PENDING
    assert failed.status is JobStatus.FAILED
    assert failed.error is not None and failed.error.startswith(f"{GAVE_UP} after 3 attempts (BadRequestError")
    assert "report the submission id to the admins" in failed.error
    assert await unsettled_events(nc, settings) == 0  # terminated, not left for redelivery


async def test_recovery_gives_up_on_one_submission_without_holding_up_the_others(
    nc: NATS, nats_settings: NatsSettings, s3_settings: S3Settings
) -> None:
    # Submissions whose events were lost are dispatched from the store by the recovery pass. One that fails
    # on every pass used to stop the pass before the others, and be tried again forever.
    settings = dispatcher_settings(nats_settings, s3_settings, max_event_deliveries=3)
    jobs = await small_jobs_bucket(nc, settings)
    dispatcher = await make_dispatcher(settings, nc.jetstream())
    view = await dispatcher.start_view()
    issued = IssuedStore(await nc.jetstream().key_value(settings.issued_kv_bucket))
    try:
        refused = put_submission(dispatcher.s3, settings.bucket, "alice", {"description": "x" * SMALL_RECORD_BYTES})
        await issued.note("alice", refused, uploads_expire_in_s=3600)
        normal = put_submission(dispatcher.s3, settings.bucket, "bob")
        await issued.note("bob", normal, uploads_expire_in_s=3600)
        await dispatcher.recovery.recover_unseen()
        assert (await jobs.get("bob", normal)) is not None
        assert await jobs.get("alice", refused) is None  # tried again on the next passes
        for _ in range(2):
            await dispatcher.recovery.recover_unseen()
        failed = await jobs.get("alice", refused)
        assert failed is not None and failed.status is JobStatus.FAILED
        assert failed.error is not None and failed.error.startswith(f"{GAVE_UP} after 3 attempts")
        assert await issued.older_than(0) == []  # nothing left to look for
    finally:
        view.cancel()
