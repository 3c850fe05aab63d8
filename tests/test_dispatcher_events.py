"""The dispatcher's event handler accepts what MinIO publishes: a manifest's created events start a job, other
created events and uploaded files do not (the real MinIO sample, tests/reference.py; no NATS, no store)."""

from __future__ import annotations

import asyncio
import urllib.parse

import pytest

from dispatcher.intake import Intake
from dispatcher.service import CREATED_EVENTS
from dispatcher.settings import DispatcherSettings
from leadersboard import keys
from leadersboard.models.s3_events import S3EventEnvelope
from leadersboard.settings import S3Settings
from tests.reference import MINIO_EVENT_SAMPLE, minio_event


def dispatched(data: bytes, bucket: str) -> list[keys.ManifestKey]:
    """What the dispatcher's real event handler hands on for `data` (nothing else of it runs)."""
    seen: list[keys.ManifestKey] = []
    intake = Intake.__new__(Intake)
    intake.settings = DispatcherSettings(bucket=bucket)

    async def dispatch(where: keys.ManifestKey) -> None:
        seen.append(where)

    intake.dispatch = dispatch  # type: ignore[method-assign]
    asyncio.run(intake.handle_event(data))
    return seen


def test_the_reference_sample_parses_and_is_no_job() -> None:
    data = MINIO_EVENT_SAMPLE.read_bytes()
    envelope = S3EventEnvelope.model_validate_json(data)
    assert envelope.Records[0].eventName == "s3:ObjectCreated:Put"
    assert dispatched(data, envelope.Records[0].s3.bucket.name) == []


@pytest.mark.parametrize("kind", ["Put", "Post", "Copy", "CompleteMultipartUpload"])
def test_dispatcher_accepts_minio_created_events_of_a_manifest(kind: str) -> None:
    bucket = S3Settings().bucket
    submission_id = keys.new_submission_id()
    key = keys.manifest_key("alice", submission_id)
    data = minio_event(bucket, key, f"s3:ObjectCreated:{kind}")
    envelope = S3EventEnvelope.model_validate_json(data)
    record = envelope.Records[0]
    assert record.eventName in CREATED_EVENTS
    assert "%2F" in record.s3.object.key, "MinIO URL-escapes the key in the record"
    where = keys.parse_manifest_key(urllib.parse.unquote_plus(record.s3.object.key))
    assert where == keys.ManifestKey(user="alice", submission_id=submission_id)
    assert envelope.Key == f"{bucket}/{key}"
    assert dispatched(data, bucket) == [where]
    assert dispatched(data, "another-bucket") == []


@pytest.mark.parametrize("kind", ["PutTagging", "PutRetention", "PutLegalHold"])
def test_dispatcher_ignores_created_events_without_new_content(kind: str) -> None:
    bucket = S3Settings().bucket
    data = minio_event(bucket, keys.manifest_key("alice", keys.new_submission_id()), f"s3:ObjectCreated:{kind}")
    envelope = S3EventEnvelope.model_validate_json(data)
    assert envelope.Records[0].eventName not in CREATED_EVENTS
    assert dispatched(data, bucket) == []


def test_dispatcher_ignores_uploaded_files_even_with_escaped_names() -> None:
    bucket = S3Settings().bucket
    submission_id = keys.new_submission_id()
    for path in ["main.py", "data/my dataset.zip", "sub/manifest.json", "ü+%.txt"]:
        key = keys.file_key("alice", submission_id, path)
        data = minio_event(bucket, key)
        record = S3EventEnvelope.model_validate_json(data).Records[0]
        assert urllib.parse.unquote_plus(record.s3.object.key) == key
        assert dispatched(data, bucket) == []
