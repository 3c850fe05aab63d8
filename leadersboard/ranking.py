"""The leaderboard: completed jobs ranked by one metric, higher is better.

Pure functions over job records, so that the API, the CLI and a leaderboard view rank alike. Ties are broken
by submission id (ranks stay distinct and the order stable from one call to the next).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from leadersboard.api_types import Leaderboard, LeaderboardEntry
from leadersboard.models.records import JobRecord, JobStatus

__all__ = ["DEFAULT_METRIC", "leaderboard", "rank"]

DEFAULT_METRIC = "image_AUROC"
"""The metric a board is ranked by when none is asked for."""


def leaderboard(
    records: Sequence[JobRecord], metric: str, *, dataset: str | None = None, best_per_user: bool = True
) -> Leaderboard:
    """The board of `dataset` (None: every dataset together), and the datasets there are boards of."""
    return {
        "metric": metric,
        "higher_is_better": True,
        "dataset": dataset,
        "datasets": sorted({r.dataset for r in records if r.dataset}),
        "entries": rank(records, metric, dataset=dataset, best_per_user=best_per_user),
    }


def rank(
    records: Iterable[JobRecord], metric: str, *, dataset: str | None = None, best_per_user: bool = True
) -> list[LeaderboardEntry]:
    """The completed jobs that report `metric` (on `dataset`, if given), best first, ranked from 1.

    `best_per_user`: only each user's best job on each dataset (with `dataset` None, a user has one entry per
    dataset).
    """
    ranked = sorted(
        (r for r in records if _on_board(r, metric, dataset)),
        key=lambda r: (-r.metrics[metric], r.submission_id),
    )
    if best_per_user:
        ranked = _best_per_user(ranked)
    return [_entry(position, r, metric) for position, r in enumerate(ranked, start=1)]


def _on_board(record: JobRecord, metric: str, dataset: str | None) -> bool:
    return (
        record.status is JobStatus.COMPLETED
        and metric in record.metrics
        and (dataset is None or record.dataset == dataset)
    )


def _best_per_user(ranked: list[JobRecord]) -> list[JobRecord]:
    """The first (best) record of each user on each dataset."""
    seen: set[tuple[str | None, str]] = set()
    best = []
    for record in ranked:
        if (record.dataset, record.user) not in seen:
            seen.add((record.dataset, record.user))
            best.append(record)
    return best


def _entry(position: int, record: JobRecord, metric: str) -> LeaderboardEntry:
    return {
        "rank": position,
        "user": record.user,
        "submission_id": record.submission_id,
        "dataset": record.dataset,
        # The submission's own label first; else what the job logged as its `method` param.
        "method": record.metadata.get("method") or record.params.get("method"),
        "description": record.metadata.get("description"),
        "value": record.metrics[metric],
        "metrics": dict(record.metrics),
        "submitted_at": record.created_at.isoformat(),
        "mlflow_run_url": record.mlflow_run_url,
    }
