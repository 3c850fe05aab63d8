"""A cold board is ranked in a worker thread, not on ingest's event loop, through the real ingest app, nats-server
and SeaweedFS: the loop answers other requests meanwhile, concurrent requests for the same board rank it once,
and an error in the thread answers as it did on the loop."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Hashable
from typing import Any

import pytest
from aiohttp import web

from ingest import leaderboard
from ingest.board import SELF_REPORTED, BoardIndex
from ingest.context import SERVICES
from leadersboard import ranking
from leadersboard.models.board import BoardEntry
from leadersboard.models.leaderboard import SelfReportedBoard
from leadersboard.verified_ranking import RankedBoard, rank_entries
from tests.api_fixtures import Api, bearer
from tests.leaderboard_fixtures import AUROC, self_reported, until
from tests.test_ingest_api import error_of
from tests.test_leaderboard_api import F1, demo, s3  # noqa: F401  (the demo board, in the store)

pytestmark = pytest.mark.timeout(120)
HOLD_S = 30.0
"""How long the held ranking waits to be released at most: ranked on the loop, it would hold the loop that long."""
COLD = {"benchmark": "demo", "version": "1", "category": "wood", "metric": F1}
"""A board no test requests before it is held."""


class HeldRanking:
    """rank_entries, held until `release` is set; records the thread of each call."""

    def __init__(self) -> None:
        self.threads: list[int] = []
        self.entered = threading.Event()
        self.release = threading.Event()

    def __call__(self, entries: list[BoardEntry], *args: Any, **kwargs: Any) -> RankedBoard:
        self.threads.append(threading.get_ident())
        self.entered.set()
        self.release.wait(HOLD_S)
        return rank_entries(entries, *args, **kwargs)


def count_misses(app: web.Application, monkeypatch: pytest.MonkeyPatch) -> list[Hashable]:
    """The keys the board index is asked for and does not have, from now on."""
    index = app[SERVICES].board
    misses: list[Hashable] = []
    lookup = index.lookup

    def counting(group: Any, key: Hashable) -> Any:
        found = lookup(group, key)
        if found is None:
            misses.append(key)
        return found

    monkeypatch.setattr(index, "lookup", counting)
    return misses


async def eventually(condition: Callable[[], bool], what: str) -> None:
    for _ in range(int(HOLD_S * 100)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never: {what}")


@pytest.mark.usefixtures("demo")
async def test_a_cold_board_is_ranked_once_off_the_event_loop(
    api: Api, app: web.Application, alice: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    await until(api, alice, lambda b: b["total"] == 5, benchmark="demo", version="1")  # the view is loaded
    held = HeldRanking()
    monkeypatch.setattr(leaderboard, "rank_entries", held)
    misses = count_misses(app, monkeypatch)

    first = asyncio.create_task(api.get("/api/v1/leaderboard", params=COLD, headers=bearer(alice)))
    assert await asyncio.to_thread(held.entered.wait, HOLD_S), "the board was never ranked"
    health = await api.get("/api/v1/health")  # while the board is being ranked, the loop answers
    assert health.status == 200, await health.text()
    second = asyncio.create_task(api.get("/api/v1/leaderboard", params=COLD, headers=bearer(alice)))
    # The second request found no ranked board (so it did not come after the first's answer): it awaits the first's.
    await eventually(lambda: sum(isinstance(k, tuple) and k[0] == "ranked" for k in misses) == 2, "a second miss")
    held.release.set()
    boards = [await response.json() for response in await asyncio.gather(first, second)]

    assert len(held.threads) == 1, "two concurrent requests ranked the same board twice"
    assert held.threads[0] != threading.get_ident(), "the board was ranked on the event loop's thread"
    assert boards[0] == boards[1]
    assert (boards[0]["category"], boards[0]["metric"], boards[0]["total"]) == ("wood", F1, 5)
    assert [row["user"] for row in boards[0]["entries"]] == ["alice", "bob", "dave", "carol", "erin"]


@pytest.mark.usefixtures("demo")
async def test_an_error_in_the_ranking_thread_answers_as_before_and_is_not_remembered(
    api: Api, alice: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    await until(api, alice, lambda b: b["total"] == 5, benchmark="demo", version="1")
    threads: list[int] = []

    def failing(*args: Any, **kwargs: Any) -> RankedBoard:
        threads.append(threading.get_ident())
        raise RuntimeError("ranking failed")

    monkeypatch.setattr(leaderboard, "rank_entries", failing)
    response = await api.get("/api/v1/leaderboard", params=COLD, headers=bearer(alice))
    error = await error_of(response, 500)
    assert error["message"] == "internal server error; please report it to the administrators"
    assert threads and threads[0] != threading.get_ident()

    monkeypatch.setattr(leaderboard, "rank_entries", rank_entries)
    board = await until(api, alice, lambda b: True, benchmark="demo", version="1", category="wood", metric=F1)
    assert board["total"] == 5  # ranked again: the error was not remembered


async def test_the_self_reported_board_is_ranked_off_the_event_loop(
    api: Api, alice: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads: list[int] = []

    def recording(entries: list[BoardEntry], *args: Any, **kwargs: Any) -> SelfReportedBoard:
        threads.append(threading.get_ident())
        return real(entries, *args, **kwargs)

    real = ranking.leaderboard
    monkeypatch.setattr(ranking, "leaderboard", recording)
    board = await until(api, alice, lambda b: True, metric="never-reported")
    assert board["entries"] == [] and threads and threading.get_ident() not in threads


async def test_a_board_computed_from_entries_since_changed_never_replaces_a_newer_one() -> None:
    """The view changes while a board is ranked: the next request ranks the new entries, and the first ranking,
    ending last, is not remembered over it."""
    index = BoardIndex()
    index.put(self_reported("alice", "bottle", {AUROC: 0.8}))
    gate = threading.Event()
    counted: list[int] = []

    def count(entries: list[BoardEntry]) -> int:
        counted.append(len(entries))
        if len(entries) == 1:
            gate.wait(HOLD_S)
        return len(entries)

    try:
        first = asyncio.create_task(index.cached(SELF_REPORTED, "count", count))
        await eventually(lambda: counted == [1], "the first count started")
        index.put(self_reported("bob", "bottle", {AUROC: 0.9}))  # as the KV mirror does, on the loop
        assert await index.cached(SELF_REPORTED, "count", count) == 2
        gate.set()
        assert await first == 1  # the entries it started from
        assert await index.cached(SELF_REPORTED, "count", count) == 2
        assert counted == [1, 2]
    finally:
        gate.set()
        index.close()
