"""The leaderboard view kept by the dispatcher (dispatcher/board.py) on a real nats-server: fed by the job view,
it holds `BoardEntry.of(record)` of every completed job, follows rescores and removals, reconciles when it starts
again, rebuilds a view that was lost and answers an admin's rebuild request with `meta.built`."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta

import pytest
from nats.aio.client import Client as NATS
from nats.js.kv import KeyValue
from pydantic import ValidationError

from dispatcher.board import ENTRIES, BoardKeeper
from dispatcher.view import JobView
from leadersboard import keys, nats_io
from leadersboard.jobs import JobStore
from leadersboard.models.base import utcnow
from leadersboard.models.board import BoardBuilt, BoardEntry, BoardRebuild
from leadersboard.models.records import JobRecord, JobStatus
from leadersboard.models.scores import Interval, MetricSet, Scores
from leadersboard.nats_permissions import DISPATCHER
from leadersboard.settings import NatsSettings
from tools.stack.services import NatsServer

WAIT_S = 30.0
START = utcnow()


def scores(value: float) -> Scores:
    metrics = MetricSet(
        image_AUROC=Interval(value=value, ci_low=value - 0.05, ci_high=min(value + 0.05, 1.0)),
        image_F1Max=Interval(value=0.5, ci_low=0.4, ci_high=0.6),
    )
    return Scores(**dict(metrics), per_category={"bottle": metrics}, scorer_version="1", resamples=200, seed=13)


def record(sid: str, user: str = "alice", *, status: JobStatus = JobStatus.COMPLETED, value: float | None = None,
           minutes: int = 0) -> JobRecord:  # fmt: skip
    """A job: on benchmark `demo`, scored `value`, when `value` is given; else a self-reported one."""
    benchmark = {} if value is None else {"benchmark": "demo", "benchmark_version": 1, "scores": scores(value)}
    return JobRecord(
        submission_id=sid, user=user, entrypoint="main.py", config="config.yaml",
        created_at=START + timedelta(minutes=minutes), status=status, dataset="mvtec",
        metrics={} if value is not None else {"image_AUROC": 0.9}, metadata={"method": f"m-{sid}"}, **benchmark,
    )  # fmt: skip


@dataclass
class Board:
    """The jobs bucket, the board bucket, and a keeper (with its job view) that can be stopped and started."""

    jobs: JobStore
    kv: KeyValue
    dispatcher: NATS
    """Connected as the dispatcher's NATS user: the keeper needs no right beyond the dispatcher's."""
    settings: NatsSettings
    tasks: list[asyncio.Task[None]]

    async def start(self) -> None:
        """A dispatcher's job view and keeper, as dispatcher/service.py wires them."""
        js = self.dispatcher.jetstream()
        view = JobView()
        kv = await js.key_value(self.settings.board_kv_bucket)
        keeper = BoardKeeper(kv, view, writes_in_flight=4, retry_delay_s=0.1)
        jobs_kv = await js.key_value(self.settings.jobs_kv_bucket)
        self.tasks = [asyncio.create_task(view.follow(jobs_kv)), asyncio.create_task(keeper.run())]

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)

    async def entries(self) -> dict[str, BoardEntry | bytes]:
        """The view's entries (an unreadable one as its bytes)."""
        values = await nats_io.kv_values(self.kv, ENTRIES)
        return {key: _entry(value) for key, value in values.items()}

    async def built(self) -> BoardBuilt | None:
        found = await nats_io.kv_read(self.kv, keys.BOARD_BUILT_KEY)
        return None if found is None else BoardBuilt.model_validate_json(found[0])

    async def shows(self, *records: JobRecord) -> dict[str, BoardEntry | bytes]:
        """Wait until the view holds exactly the entries of `records`, and return it."""
        expected = {keys.kv_board_key(r.user, r.submission_id): BoardEntry.of(r) for r in records}
        await until(lambda: self._equal(expected), f"the view to hold {sorted(expected)}")
        return await self.entries()

    async def _equal(self, expected: dict[str, BoardEntry | None]) -> bool:
        return await self.entries() == expected


def _entry(value: bytes) -> BoardEntry | bytes:
    try:
        return BoardEntry.model_validate_json(value)
    except ValidationError:
        return value


async def until(condition: Callable[[], Awaitable[bool]], what: str) -> None:
    deadline = asyncio.get_running_loop().time() + WAIT_S
    while not await condition():
        assert asyncio.get_running_loop().time() < deadline, f"waited {WAIT_S} s for {what}"
        await asyncio.sleep(0.05)


@pytest.fixture
async def board(nc: NATS, nats_server: NatsServer) -> AsyncIterator[Board]:
    """The admin's connection (`nc`) plays ingest, the runners and the scorer; the keeper runs as the dispatcher."""
    settings = nats_server.settings(DISPATCHER)
    dispatcher = await nats_io.connect(settings, name="dispatcher")
    js = nc.jetstream()
    jobs = JobStore(await js.key_value(settings.jobs_kv_bucket))
    found = Board(jobs, await js.key_value(settings.board_kv_bucket), dispatcher, settings, [])
    yield found
    await found.stop()
    await dispatcher.drain()


async def put(jobs: JobStore, updated: JobRecord) -> None:
    assert await jobs.update(updated.user, updated.submission_id, lambda _: updated) is not None


async def test_completed_jobs_enter_the_view_follow_a_rescore_and_leave_it(board: Board) -> None:
    scored, reported = record("a1", value=0.9), record("b1", "bob")
    for job in (scored, reported, record("c1", "carol", status=JobStatus.RUNNING)):
        assert await board.jobs.create(job)
    await board.start()
    # A new view: built from the records at once, and said so.
    entries = await board.shows(scored, reported)
    built = await board.built()
    assert built is not None and (built.request_id, built.entries) == (None, 2)
    first = entries[keys.kv_board_key("alice", "a1")]
    assert isinstance(first, BoardEntry) and first.method == "m-a1"

    waiting = record("d1", "dan", status=JobStatus.RUNNING, value=0.7)  # a run ended, waiting for its scores
    assert await board.jobs.create(waiting)
    await put(board.jobs, finished := waiting.model_copy(update={"status": JobStatus.COMPLETED}))
    rescored = scored.model_copy(update={"scores": scores(0.6)})
    await put(board.jobs, rescored)
    entries = await board.shows(rescored, reported, finished)
    first = entries[keys.kv_board_key("alice", "a1")]
    assert isinstance(first, BoardEntry) and first.scores == scores(0.6)

    await board.jobs.remove("bob", "b1")  # a deleted job
    await put(board.jobs, finished.model_copy(update={"status": JobStatus.FAILED}))  # no longer on a board
    await board.shows(rescored)
    assert await board.built() == built, "changes are written one by one, not by rebuilding"


async def test_a_keeper_started_again_reconciles_the_view_with_the_records(board: Board) -> None:
    kept, changed, removed = record("a1", value=0.9), record("b1", "bob", value=0.8), record("c1", "carol")
    for job in (kept, changed, removed):
        assert await board.jobs.create(job)
    await board.start()
    await board.shows(kept, changed, removed)
    built = await board.built()
    await board.stop()

    # While no keeper runs: a job is rescored, one deleted, one completed; the view gets a stray and a damaged key.
    await put(board.jobs, changed := changed.model_copy(update={"scores": scores(0.5)}))
    await board.jobs.remove("carol", "c1")
    new = record("d1", "dan", value=0.95, minutes=1)
    assert await board.jobs.create(new)
    stray = BoardEntry.of(record("e1", "eve"))
    assert stray is not None
    await board.kv.put(keys.kv_board_key("eve", "e1"), stray.model_dump_json().encode())
    await board.kv.put(keys.kv_board_key("alice", "a1"), b"{}")

    await board.start()
    await board.shows(kept, changed, new)
    assert await board.built() == built, "a view that was built is reconciled, not rebuilt"


async def test_a_lost_view_is_rebuilt_and_a_requested_rebuild_is_answered(board: Board) -> None:
    jobs = [record(f"s{i:02d}", f"user{i % 3}", value=i / 20, minutes=i) for i in range(12)]
    for job in jobs:
        assert await board.jobs.create(job)
    await board.start()
    await board.shows(*jobs)
    first = await board.built()
    await board.stop()

    # The whole bucket lost while the dispatcher was down (its meta.built too): rebuilt when it starts.
    for key in await nats_io.kv_keys(board.kv):
        await board.kv.purge(key)
    await board.start()
    await board.shows(*jobs)
    again = await board.built()
    assert first is not None and again is not None and again.built_at > first.built_at

    # Entries purged under a running keeper, then an admin's request: the rebuild restores them, and answers.
    for key in await nats_io.kv_keys(board.kv, ENTRIES):
        await board.kv.purge(key)
    request = BoardRebuild(request_id="r1", requested_at=utcnow(), requested_by="admin")
    await board.kv.put(keys.BOARD_REBUILD_KEY, request.model_dump_json().encode())
    await until(lambda: answered(board, "r1"), "meta.built to answer r1")
    await board.shows(*jobs)
    built = await board.built()
    assert built is not None and (built.entries, built.took_s >= 0) == (12, True)

    # Asked again with the same request: nothing to answer; a new request is answered.
    await board.stop()
    await board.start()
    await board.shows(*jobs)
    assert await board.built() == built
    request = BoardRebuild(request_id="r2", requested_at=utcnow(), requested_by="admin")
    await board.kv.put(keys.BOARD_REBUILD_KEY, request.model_dump_json().encode())
    await until(lambda: answered(board, "r2"), "meta.built to answer r2")


async def test_a_request_put_while_the_keeper_was_down_is_its_first_step(
    board: Board, caplog: pytest.LogCaptureFixture
) -> None:
    """The requests are loaded before the first step: it is the rebuild, once, with no reconciliation before it."""
    jobs = [record("a1", value=0.9), record("b1", "bob")]
    for job in jobs:
        assert await board.jobs.create(job)
    await board.start()
    await board.shows(*jobs)
    await board.stop()

    request = BoardRebuild(request_id="while-down", requested_at=utcnow(), requested_by="admin")
    await board.kv.put(keys.BOARD_REBUILD_KEY, request.model_dump_json().encode())
    caplog.set_level(logging.INFO, logger="dispatcher")
    caplog.clear()
    await board.start()
    await until(lambda: answered(board, "while-down"), "meta.built to answer the request")
    late = record("c1", "carol", value=0.5)
    assert await board.jobs.create(late)
    await board.shows(*jobs, late)  # a later step has run: a second rebuild would have been its own
    steps = [r.getMessage() for r in caplog.records if r.name == "dispatcher" and r.levelno == logging.INFO]
    assert len(steps) == 2 and steps[0] == "leaderboard view: rebuilding for request while-down", steps
    assert steps[1].startswith("leaderboard view rebuilt for request while-down: 2 entries (0 stale deleted)"), steps


async def test_a_rebuild_deletes_the_stale_keys_and_only_those(board: Board, caplog: pytest.LogCaptureFixture) -> None:
    """A rebuild lists the view's keys without their values: a stray entry is stale, a key deleted before is not
    (it holds no value: not deleted again, not counted)."""
    job = record("a1", value=0.9)
    assert await board.jobs.create(job)
    await board.start()
    await board.shows(job)
    await board.stop()

    stray = BoardEntry.of(record("e1", "eve"))
    assert stray is not None
    await board.kv.put(keys.kv_board_key("eve", "e1"), stray.model_dump_json().encode())
    await board.kv.put(gone := keys.kv_board_key("frank", "f1"), stray.model_dump_json().encode())
    await board.kv.delete(gone)
    request = BoardRebuild(request_id="stale", requested_at=utcnow(), requested_by="admin")
    await board.kv.put(keys.BOARD_REBUILD_KEY, request.model_dump_json().encode())
    caplog.set_level(logging.INFO, logger="dispatcher")
    await board.start()
    await until(lambda: answered(board, "stale"), "meta.built to answer the request")
    assert await board.entries() == {keys.kv_board_key("alice", "a1"): BoardEntry.of(job)}
    assert "rebuilt for request stale: 1 entries (1 stale deleted)" in caplog.text


@dataclass
class Reloads:
    """A listener of the job view counting its full loads (the keeper hears them too)."""

    count: int = 0

    def record_put(self, record: JobRecord) -> None: ...

    def record_removed(self, key: str) -> None: ...

    def reloaded(self, records: Mapping[str, JobRecord]) -> None:
        self.count += 1


async def test_after_a_reconnect_the_keeper_still_answers_requests(board: Board, nats_server: NatsServer) -> None:
    """As dispatcher/service.py wires it, a reconnect reloads the job view: the keeper then reloads the requests
    too (the watch may have gone with the old server) and answers one put after the restart."""
    view, reloads = JobView(), Reloads()
    view.listeners.append(reloads)

    async def resync() -> None:
        view.resync.set()

    connection = await nats_io.connect(board.settings, name="dispatcher", on_reconnect=resync)
    try:
        js = connection.jetstream()
        keeper = BoardKeeper(await js.key_value(board.settings.board_kv_bucket), view, writes_in_flight=4,
                             retry_delay_s=0.1)  # fmt: skip
        jobs_kv = await js.key_value(board.settings.jobs_kv_bucket)
        board.tasks = [asyncio.create_task(view.follow(jobs_kv)), asyncio.create_task(keeper.run())]
        job = record("a1", value=0.9)
        assert await board.jobs.create(job)
        await board.shows(job)

        # Same port and store: the buckets (file storage) and both connections come back.
        nats_server.process.stop()
        nats_server.process.start().wait_ready(30)
        await until(_true_when(lambda: reloads.count == 2), "the job view to load again")
        request = BoardRebuild(request_id="after", requested_at=utcnow(), requested_by="admin")
        await board.kv.put(keys.BOARD_REBUILD_KEY, request.model_dump_json().encode())
        await until(lambda: answered(board, "after"), "meta.built to answer the request put after the restart")
    finally:
        await board.stop()
        await connection.drain()


def _true_when(condition: Callable[[], bool]) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return condition()

    return check


async def answered(board: Board, request_id: str) -> bool:
    built = await board.built()
    return built is not None and built.request_id == request_id
