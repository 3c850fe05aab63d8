"""The kernel's KV mirror (leadersboard/kv_mirror.py) on a real nats-server: the whole bucket handed over at once,
then each change and removal; loaded again after the server restarts; a failed load retried; its watch stopped
with it, and its consumer deleted on each reload. The job view and the leaderboard index built on it are tested
by their users' tests (tests/test_board_keeper.py, tests/test_leaderboard_api.py)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import pytest
from nats.aio.client import Client as NATS
from nats.js.kv import KeyValue

from dispatcher.view import JobView
from leadersboard import nats_io
from leadersboard.keys import kv_submission_key
from leadersboard.kv_mirror import KvMirror
from leadersboard.settings import NatsSettings
from tests.nats_user_fixtures import job_record
from tools.stack.services import NatsServer

WAIT_S = 30.0
BUCKET = "mirror_test"
LEFT_OUT = "left out"
"""A value the owner's decode leaves out (as ingest's index does with a value that is no board entry)."""


@dataclass
class Owner:
    """What the mirror told its owner: each whole load, then each change since."""

    loads: list[dict[str, str]] = field(default_factory=list)
    changes: list[tuple[str, str | None]] = field(default_factory=list)
    decode: Callable[[str, bytes], str | None] = lambda key, value: _text(value)

    def mirror(self, **retry: float) -> KvMirror[str]:
        return KvMirror[str](
            "test mirror",
            "m.>",
            decode=lambda key, value: self.decode(key, value),
            loaded=lambda values: self.loads.append(dict(values)),
            changed=lambda key, value: self.changes.append((key, value)),
            **retry,
        )


def _text(value: bytes) -> str | None:
    text = value.decode()
    return None if text == LEFT_OUT else text


@pytest.fixture
async def kv(nc: NATS) -> KeyValue:
    return await nats_io.kv_bucket(nc.jetstream(), BUCKET)


async def until(condition: Callable[[], bool], what: str) -> None:
    deadline = asyncio.get_running_loop().time() + WAIT_S
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, f"waited {WAIT_S} s for {what}"
        await asyncio.sleep(0.02)


def watching() -> list[asyncio.Task[object]]:
    """Tasks still waiting on a watch: none once a mirror has stopped."""
    return [task for task in asyncio.all_tasks() if getattr(task.get_coro(), "__name__", "") == "next_update"]


async def test_the_bucket_arrives_whole_then_each_change_and_removal(kv: KeyValue) -> None:
    for key, value in [("m.a", "1"), ("m.b", "2"), ("m.c", "3"), ("m.d", LEFT_OUT), ("other.x", "9")]:
        await kv.put(key, value.encode())
    await kv.delete("m.c")
    owner = Owner()
    mirror = owner.mirror()
    async with mirror.running(kv):
        await asyncio.wait_for(mirror.ready.wait(), WAIT_S)
        assert owner.loads == [{"m.a": "1", "m.b": "2"}] and owner.changes == []

        await kv.put("m.e", b"5")
        await kv.put("m.a", b"1b")
        await kv.delete("m.a")
        await kv.purge("m.b")
        await kv.put("m.e", LEFT_OUT.encode())
        await kv.put("other.y", b"outside the pattern")
        await kv.put("m.z", b"last")
        await until(lambda: ("m.z", "last") in owner.changes, "the last change")
    assert owner.changes == [
        ("m.e", "5"),
        ("m.a", "1b"),
        ("m.a", None),
        ("m.b", None),
        ("m.e", None),
        ("m.z", "last"),
    ]
    assert owner.loads == [{"m.a": "1", "m.b": "2"}]
    assert watching() == []


async def test_an_empty_bucket_is_loaded_empty_then_followed(kv: KeyValue) -> None:
    owner = Owner()
    mirror = owner.mirror()
    async with mirror.running(kv):
        await asyncio.wait_for(mirror.ready.wait(), WAIT_S)
        await kv.put("m.a", b"1")
        await until(lambda: owner.changes != [], "the first change")
    assert owner.loads == [{}] and owner.changes == [("m.a", "1")]


async def test_an_end_marker_before_the_first_value_is_not_believed(
    kv: KeyValue, monkeypatch: pytest.MonkeyPatch
) -> None:
    """nats-py may mark the end of the current values before the first one (here 1 to 3 loads in 100, of 50 to
    1,000 keys): simulated by one more marker in front of each watch's."""
    for index in range(20):
        await kv.put(f"m.{index}", str(index).encode())
    real = nats_io.next_update
    marked: set[int] = set()

    async def marked_early(watcher: KeyValue.KeyWatcher) -> KeyValue.Entry | None:
        if id(watcher) not in marked:
            marked.add(id(watcher))
            return None
        return await real(watcher)

    monkeypatch.setattr(nats_io, "next_update", marked_early)
    owner = Owner()
    mirror = owner.mirror()
    async with mirror.running(kv):
        await asyncio.wait_for(mirror.ready.wait(), WAIT_S)
    assert marked and owner.loads == [{f"m.{index}": str(index) for index in range(20)}] and owner.changes == []


async def test_a_failed_load_is_logged_and_loaded_again(kv: KeyValue, caplog: pytest.LogCaptureFixture) -> None:
    await kv.put("m.a", b"1")
    await kv.put("m.b", b"2")
    owner = Owner()
    refused: list[str] = []

    def refuse_once(key: str, value: bytes) -> str | None:
        if key == "m.b" and not refused:
            refused.append(key)
            raise ValueError("not now")
        return _text(value)

    owner.decode = refuse_once
    mirror = owner.mirror(retry_delay_s=0.05)
    with caplog.at_level(logging.WARNING, logger="leadersboard.kv_mirror"):
        async with mirror.running(kv):
            await asyncio.wait_for(mirror.ready.wait(), WAIT_S)
    assert refused == ["m.b"] and owner.loads == [{"m.a": "1", "m.b": "2"}]
    assert "test mirror: the watch of m.> failed (ValueError('not now'))" in caplog.text


async def test_a_restarted_server_is_loaded_again_and_followed(
    kv: KeyValue, nats_server: NatsServer, nats_settings: NatsSettings
) -> None:
    """The owner's connection asks for a reload when it reconnects, as the services' connections do."""
    owner = Owner()
    mirror = owner.mirror(retry_delay_s=0.2)

    async def reload() -> None:
        mirror.resync.set()

    async with own_connection(nats_settings, reload) as connection:
        await kv.put("m.a", b"1")
        mirror_kv = await connection.jetstream().key_value(BUCKET)
        async with mirror.running(mirror_kv):
            await asyncio.wait_for(mirror.ready.wait(), WAIT_S)
            # Same port and store: the bucket (file storage) and both connections come back.
            nats_server.process.stop()
            nats_server.process.start().wait_ready(30)
            await until(lambda: len(owner.loads) == 2, "a second load")
            await kv.put("m.b", b"2")
            await until(lambda: owner.changes != [], "a change after the restart")
    assert owner.loads == [{"m.a": "1"}, {"m.a": "1"}] and owner.changes == [("m.b", "2")]


async def test_a_mirror_stops_once_its_connection_is_closed(
    kv: KeyValue, nats_settings: NatsSettings, caplog: pytest.LogCaptureFixture
) -> None:
    """A service shutting down may close its connection first: stopping the mirror must not wait on it."""
    owner = Owner()
    mirror = owner.mirror()

    async def follow_then_close() -> None:
        connection = await nats_io.connect(nats_settings, name="mirror")
        async with mirror.running(await connection.jetstream().key_value(BUCKET)):
            await asyncio.wait_for(mirror.ready.wait(), WAIT_S)
            await connection.close()

    with caplog.at_level(logging.WARNING, logger="leadersboard.kv_mirror"):
        await asyncio.wait_for(follow_then_close(), WAIT_S)
    assert owner.loads == [{}] and watching() == []
    assert "failed" not in caplog.text  # stopped, not reloading


async def test_a_reload_and_a_stop_delete_the_watch_s_consumer(kv: KeyValue, nc: NATS) -> None:
    """Each watch is an ordered consumer of the bucket's stream, which nats-py leaves to the server for minutes
    once it has stopped watching: one reload after another would pile them up."""
    owner = Owner()
    mirror = owner.mirror()
    async with mirror.running(kv):
        await asyncio.wait_for(mirror.ready.wait(), WAIT_S)
        for loads in (2, 3):
            mirror.resync.set()
            await until(lambda: len(owner.loads) >= loads, f"load {loads}")  # noqa: B023  (awaited at once)
        assert await consumer_count(nc) == 1
    assert await consumer_count(nc) == 0 and owner.loads == [{}, {}, {}]


async def consumer_count(nc: NATS) -> int:
    info = await nc.jetstream().stream_info(f"KV_{BUCKET}")
    return info.state.consumer_count


@contextlib.asynccontextmanager
async def own_connection(settings: NatsSettings, on_reconnect: Callable[[], Awaitable[None]]) -> AsyncIterator[NATS]:
    connection = await nats_io.connect(settings, name="mirror", on_reconnect=on_reconnect)
    try:
        yield connection
    finally:
        await connection.drain()


async def test_the_job_view_leaves_out_a_value_that_is_no_record_and_follows_the_rest(
    nc: NATS, caplog: pytest.LogCaptureFixture
) -> None:
    """One bad value in the jobs bucket is logged and left out; it does not stop the view following the others
    (raising would reload the whole bucket on it forever)."""
    jobs = await nats_io.kv_bucket(nc.jetstream(), "mirror_jobs")
    first, later = job_record("alice", "01a"), job_record("alice", "01b")
    await jobs.put(kv_submission_key("alice", first.submission_id), first.model_dump_json().encode())
    await jobs.put(kv_submission_key("alice", "01bad"), b'{"not": "a record"}')
    view = JobView()
    task = asyncio.create_task(view.follow(jobs))
    try:
        await asyncio.wait_for(view.ready.wait(), WAIT_S)
        assert set(view.records) == {first.submission_id}
        await jobs.put(kv_submission_key("alice", later.submission_id), later.model_dump_json().encode())
        await until(lambda: later.submission_id in view.records, "the record written after the bad one")
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert any("01bad" in r.getMessage() and "not a job record" in r.getMessage() for r in caplog.records)
