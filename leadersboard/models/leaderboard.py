"""The leaderboard API's answers (`GET /api/v1/leaderboard`), a user's page of jobs (`GET /api/v1/submissions`),
and the queries that ask for them.

Two boards, never mixed: the verified board of one benchmark version (`benchmark=NAME`), ranked by the platform's
own scores with intervals, rank ranges and ties (leadersboard/verified_ranking.py), and the self-reported board
of what jobs said in their metrics.json (leadersboard/ranking.py). Each says which it is (`kind`) and how a page
should label it (`label`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import ConfigDict, Field, field_validator

from leadersboard.experiments import dataset_name
from leadersboard.keys import SUBMISSION_ID_PATTERN
from leadersboard.limits import MAX_DATASET_CHARS, MAX_NAME_CHARS
from leadersboard.models.base import StrictModel
from leadersboard.models.records import JobRecord
from leadersboard.models.scores import AVERAGE, MetricSet
from leadersboard.verified_ranking import VerifiedEntry

__all__ = [
    "CONFIDENCE",
    "DEFAULT_METRIC",
    "MAX_BOARD_LIMIT",
    "MAX_PAGE_LIMIT",
    "METRICS",
    "BoardQuery",
    "JobPage",
    "JobPageQuery",
    "RebuildAccepted",
    "SelfReportedBoard",
    "SelfReportedEntry",
    "SelfReportedQuery",
    "VerifiedBoard",
]

DEFAULT_METRIC = "image_AUROC"
"""The metric a board is ranked by when none is asked for (both boards)."""
METRICS: tuple[str, ...] = tuple(MetricSet.model_fields)
"""The metrics a verified board can be ranked by, in the order the API lists them."""
CONFIDENCE = 0.95
"""The level of every interval the platform shows (leadersboard/scoring/bootstrap.py)."""
MAX_BOARD_LIMIT = 500
"""Entries of a verified board per request."""
MAX_PAGE_LIMIT = 1000
"""Jobs per page of `GET /api/v1/submissions`."""


class VerifiedBoard(StrictModel):
    """`GET /api/v1/leaderboard?benchmark=NAME`: one page of a benchmark version's board of one metric in one
    category (or "average", the category means)."""

    kind: Literal["verified"] = "verified"
    benchmark: str
    benchmark_version: int
    versions: list[int]
    """The versions of the benchmark that have entries, ascending."""
    metric: str
    metrics: list[str]
    """The metrics the board can be ranked by."""
    category: str
    categories: list[str]
    """The benchmark version's categories (besides "average"), sorted."""
    label: str
    """"verified (public test labels)", or "verified" when the test labels are kept private."""
    higher_is_better: Literal[True] = True
    best_per_user: bool
    confidence: float = CONFIDENCE
    resamples: int
    total: int
    """Entries on the whole board (all pages)."""
    missing: int
    """Jobs of the version left off because they lack the metric in the category (e.g. pixel metrics)."""
    offset: int
    limit: int
    entries: list[VerifiedEntry]


class SelfReportedEntry(StrictModel):
    """One row of the self-reported board: what a job said in its metrics.json."""

    rank: int
    user: str
    submission_id: str
    dataset: str | None
    method: str | None
    description: str | None
    value: float
    metrics: dict[str, float]
    submitted_at: datetime
    mlflow_run_url: str | None


class SelfReportedBoard(StrictModel):
    """`GET /api/v1/leaderboard` without `benchmark`: the self-reported board of one dataset (or all), and the
    benchmarks that have a verified board."""

    kind: Literal["self_reported"] = "self_reported"
    label: Literal["self-reported"] = "self-reported"
    metric: str
    higher_is_better: Literal[True] = True
    dataset: str | None
    datasets: list[str]
    benchmarks: list[str]
    """Benchmarks with verified entries, sorted: each has a board at `?benchmark=NAME`."""
    entries: list[SelfReportedEntry]


class BoardQuery(StrictModel):
    """The query of `GET /api/v1/leaderboard?benchmark=NAME` (the verified board); a bad value is a 400 naming
    its field."""

    model_config = ConfigDict(extra="ignore")  # a query string may carry what a page adds (cache busters)

    benchmark: str = Field(min_length=1, max_length=64)
    metric: str = DEFAULT_METRIC
    category: str = Field(default=AVERAGE, min_length=1, max_length=128)
    version: int | None = Field(default=None, ge=1)
    """None: the highest version that has entries."""
    all: bool = False
    """Every entry; otherwise each user's best."""
    limit: int = Field(default=100, ge=1, le=MAX_BOARD_LIMIT)
    offset: int = Field(default=0, ge=0)

    @field_validator("metric")
    @classmethod
    def _known_metric(cls, metric: str) -> str:
        if metric not in METRICS:
            raise ValueError(f"one of {', '.join(METRICS)}")
        return metric


class SelfReportedQuery(StrictModel):
    """The query of `GET /api/v1/leaderboard` without `benchmark` (the self-reported board)."""

    model_config = ConfigDict(extra="ignore")

    metric: str = Field(default=DEFAULT_METRIC, min_length=1, max_length=MAX_NAME_CHARS)
    dataset: str | None = Field(default=None, min_length=1, max_length=MAX_DATASET_CHARS)
    """None: every dataset together. Any spelling of a dataset finds its board (`experiments.dataset_name`)."""
    best_per_user: bool = True

    @field_validator("dataset")
    @classmethod
    def _one_spelling(cls, dataset: str | None) -> str | None:
        return None if dataset is None else dataset_name(dataset)


class JobPageQuery(StrictModel):
    """The query of `GET /api/v1/submissions`."""

    model_config = ConfigDict(extra="ignore")

    limit: int = Field(default=100, ge=1, le=MAX_PAGE_LIMIT)
    cursor: str | None = Field(default=None, pattern=SUBMISSION_ID_PATTERN)
    """The last submission id of the previous page: this page starts after it (ids sort by creation time)."""
    all: bool = False
    """Admins: every user's jobs."""


class JobPage(StrictModel):
    """`GET /api/v1/submissions`: the caller's jobs, newest first."""

    submissions: list[JobRecord]
    next_cursor: str | None
    """The `cursor` of the next page; None on the last page."""


class RebuildAccepted(StrictModel):
    """`POST /api/v1/admin/leaderboard/rebuild` (202): the dispatcher rebuilds the view; `GET` on the same path
    shows its `BoardBuilt` once done, with this request id."""

    request_id: str
