"""The leaderboard routes: the verified board of a benchmark, the self-reported board, and an admin's rebuild of
the view they are served from.

Boards are computed from the in-memory copy of the view (ingest/board.py), never from the job records, in a
worker thread, and cached until their entries change; a verified page reads only the replicates of the rows it
shows (ingest/replicates.py).
"""

from __future__ import annotations

import asyncio
import secrets

from aiohttp import web

from ingest.auth import caller_of
from ingest.board import SELF_REPORTED, BoardIndex, VersionSummary
from ingest.context import Services, admin_only, services
from ingest.errors import BadRequest, NotFound, ServiceUnavailable
from leadersboard import nats_io, ranking
from leadersboard.keys import BOARD_BUILT_KEY, BOARD_REBUILD_KEY
from leadersboard.models.base import StrictModel, utcnow
from leadersboard.models.board import BoardBuilt, BoardRebuild
from leadersboard.models.leaderboard import (
    BoardQuery,
    RebuildAccepted,
    SelfReportedBoard,
    SelfReportedQuery,
    VerifiedBoard,
)
from leadersboard.models.scores import AVERAGE
from leadersboard.verified_ranking import RankedBoard, VerifiedEntry, rank_entries

__all__ = ["LOAD_WAIT_S", "add_routes"]

LOAD_WAIT_S = 10.0
"""How long a request waits for the view's first load after ingest starts, before a 503."""


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/v1/leaderboard", leaderboard)
    app.router.add_post("/api/v1/admin/leaderboard/rebuild", request_rebuild)
    app.router.add_get("/api/v1/admin/leaderboard/rebuild", last_rebuild)


async def leaderboard(request: web.Request) -> web.Response:
    svc = services(request)
    await _loaded(svc.board)
    query = dict(request.query)
    if "benchmark" in query:
        board: StrictModel = await _verified(svc, BoardQuery.model_validate(query))
    else:
        board = await _self_reported(svc.board, SelfReportedQuery.model_validate(query))
    return web.json_response(text=board.model_dump_json())


async def _loaded(index: BoardIndex) -> None:
    try:
        await asyncio.wait_for(index.ready.wait(), LOAD_WAIT_S)
    except TimeoutError as exc:
        raise ServiceUnavailable(
            "the leaderboard view is still loading; retry in a few seconds", headers={"Retry-After": "5"}
        ) from exc


async def _self_reported(index: BoardIndex, query: SelfReportedQuery) -> SelfReportedBoard:
    benchmarks = index.benchmarks()
    return await index.cached(
        SELF_REPORTED,
        ("self-reported", query.metric, query.dataset, query.best_per_user, tuple(benchmarks)),
        lambda entries: ranking.leaderboard(
            entries,
            query.metric,
            dataset=query.dataset,
            best_per_user=query.best_per_user,
            benchmarks=benchmarks,
        ),
    )


async def _verified(svc: Services, query: BoardQuery) -> VerifiedBoard:
    index = svc.board
    versions = index.versions(query.benchmark)
    if not versions:
        raise NotFound(
            f"benchmark: {query.benchmark!r} has no verified entries (the board without `benchmark` lists those "
            "that have)"
        )
    version = versions[-1] if query.version is None else query.version
    group = (query.benchmark, version)
    generation = index.generation(group)  # before any await: what this answer is made from, if it is remembered
    summary = await index.summary(group)
    if summary is None:
        listed = ", ".join(map(str, versions))
        raise NotFound(f"version: {query.benchmark} has no verified entries in version {version} (it has in {listed})")
    if query.category != AVERAGE and query.category not in summary.categories:
        raise BadRequest(f"category: {AVERAGE} or one of {', '.join(summary.categories)}, not {query.category!r}")
    page_key = ("page", query.metric, query.category, query.all, query.offset, query.limit, tuple(versions))
    found: VerifiedBoard | None = index.lookup(group, page_key)
    if found is not None:
        return found
    ranked = await _ranked(index, query, group)
    shown = ranked.shown(query.offset, query.limit)
    vectors = await svc.replicates.vectors(shown, query.category, query.metric)
    board = _answer(query, version, versions, summary, ranked, ranked.page(query.offset, query.limit, vectors))
    if all(entry.submission_id in vectors for entry in shown):  # a store failure is not remembered
        index.remember(group, page_key, board, generation)
    return board


async def _ranked(index: BoardIndex, query: BoardQuery, group: tuple[str, int]) -> RankedBoard:
    return await index.cached(
        group,
        ("ranked", query.metric, query.category, not query.all),
        lambda entries: rank_entries(entries, query.metric, query.category, best_per_user=not query.all),
    )


def _answer(
    query: BoardQuery,
    version: int,
    versions: list[int],
    summary: VersionSummary,
    ranked: RankedBoard,
    rows: list[VerifiedEntry],
) -> VerifiedBoard:
    return VerifiedBoard(
        benchmark=query.benchmark,
        benchmark_version=version,
        versions=versions,
        metric=query.metric,
        metrics=summary.metrics,
        category=query.category,
        categories=summary.categories,
        label=summary.label,
        best_per_user=not query.all,
        resamples=summary.resamples,
        total=len(ranked.entries),
        missing=ranked.missing,
        offset=query.offset,
        limit=query.limit,
        entries=rows,
    )


@admin_only
async def request_rebuild(request: web.Request) -> web.Response:
    """Ask the dispatcher to rebuild the view from the job records; its answer appears at GET on this path."""
    svc = services(request)
    rebuild = BoardRebuild(request_id=secrets.token_hex(8), requested_at=utcnow(), requested_by=caller_of(request).user)
    await svc.board_kv.put(BOARD_REBUILD_KEY, rebuild.model_dump_json().encode())
    return web.json_response(RebuildAccepted(request_id=rebuild.request_id).model_dump(mode="json"), status=202)


@admin_only
async def last_rebuild(request: web.Request) -> web.Response:
    found = await nats_io.kv_read(services(request).board_kv, BOARD_BUILT_KEY)
    if found is None:
        raise NotFound("the leaderboard view has not been rebuilt yet")
    return web.json_response(text=BoardBuilt.model_validate_json(found[0]).model_dump_json())
