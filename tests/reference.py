"""The shared reference files the tests check the platform against, kept in tests/fixtures so that a clean
clone carries them; `test_the_reference_copies_are_current` compares them with ../shared when it is there."""

from __future__ import annotations

from pathlib import Path

__all__ = ["MINIO_EVENT_SAMPLE", "SHARED_REFERENCE", "USER_GUIDE"]

FIXTURES = Path(__file__).resolve().parent / "fixtures"
MINIO_EVENT_SAMPLE = FIXTURES / "minio-nats-event.sample.json"
"""A real MinIO NATS bucket event, as ../shared/reference/minio-nats-event.sample.json holds it."""
SHARED_REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference"
USER_GUIDE = SHARED_REFERENCE / "user-guide.ja.md"
"""The user guide, beside the checkout on the development machine (tests needing it skip without it)."""
