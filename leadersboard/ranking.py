"""The self-reported leaderboard: completed jobs ranked by one metric of their own metrics.json, higher is better.

Pure functions over the leaderboard view's entries (leadersboard/models/board.py), so that the API, the CLI and
the tests rank alike. Verified entries (scored by the platform) never enter it: they have their own board
(leadersboard/verified_ranking.py). Ties are broken by submission id (ranks stay distinct and the order stable
from one call to the next).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from leadersboard.models.board import BoardEntry
from leadersboard.models.leaderboard import DEFAULT_METRIC, SelfReportedBoard, SelfReportedEntry

__all__ = ["DEFAULT_METRIC", "leaderboard", "rank"]


def leaderboard(
    entries: Sequence[BoardEntry],
    metric: str,
    *,
    dataset: str | None = None,
    best_per_user: bool = True,
    benchmarks: Sequence[str] = (),
) -> SelfReportedBoard:
    """The board of `dataset` (None: every dataset together), the datasets there are boards of, and the
    `benchmarks` that have verified boards."""
    return SelfReportedBoard(
        metric=metric,
        dataset=dataset,
        datasets=sorted({e.dataset for e in entries if e.dataset and not e.verified}),
        benchmarks=sorted(benchmarks),
        entries=rank(entries, metric, dataset=dataset, best_per_user=best_per_user),
    )


def rank(
    entries: Iterable[BoardEntry], metric: str, *, dataset: str | None = None, best_per_user: bool = True
) -> list[SelfReportedEntry]:
    """The self-reported entries that report `metric` (on `dataset`, if given), best first, ranked from 1.

    `best_per_user`: only each user's best job on each dataset (with `dataset` None, a user has one entry per
    dataset).
    """
    ranked = sorted(
        (e for e in entries if _on_board(e, metric, dataset)),
        key=lambda e: (-e.metrics[metric], e.submission_id),
    )
    if best_per_user:
        ranked = _best_per_user(ranked)
    return [_entry(position, e, metric) for position, e in enumerate(ranked, start=1)]


def _on_board(entry: BoardEntry, metric: str, dataset: str | None) -> bool:
    return not entry.verified and metric in entry.metrics and (dataset is None or entry.dataset == dataset)


def _best_per_user(ranked: list[BoardEntry]) -> list[BoardEntry]:
    """The first (best) entry of each user on each dataset."""
    seen: set[tuple[str | None, str]] = set()
    best = []
    for entry in ranked:
        if (entry.dataset, entry.user) not in seen:
            seen.add((entry.dataset, entry.user))
            best.append(entry)
    return best


def _entry(position: int, entry: BoardEntry, metric: str) -> SelfReportedEntry:
    return SelfReportedEntry(
        rank=position,
        user=entry.user,
        submission_id=entry.submission_id,
        dataset=entry.dataset,
        method=entry.method,
        description=entry.description,
        value=entry.metrics[metric],
        metrics=dict(entry.metrics),
        submitted_at=entry.created_at,
        mlflow_run_url=entry.mlflow_run_url,
    )
