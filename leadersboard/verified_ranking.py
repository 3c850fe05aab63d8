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
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from pydantic import ConfigDict

from leadersboard.models.base import StrictModel
from leadersboard.models.scores import AVERAGE, Interval, Scores
from leadersboard.scoring.bootstrap import Floats, interval

__all__ = ["Candidate", "VerifiedBoard", "VerifiedEntry", "verified_ranking"]


@dataclass(frozen=True)
class Candidate:
    """A scored job that may enter a verified board."""

    user: str
    submission_id: str
    method: str | None
    description: str | None
    created_at: datetime
    scores: Scores
    replicates: Floats | None
    """The board's metric in the board's group on each resample (`ScoresFile.replicates[group][metric]`, in
    resample order), None when the job has none (e.g. pixel metrics without anomaly maps)."""


class VerifiedEntry(StrictModel):
    """One row of a verified board (definitions in the module's docstring)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rank: int
    rank_range: tuple[int, int]
    user: str
    submission_id: str
    method: str | None
    description: str | None
    created_at: datetime
    value: float
    ci_low: float
    ci_high: float
    tied_with_leader: bool | None
    """None for the leader itself."""
    diff_ci: Interval | None
    """leader - this entry: the point difference and its paired 95% interval; None for the leader itself."""


class VerifiedBoard(StrictModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    metric: str
    group: str
    entries: list[VerifiedEntry]
    missing: int
    """Candidates left out because they lack the metric in the group (counted before `best_per_user`)."""


@dataclass(frozen=True)
class _Scored:
    candidate: Candidate
    interval: Interval
    replicates: Floats


def verified_ranking(
    candidates: Iterable[Candidate], metric: str, group: str = AVERAGE, *, best_per_user: bool = True
) -> VerifiedBoard:
    """The board of `metric` in `group`. `best_per_user`: only each user's best entry (by value; on equal values,
    the earlier submission). Raises ValueError for an unknown metric or replicates that do not pair."""
    scored, missing = _with_metric(candidates, metric, group)
    scored.sort(key=_order)
    if best_per_user:
        scored = _best_per_user(scored)
    ranks, ranges = _ranks(scored)
    entries = [
        _entry(s, rank, rank_range, scored[0]) for s, rank, rank_range in zip(scored, ranks, ranges, strict=True)
    ]
    return VerifiedBoard(metric=metric, group=group, entries=entries, missing=missing)


def _with_metric(candidates: Iterable[Candidate], metric: str, group: str) -> tuple[list[_Scored], int]:
    scored: list[_Scored] = []
    missing = 0
    for candidate in candidates:
        found = candidate.scores.interval(metric, group)
        if found is None or candidate.replicates is None:
            missing += 1
        else:
            scored.append(_Scored(candidate, found, np.asarray(candidate.replicates, dtype=np.float64)))
    _check_paired(scored)
    return scored, missing


def _check_paired(scored: list[_Scored]) -> None:
    """Replicates pair up only when made by the same seed and number of resamples, one per resample."""
    kinds = {(s.candidate.scores.seed, s.candidate.scores.resamples, s.replicates.shape) for s in scored}
    if len(kinds) > 1 or any(shape != (resamples,) for _, resamples, shape in kinds):
        raise ValueError(f"the entries' replicates do not pair (seed, resamples, shape): {sorted(kinds)}")


def _order(scored: _Scored) -> tuple[float, datetime, str]:
    return -scored.interval.value, scored.candidate.created_at, scored.candidate.submission_id


def _best_per_user(ordered: list[_Scored]) -> list[_Scored]:
    """The first (best) entry of each user."""
    seen: set[str] = set()
    best = []
    for scored in ordered:
        if scored.candidate.user not in seen:
            seen.add(scored.candidate.user)
            best.append(scored)
    return best


def _ranks(scored: list[_Scored]) -> tuple[list[int], list[tuple[int, int]]]:
    """Each entry's rank and rank range, by sorting and binary search (n log n: boards of all entries are long)."""
    n = len(scored)
    values = np.array([s.interval.value for s in scored])
    low = np.minimum([s.interval.ci_low for s in scored], values)
    high = np.maximum([s.interval.ci_high for s in scored], values)
    higher = n - np.searchsorted(np.sort(values), values, side="right")
    certainly_better = n - np.searchsorted(np.sort(low), high, side="right")
    certainly_worse = np.searchsorted(np.sort(high), low, side="left")
    ranks = [1 + int(h) for h in higher]
    ranges = [(1 + int(b), n - int(w)) for b, w in zip(certainly_better, certainly_worse, strict=True)]
    return ranks, ranges


def _entry(scored: _Scored, rank: int, rank_range: tuple[int, int], leader: _Scored) -> VerifiedEntry:
    diff = None
    if scored is not leader:
        diff = interval(leader.interval.value - scored.interval.value, leader.replicates - scored.replicates)
    candidate = scored.candidate
    return VerifiedEntry(
        rank=rank,
        rank_range=rank_range,
        user=candidate.user,
        submission_id=candidate.submission_id,
        method=candidate.method,
        description=candidate.description,
        created_at=candidate.created_at,
        value=scored.interval.value,
        ci_low=scored.interval.ci_low,
        ci_high=scored.interval.ci_high,
        tied_with_leader=None if diff is None else diff.ci_low <= 0.0 <= diff.ci_high,
        diff_ci=diff,
    )
