"""The client's uploads against the real ingest app and SeaweedFS: multipart, retried parts, deduplication.

The ingest app is the real one (tests/api_fixtures.py) with the multipart threshold lowered to 5 MiB (S3's
smallest part); the last test goes through a whole stack to show a job sees a deduplicated dataset.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from ingest.settings import IngestSettings
from leadersboard import keys
from leadersboard.client import ApiError, Client
from leadersboard.client_errors import Unreachable
from leadersboard.models.api import MultipartUpload, PresentFile, PresignedRequest
from leadersboard.models.records import JobStatus
from leadersboard.models.submission import Manifest
from leadersboard.s3 import S3Client, make_client
from leadersboard.settings import NatsSettings, S3Settings
from leadersboard.upload import HashCache, RetryPolicy
from tests.api_fixtures import ADMIN_TOKEN, Api
from tests.stack_fixtures import running_stack, write_submission
from tools.stack.up import Stack

pytestmark = pytest.mark.timeout(300)

MiB = 1024 * 1024
THRESHOLDS: dict[str, Any] = {"multipart_threshold_bytes": 5 * MiB, "multipart_part_bytes": 5 * MiB}


@pytest.fixture
def settings(nats_settings: NatsSettings, s3_settings: S3Settings) -> IngestSettings:
    """The shared fixture's ingest settings, with small multipart thresholds and room for a few MiB."""
    return IngestSettings(
        **nats_settings.model_dump(),
        **s3_settings.model_dump(),
        admin_token=SecretStr(ADMIN_TOKEN),
        max_file_bytes=64 * MiB,
        **THRESHOLDS,
    )


@pytest.fixture
def s3(s3_settings: S3Settings) -> S3Client:
    return make_client(s3_settings)


class Recording(httpx.BaseTransport):
    """The real transport, counting the bytes sent per path; optionally failing the first try of one part."""

    def __init__(self, fail_part: int | None = None) -> None:
        self.inner = httpx.HTTPTransport()
        self.fail_part = fail_part
        self.failed = 0
        self.sent: dict[str, int] = {}
        self._lock = threading.Lock()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        body = request.read()  # the whole body goes out in every case, even on the failing attempt
        with self._lock:
            self.sent[request.url.path] = self.sent.get(request.url.path, 0) + len(body)
            fail = self.fail_part is not None and request.url.params.get("partNumber") == str(self.fail_part)
            fail = fail and not self.failed
            self.failed += fail
        if fail:
            raise httpx.RemoteProtocolError("connection reset (injected by the test)", request=request)
        return self.inner.handle_request(request)


def api_url(api: Api) -> str:
    return str(api.make_url("/")).rstrip("/")


def submission(root: Path, extra: dict[str, bytes]) -> dict[str, Path]:
    write_submission(root, "pass")
    for name, data in extra.items():
        (root / name).write_bytes(data)
    return {p.name: p for p in sorted(root.iterdir())}


def stored_sha256(s3: S3Client, bucket: str, key: str) -> str:
    return hashlib.sha256(s3.get_object(Bucket=bucket, Key=key)["Body"].read()).hexdigest()


async def test_a_large_file_goes_multipart_and_arrives_intact(
    api: Api, alice: str, s3: S3Client, s3_settings: S3Settings, tmp_path: Path
) -> None:
    data = os.urandom(11 * MiB + 12345)
    files = submission(tmp_path / "sub", {"big.bin": data})
    progress: dict[str, int] = {}

    def run() -> Any:
        with Client(api_url(api), alice, workers=4) as client:
            created = client.create_submission(files)
            stats = client.upload(created, files, lambda name, n: progress.update({name: progress.get(name, 0) + n}))
            return created, stats

    created, stats = await asyncio.to_thread(run)
    items = {item.path: item for item in created.uploads}
    big = items["big.bin"]
    assert isinstance(big, MultipartUpload)
    assert [(p.part_number, p.size) for p in big.parts] == [(1, 5 * MiB), (2, 5 * MiB), (3, MiB + 12345)]
    assert big.complete.method == "POST"
    assert isinstance(items["main.py"], PresignedRequest) and items["main.py"].method == "PUT"
    assert stats.multipart == ["big.bin"] and stats.retries == 0
    assert progress["big.bin"] == len(data)
    key = keys.file_key("alice", created.submission_id, "big.bin")
    assert stored_sha256(s3, s3_settings.bucket, key) == hashlib.sha256(data).hexdigest()
    assert s3.head_object(Bucket=s3_settings.bucket, Key=keys.manifest_key("alice", created.submission_id))


async def test_a_failed_part_is_sent_again(
    api: Api, alice: str, s3: S3Client, s3_settings: S3Settings, tmp_path: Path
) -> None:
    data = os.urandom(12 * MiB)
    files = submission(tmp_path / "sub", {"big.bin": data})
    transport = Recording(fail_part=2)
    progress: dict[str, int] = {}

    def run() -> Any:
        retry = RetryPolicy(attempts=3, backoff_s=0.05)
        with Client(api_url(api), alice, store_transport=transport, retry=retry) as client:
            created = client.create_submission(files)
            stats = client.upload(created, files, lambda name, n: progress.update({name: progress.get(name, 0) + n}))
            return created, stats

    created, stats = await asyncio.to_thread(run)
    assert transport.failed == 1
    assert stats.retries == 1
    assert progress["big.bin"] == len(data)  # the failed attempt's bytes were taken back, not counted twice
    assert stats.sent_bytes >= len(data) + 5 * MiB  # part 2 went out twice
    key = keys.file_key("alice", created.submission_id, "big.bin")
    assert stored_sha256(s3, s3_settings.bucket, key) == hashlib.sha256(data).hexdigest()


async def test_a_part_that_keeps_failing_gives_up_with_the_reason(api: Api, alice: str, tmp_path: Path) -> None:
    files = submission(tmp_path / "sub", {"big.bin": os.urandom(6 * MiB)})

    class AlwaysFailing(Recording):
        def handle_request(self, request: httpx.Request) -> httpx.Response:
            if request.url.params.get("partNumber") == "1":
                raise httpx.ConnectError("store unreachable (injected)", request=request)
            return super().handle_request(request)

    def run() -> None:
        retry = RetryPolicy(attempts=2, backoff_s=0.01)
        with Client(api_url(api), alice, store_transport=AlwaysFailing(), retry=retry) as client:
            client.upload(client.create_submission(files), files)

    with pytest.raises(Unreachable) as caught:
        await asyncio.to_thread(run)
    assert str(caught.value).startswith("uploading big.bin to the store failed (2 attempts): no answer from http")
    assert "store unreachable" in str(caught.value)


async def test_a_dataset_already_uploaded_is_not_sent_again(
    api: Api, alice: str, bob: str, s3: S3Client, s3_settings: S3Settings, tmp_path: Path
) -> None:
    dataset = tmp_path / "dataset.zip"
    with zipfile.ZipFile(dataset, "w") as archive:
        archive.writestr("dataset/values.bin", os.urandom(6 * MiB))
    digest = hashlib.sha256(dataset.read_bytes()).hexdigest()
    files = {**submission(tmp_path / "sub", {}), "dataset.zip": dataset}
    cache = HashCache(tmp_path / "cache" / "sha256.json")

    def submit(token: str) -> Any:
        transport = Recording()
        with Client(api_url(api), token, store_transport=transport, hash_cache=cache) as client:
            hashes = client.hashes(files)
            created = client.create_submission(files, sha256=hashes)
            stats = client.upload(created, files)
        return hashes, created, stats, transport

    hashes, first, stats, transport = await asyncio.to_thread(submit, alice)
    assert hashes == {"dataset.zip": digest}  # main.py and config.yaml are too small to be worth it
    blob = keys.blob_key("alice", digest)
    assert blob == f"blobs/alice/sha256/{digest}"
    assert stats.multipart == ["dataset.zip"] and not stats.present
    assert transport.sent[f"/{s3_settings.bucket}/{blob}"] >= dataset.stat().st_size
    assert stored_sha256(s3, s3_settings.bucket, blob) == digest
    manifest = Manifest.model_validate_json(first.manifest.body or "")
    by_path = {spec.path: spec for spec in manifest.files}
    assert by_path["dataset.zip"].blob and by_path["dataset.zip"].sha256 == digest
    assert by_path["dataset.zip"].store_key("alice", first.submission_id) == blob
    assert not by_path["main.py"].blob and "blob" not in by_path["main.py"].model_dump()

    _, second, stats, transport = await asyncio.to_thread(submit, alice)
    assert [item for item in second.uploads if item.path == "dataset.zip"] == [PresentFile(path="dataset.zip")]
    assert stats.present == ["dataset.zip"] and "dataset.zip" not in stats.uploaded
    assert not any(blob in path for path in transport.sent)  # not one byte of the dataset
    small = sum(p.stat().st_size for name, p in files.items() if name != "dataset.zip")
    assert stats.sent_bytes == small

    # Blobs are per user: bob's identical dataset is his own upload.
    _, _, stats, _ = await asyncio.to_thread(submit, bob)
    assert stats.multipart == ["dataset.zip"]
    assert stored_sha256(s3, s3_settings.bucket, keys.blob_key("bob", digest)) == digest


async def test_the_store_refuses_content_that_does_not_match_the_declared_sha256(
    api: Api, alice: str, s3: S3Client, s3_settings: S3Settings, tmp_path: Path
) -> None:
    files = submission(tmp_path / "sub", {"data.zip": b"not what was hashed"})
    wrong = hashlib.sha256(b"something else").hexdigest()

    def run() -> None:
        with Client(api_url(api), alice, retry=RetryPolicy(attempts=1)) as client:
            created = client.create_submission(files, sha256={"data.zip": wrong})
            item = next(i for i in created.uploads if i.path == "data.zip")
            assert isinstance(item, PresignedRequest) and "x-amz-checksum-sha256" in item.headers
            client.upload(created, files)

    with pytest.raises(ApiError) as caught:
        await asyncio.to_thread(run)
    assert caught.value.code == "BadDigest" and "data.zip" in caught.value.message
    listed = s3.list_objects_v2(Bucket=s3_settings.bucket, Prefix="blobs/alice/")
    assert listed.get("KeyCount", 0) == 0


def test_hashes_are_cached_by_path_size_and_mtime(tmp_path: Path) -> None:
    data = tmp_path / "data.zip"
    data.write_bytes(b"a" * 1000)
    cache_file = tmp_path / "cache.json"
    cache = HashCache(cache_file)
    first = cache.sha256(data)
    cache.save()
    assert first == hashlib.sha256(b"a" * 1000).hexdigest() and cache_file.exists()
    # A fresh cache object (a new CLI run) answers from the file when size and mtime are unchanged.
    cache = HashCache(cache_file)
    assert cache.sha256(data) == first
    assert cache._dirty is False
    data.write_bytes(b"b" * 1000)
    os.utime(data, ns=(data.stat().st_atime_ns, data.stat().st_mtime_ns + 1_000_000))
    assert cache.sha256(data) == hashlib.sha256(b"b" * 1000).hexdigest()


# --- through a whole stack: the job sees a deduplicated dataset ---------------------------------------------------

READS_DATASET = """
import hashlib
data = pathlib.Path("dataset.zip").read_bytes()
values = pathlib.Path("dataset/values.bin").read_bytes()  # extracted by the runner
(out / "metrics.json").write_text(json.dumps({"params": {"zip_sha256": hashlib.sha256(data).hexdigest()},
                                              "metrics": {"values_bytes": len(values)}}))
"""


# Not the shared stack (tests/stack_fixtures.py): ingest with small multipart thresholds (THRESHOLDS).
@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, dict[str, Any]]]:
    with running_stack(tmp_path_factory.mktemp("stack"), overrides={"ingest": dict(THRESHOLDS)}) as started:
        yield started


def test_a_job_sees_the_deduplicated_dataset(stack: tuple[Stack, dict[str, Any]], tmp_path: Path) -> None:
    the_stack, info = stack
    root = write_submission(tmp_path / "sub", READS_DATASET)
    with zipfile.ZipFile(root / "dataset.zip", "w") as archive:  # stored: a 6 MiB zip, so a multipart blob
        archive.writestr("dataset/values.bin", os.urandom(6 * MiB))
    digest = hashlib.sha256((root / "dataset.zip").read_bytes()).hexdigest()
    records = []
    with Client(info["urls"]["ingest"], info["demo_token"], hash_cache=HashCache(tmp_path / "c.json")) as demo:
        for expected in ("multipart", "present"):
            transport = Recording()
            with Client(info["urls"]["ingest"], info["demo_token"], store_transport=transport,
                        hash_cache=demo.hash_cache) as client:  # fmt: skip
                files = {p.name: p for p in root.iterdir()}
                created = client.create_submission(files, sha256=client.hashes(files))
                stats = client.upload(created, files)
            assert (stats.multipart if expected == "multipart" else stats.present) == ["dataset.zip"]
            records.append(demo.wait(created.submission_id, timeout_s=120))
    assert not any("blobs/" in path for path in transport.sent)  # the second time: no dataset bytes
    for record in records:
        assert record.status is JobStatus.COMPLETED, record.error
        assert record.params["zip_sha256"] == digest
        assert record.metrics["values_bytes"] == 6 * MiB
        assert next(f for f in record.files if f.path == "dataset.zip").blob
    s3 = make_client(the_stack.s3)
    assert stored_sha256(s3, the_stack.s3.bucket, keys.blob_key("demo", digest)) == digest
    listed = s3.list_objects_v2(Bucket=the_stack.s3.bucket, Prefix="submissions/demo/")
    assert not [o["Key"] for o in listed.get("Contents", []) if o["Key"].endswith("dataset.zip")]
