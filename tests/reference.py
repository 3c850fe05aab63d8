"""The shared reference files the tests check the platform against, kept in tests/fixtures so that a clean
clone carries them; `test_the_reference_copies_are_current` compares them with ../shared when it is there."""

from __future__ import annotations

import json
import urllib.parse
from pathlib import Path

__all__ = ["MINIO_EVENT_SAMPLE", "SHARED_REFERENCE", "USER_GUIDE", "minio_event"]

FIXTURES = Path(__file__).resolve().parent / "fixtures"
MINIO_EVENT_SAMPLE = FIXTURES / "minio-nats-event.sample.json"
"""A real MinIO NATS bucket event, as ../shared/reference/minio-nats-event.sample.json holds it."""
SHARED_REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference"
USER_GUIDE = SHARED_REFERENCE / "user-guide.ja.md"
"""The user guide, beside the checkout on the development machine (tests needing it skip without it)."""


def minio_event(bucket: str, key: str, event_name: str = "s3:ObjectCreated:Put") -> bytes:
    """The real MinIO sample with another event, bucket and object key, built the way MinIO builds it."""
    envelope = json.loads(MINIO_EVENT_SAMPLE.read_text())
    record = envelope["Records"][0]
    record["eventName"] = event_name
    record["eventTime"] = "2026-11-26T10:11:12.345Z"
    record["s3"]["bucket"]["name"] = bucket
    record["s3"]["bucket"]["arn"] = f"arn:aws:s3:::{bucket}"
    record["s3"]["object"]["key"] = urllib.parse.quote_plus(key, safe="")  # Go's url.QueryEscape
    envelope["EventName"] = event_name
    envelope["Key"] = f"{bucket}/{key}"
    return json.dumps(envelope).encode()
