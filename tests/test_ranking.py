"""The self-reported leaderboard's ranking (leadersboard/ranking.py), over the view's entries of job records
alone: which jobs are on the board, in what order, and what an entry says. The API's answer is this board
(tests/test_leaderboard_api.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from leadersboard import ranking
from leadersboard.models.board import BoardEntry
from leadersboard.models.records import JobRecord, JobStatus
from leadersboard.models.scores import Interval, MetricSet, Scores

AUROC = "image_AUROC"
DONE = JobStatus.COMPLETED


def job(user: str, submission_id: str, value: float | None = None, **fields: Any) -> JobRecord:
    """A completed job on dataset `bottle` with `image_AUROC` = value (none if None), unless `fields` say else."""
    fields.setdefault("status", DONE)
    fields.setdefault("dataset", "bottle")
    if value is not None:
        fields.setdefault("metrics", {AUROC: value})
    return JobRecord(
        submission_id=submission_id,
        user=user,
        entrypoint="main.py",
        config="config.yaml",
        created_at=datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC),
        **fields,
    )


def board(records: list[JobRecord]) -> list[BoardEntry]:
    """The view's entries of `records` (the completed ones)."""
    return [entry for record in records if (entry := BoardEntry.of(record)) is not None]


def ranked(records: list[JobRecord], metric: str = AUROC, **options: Any) -> list[tuple[int, str, str, float]]:
    return [(e.rank, e.user, e.submission_id, e.value) for e in ranking.rank(board(records), metric, **options)]


def test_only_completed_jobs_that_report_the_metric_are_ranked_best_first() -> None:
    records = [
        job("alice", "a1", 0.8),
        job("bob", "b1", 0.95),
        job("carol", "c1", 0.99, status=JobStatus.FAILED),
        job("dave", "d1", 0.97, status=JobStatus.RUNNING),
        job("erin", "e1", 0.99, status=JobStatus.CANCELLED),
        job("frank", "f1", metrics={"image_F1Score": 0.99}),  # completed, but without the metric
        job("grace", "g1"),  # completed, no metrics at all
    ]
    assert ranked(records) == [(1, "bob", "b1", 0.95), (2, "alice", "a1", 0.8)]
    assert ranked(records, "image_F1Score") == [(1, "frank", "f1", 0.99)]
    assert ranked(records, "no_such_metric") == []


def test_higher_is_better_for_every_metric() -> None:
    """No metric is ranked lower-first today, not even a loss: the board says so in `higher_is_better`."""
    records = [job("alice", "a1", metrics={"loss": 0.1}), job("bob", "b1", metrics={"loss": 2.5})]
    assert [e.user for e in ranking.rank(board(records), "loss")] == ["bob", "alice"]
    assert ranking.leaderboard(board(records), "loss").higher_is_better is True


def test_ties_are_broken_by_submission_id_and_ranks_stay_distinct() -> None:
    records = [job("carol", "c1", 0.9), job("alice", "z9", 0.9), job("bob", "b7", 0.9), job("dave", "d1", 0.5)]
    assert ranked(records) == [
        (1, "bob", "b7", 0.9),
        (2, "carol", "c1", 0.9),
        (3, "alice", "z9", 0.9),
        (4, "dave", "d1", 0.5),
    ]
    assert ranked(list(reversed(records))) == ranked(records)


def test_best_per_user_keeps_each_users_best_job_on_each_dataset() -> None:
    records = [
        job("alice", "a1", 0.7),
        job("alice", "a2", 0.9),
        job("alice", "a3", 0.9),  # ties with a2: the smaller id is the best
        job("bob", "b1", 0.8),
        job("alice", "a4", 0.6, dataset="cable"),
        job("alice", "a5", 0.95, dataset=None),
    ]
    assert ranked(records) == [
        (1, "alice", "a5", 0.95),
        (2, "alice", "a2", 0.9),
        (3, "bob", "b1", 0.8),
        (4, "alice", "a4", 0.6),
    ]
    assert ranked(records, dataset="bottle") == [(1, "alice", "a2", 0.9), (2, "bob", "b1", 0.8)]
    assert [e.submission_id for e in ranking.rank(board(records), AUROC, best_per_user=False)] == [
        "a5",
        "a2",
        "a3",
        "b1",
        "a1",
        "a4",
    ]


def test_a_dataset_board_holds_only_that_datasets_jobs() -> None:
    records = [job("alice", "a1", 0.8), job("bob", "b1", 0.9, dataset="cable"), job("carol", "c1", 0.7, dataset=None)]
    assert ranked(records, dataset="cable") == [(1, "bob", "b1", 0.9)]
    assert ranked(records, dataset="screw") == []


def test_the_board_lists_every_dataset_a_completed_job_names() -> None:
    records = [
        job("alice", "a1", 0.8, dataset="cable"),
        job("bob", "b1", status=JobStatus.PENDING, dataset="screw"),  # not in the view
        job("carol", "c1", 0.7, dataset=None),
        job("dave", "d1", dataset="bottle"),  # no metrics: not ranked, but a dataset all the same
        job("erin", "e1", 0.6, dataset="cable"),
    ]
    cable = ranking.leaderboard(board(records), AUROC, dataset="cable", benchmarks=["mvtec", "demo"])
    assert cable.datasets == ["bottle", "cable"]
    assert (cable.metric, cable.dataset, cable.higher_is_better, cable.benchmarks) == (
        AUROC,
        "cable",
        True,
        ["demo", "mvtec"],
    )
    assert [e.user for e in cable.entries] == ["alice", "erin"]
    empty = ranking.leaderboard([], "loss")
    assert empty.model_dump(mode="json") == {
        "kind": "self_reported",
        "label": "self-reported",
        "metric": "loss",
        "higher_is_better": True,
        "dataset": None,
        "datasets": [],
        "benchmarks": [],
        "entries": [],
    }


def test_verified_entries_never_enter_the_self_reported_board() -> None:
    """A benchmark job's own metrics.json is no claim on this board: its scores rank it on the verified one."""
    interval = Interval(value=0.99, ci_low=0.98, ci_high=1.0)
    scores = Scores(
        image_AUROC=interval,
        image_F1Max=interval,
        per_category={"bottle": MetricSet(image_AUROC=interval, image_F1Max=interval)},
        scorer_version="1",
        resamples=10,
        seed=1,
    )
    scored = job("mallory", "m1", 0.99, benchmark="demo", benchmark_version=1, scores=scores)
    records = [scored, job("alice", "a1", 0.8)]
    assert ranked(records) == [(1, "alice", "a1", 0.8)]
    assert ranking.leaderboard(board(records), AUROC).datasets == ["bottle"]


def test_an_entry_says_who_what_and_where() -> None:
    record = job(
        "alice",
        "a1",
        metrics={AUROC: 0.9, "pixel_AUROC": 0.8},
        metadata={"method": "PatchCore", "description": "k=9"},
        params={"method": "padim"},
        mlflow_run_url="http://mlflow/#/runs/r1",
    )
    assert [e.model_dump(mode="json") for e in ranking.rank(board([record]), AUROC)] == [
        {
            "rank": 1,
            "user": "alice",
            "submission_id": "a1",
            "dataset": "bottle",
            "method": "PatchCore",
            "description": "k=9",
            "value": 0.9,
            "metrics": {AUROC: 0.9, "pixel_AUROC": 0.8},
            "submitted_at": "2025-01-02T03:04:05Z",
            "mlflow_run_url": "http://mlflow/#/runs/r1",
        }
    ]


def test_the_method_is_the_submissions_label_else_the_jobs_param() -> None:
    labelled = job("alice", "a1", 0.9, metadata={"method": "PatchCore"}, params={"method": "padim"})
    logged = job("bob", "b1", 0.8, params={"method": "padim"})
    empty_label = job("carol", "c1", 0.7, metadata={"method": ""}, params={"method": "fastflow"})
    unnamed = job("dave", "d1", 0.6)
    methods = [
        (e.user, e.method, e.description) for e in ranking.rank(board([labelled, logged, empty_label, unnamed]), AUROC)
    ]
    assert methods == [
        ("alice", "PatchCore", None),
        ("bob", "padim", None),
        ("carol", "fastflow", None),
        ("dave", None, None),
    ]
