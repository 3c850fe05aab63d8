"""The client's calls of the leaderboard and of job lists, page by page (a part of `leadersboard.client.Client`).

>>> board = client.verified_board("mvtec", metric="pixel_AUPRO", category="bottle")
>>> [(e.rank, e.rank_range, e.value, e.tied_with_leader) for e in board.entries]
>>> records = client.jobs()  # every page of your jobs, newest first
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx

from leadersboard.client_errors import ApiError
from leadersboard.models.board import BoardBuilt
from leadersboard.models.leaderboard import (
    DEFAULT_METRIC,
    MAX_PAGE_LIMIT,
    JobPage,
    RebuildAccepted,
    SelfReportedBoard,
    VerifiedBoard,
)
from leadersboard.models.records import JobRecord

__all__ = ["BoardCalls"]


class BoardCalls:
    """Leaderboards, job pages and the view's rebuild, over the client's `_call`."""

    def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        raise NotImplementedError  # the Client's

    def self_reported_board(
        self, *, dataset: str | None = None, metric: str = DEFAULT_METRIC, best_per_user: bool = True
    ) -> SelfReportedBoard:
        """What jobs said in their metrics.json, ranked (and the benchmarks that have a verified board)."""
        params = {"metric": metric, "best_per_user": str(best_per_user).lower()}
        if dataset:
            params["dataset"] = dataset
        return SelfReportedBoard.model_validate(self._call("GET", "/leaderboard", params=params).json())

    def verified_board(
        self, benchmark: str, *, metric: str = DEFAULT_METRIC, category: str | None = None, version: int | None = None,
        everyone: bool = False, limit: int | None = None, offset: int = 0,
    ) -> VerifiedBoard:  # fmt: skip
        """The platform's board of `benchmark` (its latest version with entries unless `version`): `everyone`
        lists every entry, not only each user's best; `category` None is the category average."""
        given = {"category": category, "version": version, "limit": limit}
        params = {"benchmark": benchmark, "metric": metric, "all": str(everyone).lower(), "offset": offset}
        params |= {name: value for name, value in given.items() if value is not None}
        return VerifiedBoard.model_validate(self._call("GET", "/leaderboard", params=params).json())

    def job_page(self, *, limit: int = 100, cursor: str | None = None, everyone: bool = False) -> JobPage:
        """One page of your jobs, newest first, after the job `cursor` (a page's `next_cursor`)."""
        params: dict[str, Any] = {"limit": limit} | ({"cursor": cursor} if cursor else {})
        if everyone:
            params["all"] = "true"
        return JobPage.model_validate(self._call("GET", "/submissions", params=params).json())

    def jobs(self, *, everyone: bool = False) -> list[JobRecord]:
        """All your submissions, newest first (admins: everyone's with `everyone=True`), page by page."""
        return [record for page in self._pages(everyone) for record in page.submissions]

    def _pages(self, everyone: bool) -> Iterator[JobPage]:
        cursor: str | None = None
        while True:
            page = self.job_page(limit=MAX_PAGE_LIMIT, cursor=cursor, everyone=everyone)
            yield page
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def request_rebuild(self) -> str:
        """Ask for the leaderboard view to be rebuilt from the job records (admins); returns the request's id."""
        return RebuildAccepted.model_validate(self._call("POST", "/admin/leaderboard/rebuild").json()).request_id

    def last_rebuild(self) -> BoardBuilt | None:
        """The view's last rebuild, None if it never was (admins)."""
        try:
            return BoardBuilt.model_validate(self._call("GET", "/admin/leaderboard/rebuild").json())
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    def wait_rebuild(self, request_id: str, *, timeout_s: float = 600.0, poll_s: float = 1.0) -> BoardBuilt:
        """Wait until the dispatcher has rebuilt the view for `request_id`."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            built = self.last_rebuild()
            if built is not None and built.request_id == request_id:
                return built
            time.sleep(poll_s)
        raise TimeoutError(f"the leaderboard view was not rebuilt within {timeout_s:.0f} s (request {request_id})")
