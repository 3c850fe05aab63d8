"""The bridge as it runs: real SeaweedFS, real nats-server, `python -m tools.bridge` as a child."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import nats.errors
import pytest
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from leadersboard.models.s3_events import S3EventEnvelope
from leadersboard.s3 import make_client
from leadersboard.settings import NatsSettings, S3Settings, settings_env
from tools.bridge.checkpoint import load_checkpoint
from tools.bridge.settings import BridgeSettings
from tools.bridge.translate import COMPLETE_MULTIPART, PUT
from tools.stack.procs import ManagedProcess
from tools.stack.services import NatsServer, Seaweed

if TYPE_CHECKING:
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef

pytestmark = pytest.mark.timeout(60)

EVENT_TIMEOUT_S = 10.0
QUIET_S = 1.0
PART_BYTES = 5 * 1024 * 1024 + 17  # S3's minimum part size is 5 MiB (except for the last part)

BridgeFactory = Callable[[str], ManagedProcess]


@pytest.fixture
def bridge_settings(
    nats_settings: NatsSettings, s3_settings: S3Settings, seaweed: Seaweed, tmp_path: Path
) -> BridgeSettings:
    return BridgeSettings(
        **nats_settings.model_dump(),
        **s3_settings.model_dump(),
        filer_address=seaweed.filer_address,
        seaweed_security_dir=seaweed.security.directory,
        checkpoint_path=tmp_path / "bridge" / "checkpoint",
        # The bucket is new: a short first replay keeps the start fast.
        initial_lookback_s=300.0,
        restart_backoff_s=0.2,
        log_level="DEBUG",
    )


@pytest.fixture
def start_bridge(bridge_settings: BridgeSettings, tmp_path: Path) -> Iterator[BridgeFactory]:
    started: list[ManagedProcess] = []

    def start(name: str) -> ManagedProcess:
        process = ManagedProcess(
            name,
            [sys.executable, "-m", "tools.bridge"],
            tmp_path / "logs" / f"{name}.log",
            env=settings_env(bridge_settings),
        )
        started.append(process.start())
        return process

    yield start
    for process in started:
        process.stop()


async def _events(sub: JetStreamContext.PushSubscription, count: int) -> list[tuple[S3EventEnvelope, Msg]]:
    """The next `count` events on the subscription, waiting at most EVENT_TIMEOUT_S in all."""
    deadline = time.monotonic() + EVENT_TIMEOUT_S
    received: list[tuple[S3EventEnvelope, Msg]] = []
    while len(received) < count:
        remaining_s = deadline - time.monotonic()
        if remaining_s <= 0:
            break
        try:
            msg = await sub.next_msg(timeout=remaining_s)
        except nats.errors.TimeoutError:
            break
        received.append((S3EventEnvelope.model_validate_json(msg.data), msg))
    assert len(received) == count, f"got {[env.Key for env, _ in received]}, expected {count} events"
    return received


async def _assert_quiet(sub: JetStreamContext.PushSubscription) -> None:
    with pytest.raises(nats.errors.TimeoutError):
        msg = await sub.next_msg(timeout=QUIET_S)
        pytest.fail(f"unexpected event {msg.data[:300]!r}")


async def _stream_messages(js: JetStreamContext, settings: NatsSettings) -> int:
    return int((await js.stream_info(settings.events_stream)).state.messages)


async def test_put_object_becomes_one_minio_event(
    nc: NATS, nats_settings: NatsSettings, s3_settings: S3Settings, start_bridge: BridgeFactory
) -> None:
    js = nc.jetstream()
    sub = await js.subscribe(nats_settings.events_subject, ordered_consumer=True)
    start_bridge("bridge")
    key = "submissions/u/abc/manifest.json"

    make_client(s3_settings).put_object(
        Bucket=s3_settings.bucket, Key=key, Body=b'{"a": 1}', ContentType="application/json"
    )

    [(envelope, msg)] = await _events(sub, 1)
    assert envelope.EventName == PUT
    assert envelope.Key == f"{s3_settings.bucket}/{key}"
    obj = envelope.Records[0].s3.object
    assert obj.key == "submissions%2Fu%2Fabc%2Fmanifest.json"
    assert obj.size == 8
    assert obj.contentType == "application/json"
    assert msg.headers is not None
    assert msg.headers["Nats-Msg-Id"] == f"{envelope.Key}@{int(obj.sequencer, 16)}"
    await _assert_quiet(sub)
    assert await _stream_messages(js, nats_settings) == 1


async def test_multipart_upload_becomes_one_complete_event(
    nc: NATS, nats_settings: NatsSettings, s3_settings: S3Settings, start_bridge: BridgeFactory
) -> None:
    js = nc.jetstream()
    sub = await js.subscribe(nats_settings.events_subject, ordered_consumer=True)
    start_bridge("bridge")
    client, bucket, key = make_client(s3_settings), s3_settings.bucket, "datasets/u/big file.bin"

    created = client.create_multipart_upload(Bucket=bucket, Key=key, Metadata={"purpose": "test"})
    upload_id = created["UploadId"]
    parts: list[CompletedPartTypeDef] = []
    for number in (1, 2):
        response = client.upload_part(
            Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=os.urandom(PART_BYTES)
        )
        parts.append({"ETag": response["ETag"], "PartNumber": number})
    completed = client.complete_multipart_upload(
        Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
    )

    [(envelope, _)] = await _events(sub, 1)
    assert envelope.EventName == COMPLETE_MULTIPART
    assert envelope.Key == f"{bucket}/{key}"
    obj = envelope.Records[0].s3.object
    assert obj.key == "datasets%2Fu%2Fbig+file.bin"
    assert obj.size == 2 * PART_BYTES
    assert obj.eTag == completed["ETag"].strip('"')
    assert obj.eTag.endswith("-2")
    assert obj.userMetadata["X-Amz-Meta-Purpose"] == "test"
    await _assert_quiet(sub)  # nothing for the parts under .uploads/ nor for their deletion
    assert await _stream_messages(js, nats_settings) == 1


async def test_resumes_from_its_checkpoint_after_a_crash(
    nc: NATS,
    nats_settings: NatsSettings,
    s3_settings: S3Settings,
    bridge_settings: BridgeSettings,
    start_bridge: BridgeFactory,
) -> None:
    js = nc.jetstream()
    sub = await js.subscribe(nats_settings.events_subject, ordered_consumer=True)
    client, bucket = make_client(s3_settings), s3_settings.bucket
    first = start_bridge("bridge-1")
    client.put_object(Bucket=bucket, Key="before.txt", Body=b"before")
    [(before, _)] = await _events(sub, 1)
    before_ts_ns = int(before.Records[0].s3.object.sequencer, 16)
    await _wait_for_checkpoint(bridge_settings.checkpoint_path, before_ts_ns)

    first.kill()  # SIGKILL: no chance to save anything more
    keys = [f"while-down/{i}.txt" for i in range(3)]
    for key in keys:
        client.put_object(Bucket=bucket, Key=key, Body=key.encode())
    second = start_bridge("bridge-2")

    resumed = await _events(sub, 3)
    assert [envelope.Key for envelope, _ in resumed] == [f"{bucket}/{key}" for key in keys]
    await _assert_quiet(sub)
    assert await _stream_messages(js, nats_settings) == 4
    # Not even offered to the stream's deduplication: the checkpoint skipped it.
    assert "before.txt" not in second.log_path.read_text()
    assert "while-down/2.txt" in second.log_path.read_text()


async def _wait_for_checkpoint(path: Path, ts_ns: int, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        saved = load_checkpoint(path)
        if saved is not None and saved >= ts_ns:
            return
        await asyncio.sleep(0.05)
    pytest.fail(f"checkpoint {path} never reached {ts_ns} (is {load_checkpoint(path)})")


async def test_event_put_while_nats_is_down_is_published_once_it_is_back(
    nc: NATS,
    nats_server: NatsServer,
    nats_settings: NatsSettings,
    s3_settings: S3Settings,
    start_bridge: BridgeFactory,
) -> None:
    js = nc.jetstream()
    start_bridge("bridge")
    client, bucket = make_client(s3_settings), s3_settings.bucket
    client.put_object(Bucket=bucket, Key="before.txt", Body=b"before")
    await _wait_for_stream_messages(js, nats_settings, 1)

    nats_server.process.stop()
    client.put_object(Bucket=bucket, Key="during.txt", Body=b"during")
    await asyncio.sleep(1.0)  # let the bridge fail a few publishes of it
    # Same port and store: the stream (file storage) and both clients come back.
    nats_server.process.start().wait_ready(10)

    await _wait_for_stream_messages(js, nats_settings, 2)
    sub = await js.subscribe(nats_settings.events_subject, ordered_consumer=True)
    received = await _events(sub, 2)
    assert [envelope.Key for envelope, _ in received] == [f"{bucket}/before.txt", f"{bucket}/during.txt"]
    await _assert_quiet(sub)


async def _wait_for_stream_messages(
    js: JetStreamContext, settings: NatsSettings, count: int, timeout_s: float = EVENT_TIMEOUT_S
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(nats.errors.Error):
            if await _stream_messages(js, settings) >= count:
                return
        await asyncio.sleep(0.1)
    pytest.fail(f"the events stream never reached {count} messages")
