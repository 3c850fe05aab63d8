"""The dispatcher against real NATS and SeaweedFS: validation reasons, idempotency, event filtering."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from pydantic import SecretStr

from dispatcher.recovery import UPLOAD_GRACE_S
from dispatcher.service import Dispatcher
from dispatcher.settings import DispatcherSettings
from leadersboard import keys
from leadersboard.models.base import utcnow
from leadersboard.models.queue import JobMessage
from leadersboard.models.records import JobStatus, QuotaOverride
from leadersboard.models.submission import FileSpec, Manifest
from leadersboard.s3 import S3Client
from leadersboard.settings import NatsSettings, S3Settings
from leadersboard.signing import sign_manifest
from tests.reference import minio_event


async def make_dispatcher(settings: DispatcherSettings, js: JetStreamContext) -> Dispatcher:
    buckets = (settings.jobs_kv_bucket, settings.quotas_kv_bucket, settings.issued_kv_bucket, settings.tokens_kv_bucket)
    return Dispatcher(settings, js, *[await js.key_value(bucket) for bucket in buckets])


@pytest.fixture
async def dispatcher(nc: NATS, nats_settings: NatsSettings, s3_settings: S3Settings) -> AsyncIterator[Dispatcher]:
    settings = DispatcherSettings(**nats_settings.model_dump(), **s3_settings.model_dump(), recover_after_s=0)
    js = nc.jetstream()
    dispatcher = await make_dispatcher(settings, js)
    view = await dispatcher.start_view()
    yield dispatcher
    view.cancel()


def upload(s3: S3Client, bucket: str, user: str, files: dict[str, bytes], *, declared: dict[str, int] | None = None,
           entrypoint: str = "main.py", manifest_user: str | None = None) -> str:  # fmt: skip
    sid = keys.new_submission_id()
    for path, data in files.items():
        s3.put_object(Bucket=bucket, Key=keys.file_key(user, sid, path), Body=data)
    sizes = {path: len(data) for path, data in files.items()} | (declared or {})
    manifest = Manifest(
        submission_id=sid,
        user=manifest_user or user,
        entrypoint=entrypoint,
        config="config.yaml",
        files=[FileSpec(path=p, size=n) for p, n in sizes.items()],
        created_at=utcnow(),
    )
    s3.put_object(Bucket=bucket, Key=keys.manifest_key(user, sid), Body=manifest.model_dump_json().encode())
    return sid


GOOD = {"main.py": b"print('hi')\n", "config.yaml": b"a: 1\n"}


async def queued_jobs(nc: NATS, settings: NatsSettings) -> list[JobMessage]:
    info = await nc.jetstream().stream_info(settings.jobs_stream)
    sub = await nc.jetstream().pull_subscribe(settings.jobs_subject, durable="probe", stream=settings.jobs_stream)
    messages = await sub.fetch(info.state.messages, timeout=2) if info.state.messages else []
    return [JobMessage.model_validate_json(m.data) for m in messages]


async def test_valid_submission_is_recorded_pending_and_queued_once(
    dispatcher: Dispatcher, nc: NATS, nats_settings: NatsSettings
) -> None:
    bucket = dispatcher.settings.bucket
    sid = upload(dispatcher.s3, bucket, "alice", GOOD, entrypoint="main.py")
    event = minio_event(bucket, keys.manifest_key("alice", sid))
    for _ in range(3):  # redelivery and bridge replays
        await dispatcher.handle_event(event)
        await dispatcher.releaser.release_due()
    record = await dispatcher.jobs.get("alice", sid)
    assert record is not None and record.status is JobStatus.PENDING
    assert record.queued_at is not None
    assert [j.submission_id for j in await queued_jobs(nc, nats_settings)] == [sid]


@pytest.mark.parametrize(
    ("files", "kwargs", "reason"),
    [
        (
            {"main.py": GOOD["main.py"]},
            {"declared": {"config.yaml": 5}},
            "upload incomplete: config.yaml was never uploaded",
        ),
        (GOOD, {"declared": {"main.py": 999}}, "main.py is 12 bytes in the store but 999 were declared"),
        (GOOD, {"entrypoint": "train.py"}, "the entrypoint 'train.py' is not among the uploaded files"),
        ({**GOOD, "run.sh": b"x"}, {"entrypoint": "run.sh"}, "not a Python file"),
        (GOOD, {"manifest_user": "bob"}, "but was uploaded under submissions/alice/"),
    ],
)
async def test_invalid_submission_fails_with_precise_reason(
    dispatcher: Dispatcher, nc: NATS, nats_settings: NatsSettings, files: dict[str, bytes], kwargs: dict, reason: str
) -> None:
    bucket = dispatcher.settings.bucket
    sid = upload(dispatcher.s3, bucket, "alice", files, **kwargs)
    await dispatcher.handle_event(minio_event(bucket, keys.manifest_key("alice", sid)))
    await dispatcher.releaser.release_due()
    record = await dispatcher.jobs.get("alice", sid)
    assert record is not None and record.status is JobStatus.FAILED
    assert record.error is not None and reason in record.error
    assert await queued_jobs(nc, nats_settings) == []


async def test_manifest_that_is_not_json_fails_the_job(dispatcher: Dispatcher) -> None:
    bucket = dispatcher.settings.bucket
    sid = keys.new_submission_id()
    dispatcher.s3.put_object(Bucket=bucket, Key=keys.manifest_key("alice", sid), Body=b"{not json")
    await dispatcher.handle_event(minio_event(bucket, keys.manifest_key("alice", sid)))
    record = await dispatcher.jobs.get("alice", sid)
    assert record is not None and record.status is JobStatus.FAILED
    assert record.error is not None and record.error.startswith("manifest.json is not valid")


@pytest.mark.parametrize(
    "event",
    [
        b"not json at all",
        b'{"EventName": "s3:ObjectCreated:Put"}',
        minio_event("leadersboard", "submissions/alice/0123456789abcdef/files/main.py"),
        minio_event("leadersboard", "results/alice/0123456789abcdef/metrics.json"),
    ],
)
async def test_other_events_are_ignored_without_error(dispatcher: Dispatcher, event: bytes) -> None:
    await dispatcher.handle_event(event)
    assert await dispatcher.jobs.list_records() == []


async def test_tagging_and_retention_events_start_nothing(dispatcher: Dispatcher) -> None:
    bucket = dispatcher.settings.bucket
    sid = upload(dispatcher.s3, bucket, "alice", GOOD)
    for name in ("s3:ObjectCreated:PutTagging", "s3:ObjectCreated:PutRetention", "s3:ObjectCreated:PutLegalHold"):
        await dispatcher.handle_event(minio_event(bucket, keys.manifest_key("alice", sid), name))
    assert await dispatcher.jobs.get("alice", sid) is None
    await dispatcher.handle_event(
        minio_event(bucket, keys.manifest_key("alice", sid), "s3:ObjectCreated:CompleteMultipartUpload")
    )
    assert await dispatcher.jobs.get("alice", sid) is not None


async def test_a_manifest_edited_behind_the_presigned_url_is_refused(
    nc: NATS, nats_settings: NatsSettings, s3_settings: S3Settings
) -> None:
    secret = SecretStr("test-signing-secret")
    settings = DispatcherSettings(**nats_settings.model_dump(), **s3_settings.model_dump(), manifest_secret=secret)
    js = nc.jetstream()
    dispatcher = await make_dispatcher(settings, js)
    view = await dispatcher.start_view()
    s3, bucket = dispatcher.s3, settings.bucket
    try:
        for edit, expected in ((None, JobStatus.PENDING), ("main2.py", JobStatus.FAILED)):
            sid = keys.new_submission_id()
            files = {**GOOD, "main2.py": b"print('other')\n"}
            for path, data in files.items():
                s3.put_object(Bucket=bucket, Key=keys.file_key("alice", sid, path), Body=data)
            signed = sign_manifest(
                Manifest(submission_id=sid, user="alice", entrypoint="main.py", config="config.yaml",
                         files=[FileSpec(path=p, size=len(d)) for p, d in files.items()], created_at=utcnow()),
                secret,
            )  # fmt: skip
            stored = signed if edit is None else signed.model_copy(update={"entrypoint": edit})
            s3.put_object(Bucket=bucket, Key=keys.manifest_key("alice", sid), Body=stored.model_dump_json().encode())
            await dispatcher.handle_event(minio_event(bucket, keys.manifest_key("alice", sid)))
            record = await dispatcher.jobs.get("alice", sid)
            assert record is not None and record.status is expected
        assert record.error == "manifest.json was modified after ingest issued it; submit again"
    finally:
        view.cancel()


async def test_the_dispatcher_enforces_the_hourly_limit_itself(dispatcher: Dispatcher) -> None:
    await dispatcher.quotas.set_override("alice", QuotaOverride(per_hour=2))
    bucket = dispatcher.settings.bucket
    statuses = []
    for _ in range(3):  # e.g. manifests replayed through still-valid presigned URLs
        sid = upload(dispatcher.s3, bucket, "alice", GOOD)
        await dispatcher.handle_event(minio_event(bucket, keys.manifest_key("alice", sid)))
        record = await dispatcher.jobs.get("alice", sid)
        assert record is not None
        statuses.append(record.status)
    assert statuses == [JobStatus.PENDING, JobStatus.PENDING, JobStatus.FAILED]
    assert record.error is not None and record.error.startswith("rate limit: more than 2 submissions in the hour")


async def test_an_upload_whose_event_was_lost_is_found_in_the_store(
    dispatcher: Dispatcher, nc: NATS, nats_settings: NatsSettings
) -> None:
    issued = dispatcher.recovery.issued
    bucket = dispatcher.settings.bucket
    uploaded = upload(dispatcher.s3, bucket, "alice", GOOD)  # and no event: lost on the way
    still_uploading = keys.new_submission_id()
    for sid in (uploaded, still_uploading):
        await issued.note("alice", sid, uploads_expire_in_s=3600)

    assert await dispatcher.recovery.recover_unseen() == 1
    record = await dispatcher.jobs.get("alice", uploaded)
    assert record is not None and record.status is JobStatus.PENDING
    assert [n.submission_id for n in await issued.older_than(0)] == [still_uploading]
    # The late event, if it ever comes, and a second pass change nothing.
    await dispatcher.handle_event(minio_event(bucket, keys.manifest_key("alice", uploaded)))
    assert await dispatcher.recovery.recover_unseen() == 0
    await dispatcher.releaser.release_due()
    assert [j.submission_id for j in await queued_jobs(nc, nats_settings)] == [uploaded]


async def test_a_submission_announced_by_its_event_is_not_looked_for(dispatcher: Dispatcher) -> None:
    bucket = dispatcher.settings.bucket
    sid = upload(dispatcher.s3, bucket, "alice", GOOD)
    await dispatcher.recovery.issued.note("alice", sid, uploads_expire_in_s=3600)
    await dispatcher.handle_event(minio_event(bucket, keys.manifest_key("alice", sid)))
    assert await dispatcher.recovery.recover_unseen() == 0
    assert await dispatcher.recovery.issued.older_than(0) == []


async def test_a_submission_never_uploaded_is_forgotten_once_its_urls_expired(dispatcher: Dispatcher) -> None:
    issued = dispatcher.recovery.issued
    expired, uploading = keys.new_submission_id(), keys.new_submission_id()
    await issued.note("alice", expired, uploads_expire_in_s=-UPLOAD_GRACE_S - 1)
    await issued.note("alice", uploading, uploads_expire_in_s=3600)
    assert await dispatcher.recovery.recover_unseen() == 0
    assert [n.submission_id for n in await issued.older_than(0)] == [uploading]
    assert await dispatcher.jobs.get("alice", expired) is None
