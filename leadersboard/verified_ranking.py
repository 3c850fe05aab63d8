"""The verified leaderboard: entries scored by the platform, ranked with intervals, rank ranges and ties.

Pure (numpy, no I/O), so that the API, the CLI and a leaderboard view rank alike. One board ranks the entries of
one benchmark version by one metric of one group (a category, or AVERAGE for the category means); higher is
better. Every entry's replicates come from the same resamples (leadersboard/scoring/bootstrap.py), so replicate b
of two entries scores the same images. For n entries:

- Order: value, highest first; then the earlier `created_at`, then `submission_id` (a stable order). The first
  entry is the leader.
- `rank` = 1 + the number of entries with a strictly higher value: equal values share a rank (1, 1, 3).
- `rank_range` = (best, worst), Chatbot Arena's convention (../shared/reference/SCORING.md) applied at both ends
  to the 95% intervals, each widened to contain its own value (a percentile interval need not contain the point
  value, and a range must contain the rank):
  best = 1 + the number of entries whose low end is above this entry's high end (certainly better);
  worst = n - the number of entries whose high end is below this entry's low end (certainly worse).
  So 1 <= best <= rank <= worst <= n.
- `diff_ci`: the paired bootstrap of leader - entry, d_b = leader_b - entry_b over the shared resamples: its point
  value and 95% percentile interval. `tied_with_leader` when that interval contains 0. The paired test is sharper
  than the overlap of the two intervals: what the resamples do to both entries alike cancels in d.
- The leader itself is the reference of that comparison, not compared with itself: `tied_with_leader` and
  `diff_ci` are None. Another entry equal to it on every resample has d = 0 and is tied.

Two steps, so that a board of 100,000 entries reads the replicates of only the rows it shows: `rank_entries`
orders and ranks from the intervals alone (vectorized, no object per entry); `RankedBoard.page` makes the rows of
one page, given the replicates of `RankedBoard.shown` (the leader and that page). An entry whose replicates, or
the leader's, are absent or do not pair (another seed or number of resamples) has `tied_with_leader` and
`diff_ci` None: the board still answers.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import numpy as np
import numpy.typing as npt
from pydantic import ConfigDict

from leadersboard.models.base import StrictModel
from leadersboard.models.board import BoardEntry
from leadersboard.models.scores import AVERAGE, Interval, MetricSet
from leadersboard.scoring.bootstrap import Floats, interval

__all__ = ["RankedBoard", "VerifiedEntry", "rank_entries"]


class VerifiedEntry(StrictModel):
    """One row of a verified board, as the API answers it (definitions in the module's docstring)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rank: int
    rank_range: tuple[int, int]
    value: float
    ci_low: float
    ci_high: float
    tied_with_leader: bool | None
    """None for the leader itself, and when either entry's replicates are absent or do not pair."""
    diff_ci: Interval | None
    """leader - this entry: the point difference and its paired 95% interval; None as `tied_with_leader`."""
    verified: Literal[True] = True
    user: str
    method: str | None
    description: str | None
    submission_id: str
    benchmark: str | None
    benchmark_version: int | None
    mlflow_run_url: str | None
    submitted_at: datetime


@dataclass(frozen=True)
class RankedBoard:
    """The board of one metric in one group, ranked; rows are made page by page (`page`)."""

    metric: str
    group: str
    missing: int
    """Entries left out because they lack the metric in the group (counted before `best_per_user`)."""
    entries: list[BoardEntry]
    """Best first: value descending, then the earlier `created_at`, then `submission_id`."""
    intervals: list[Interval]
    ranks: list[int]
    ranges: list[tuple[int, int]]

    def shown(self, offset: int, limit: int) -> list[BoardEntry]:
        """The entries whose replicates `page(offset, limit, ...)` needs: the leader, then the page's others."""
        rows = self.entries[offset : offset + limit]
        return self.entries[:1] + [entry for entry in rows if entry is not self.entries[0]]

    def page(self, offset: int, limit: int, replicates: Mapping[str, Floats]) -> list[VerifiedEntry]:
        """Rows offset .. offset+limit-1; `replicates` by submission id (at least those of `shown`)."""
        if not self.entries:
            return []
        leader = self.entries[0]
        stop = min(offset + limit, len(self.entries))
        return [
            self._row(i, _diff(leader, self.intervals[0], self.entries[i], self.intervals[i], replicates))
            for i in range(offset, stop)
        ]

    def _row(self, i: int, diff: Interval | None) -> VerifiedEntry:
        entry, found = self.entries[i], self.intervals[i]
        return VerifiedEntry(
            rank=self.ranks[i],
            rank_range=self.ranges[i],
            value=found.value,
            ci_low=found.ci_low,
            ci_high=found.ci_high,
            tied_with_leader=None if diff is None else diff.ci_low <= 0.0 <= diff.ci_high,
            diff_ci=diff,
            user=entry.user,
            method=entry.method,
            description=entry.description,
            submission_id=entry.submission_id,
            benchmark=entry.benchmark,
            benchmark_version=entry.benchmark_version,
            mlflow_run_url=entry.mlflow_run_url,
            submitted_at=entry.created_at,
        )


def rank_entries(
    entries: Iterable[BoardEntry], metric: str, group: str = AVERAGE, *, best_per_user: bool = True
) -> RankedBoard:
    """The board of `metric` in `group` (self-reported entries count as missing). `best_per_user`: only each
    user's best entry (by value; on equal values, the earlier submission). Raises ValueError for an unknown
    metric."""
    kept, found, missing = _with_metric(entries, MetricSet.check(metric), group)
    columns = np.array([(f.value, f.ci_low, f.ci_high) for f in found], dtype=np.float64).reshape(-1, 3)
    order = _order(kept, columns[:, 0])
    if best_per_user:
        order = order[_first_of_each(np.array([kept[i].user for i in order.tolist()]))]
    positions: list[int] = order.tolist()
    ranks, ranges = _ranks(columns[order])
    return RankedBoard(
        metric=metric,
        group=group,
        missing=missing,
        entries=[kept[i] for i in positions],
        intervals=[found[i] for i in positions],
        ranks=ranks,
        ranges=ranges,
    )


def _with_metric(
    entries: Iterable[BoardEntry], metric: str, group: str
) -> tuple[list[BoardEntry], list[Interval], int]:
    """The entries that have `metric` in `group`, its intervals, and how many do not. One plain pass: this loop
    is the per-entry cost of a board."""
    kept: list[BoardEntry] = []
    found: list[Interval] = []
    missing = 0
    for entry in entries:
        scores = entry.scores
        metrics = scores if scores is None or group == AVERAGE else scores.per_category.get(group)
        metric_interval: Interval | None = None if metrics is None else getattr(metrics, metric)
        if metric_interval is None:
            missing += 1
        else:
            kept.append(entry)
            found.append(metric_interval)
    return kept, found, missing


def _order(entries: list[BoardEntry], values: Floats) -> npt.NDArray[np.intp]:
    """Positions best first: value descending, then the earlier `created_at`, then `submission_id`."""
    created = np.array([e.created_at.timestamp() for e in entries], dtype=np.float64)
    ids = np.array([e.submission_id for e in entries], dtype=str)
    return np.lexsort((ids, created, -values))


def _first_of_each(users: npt.NDArray[np.str_]) -> npt.NDArray[np.intp]:
    """The positions of each user's first (best) entry, in board order."""
    _, first = np.unique(users, return_index=True)
    return np.sort(first)


def _ranks(columns: Floats) -> tuple[list[int], list[tuple[int, int]]]:
    """Each entry's rank and rank range from its (value, ci_low, ci_high), by sorting and binary search (n log n:
    boards of all entries are long)."""
    n = len(columns)
    values = columns[:, 0]
    low, high = np.minimum(columns[:, 1], values), np.maximum(columns[:, 2], values)
    higher = n - np.searchsorted(np.sort(values), values, side="right")
    certainly_better = n - np.searchsorted(np.sort(low), high, side="right")
    certainly_worse = np.searchsorted(np.sort(high), low, side="left")
    ranks: list[int] = (1 + higher).tolist()
    ranges = list(zip((1 + certainly_better).tolist(), (n - certainly_worse).tolist(), strict=True))
    return ranks, ranges


def _diff(
    leader: BoardEntry, leader_interval: Interval, entry: BoardEntry, found: Interval, replicates: Mapping[str, Floats]
) -> Interval | None:
    """leader - entry by the paired bootstrap; None for the leader itself or replicates that do not pair."""
    if entry is leader:
        return None
    ours, theirs = replicates.get(leader.submission_id), replicates.get(entry.submission_id)
    if ours is None or theirs is None or not _pair(leader, entry, ours, theirs):
        return None
    return interval(leader_interval.value - found.value, np.asarray(ours) - np.asarray(theirs))


def _pair(leader: BoardEntry, entry: BoardEntry, ours: Floats, theirs: Floats) -> bool:
    """Replicates pair up only when made by the same seed and number of resamples, one per resample."""
    a, b = leader.scores, entry.scores
    return (
        a is not None
        and b is not None
        and (a.seed, a.resamples) == (b.seed, b.resamples)
        and np.shape(ours) == np.shape(theirs) == (a.resamples,)
    )
