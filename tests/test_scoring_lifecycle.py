"""A benchmark job between its run and its scores: not judged by the runner-lost rule, bounded by the scoring
timeout instead (leadersboard/liveness.py, the dispatcher's sweep against a real nats-server), and what the
scorer's verdicts and a rescore may change in its record (leadersboard/scoring/verdict.py)."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from nats.aio.client import Client as NATS

from dispatcher.release import Releaser
from dispatcher.settings import DispatcherSettings
from dispatcher.view import JobView
from gpu_runner.service import Runner
from gpu_runner.settings import RunnerSettings
from leadersboard.jobs import JobStore
from leadersboard.liveness import fail_scoring_overdue, runner_silent, scoring_overdue, waiting_for_scores
from leadersboard.models.base import utcnow
from leadersboard.models.queue import JobMessage
from leadersboard.models.records import JobRecord, JobStatus
from leadersboard.models.scores import Interval, Scores
from leadersboard.quotas import QuotaStore
from leadersboard.scoring.verdict import failed, rescorable, scored, takes
from leadersboard.settings import NatsSettings
from leadersboard.tokens import TokenStore

NOW = datetime(2030, 1, 1, 12, 0, 0).astimezone()
HOUR_S = 3600.0


def waiting(scoring_ago_s: float | None, *, now: datetime = NOW, **fields: Any) -> JobRecord:
    """A job whose run ended well `scoring_ago_s` seconds ago (None: still running), its last heartbeat then."""
    ended = now - timedelta(seconds=scoring_ago_s or 0)
    fields = {
        "status": JobStatus.RUNNING, "runner": "runner-a", "attempts": 1, "benchmark": "synth",
        "benchmark_version": 1, "created_at": ended - timedelta(minutes=10), "started_at": ended - timedelta(minutes=5),
        "heartbeat_at": ended, "scoring_requested_at": None if scoring_ago_s is None else ended,
    } | fields  # fmt: skip
    return JobRecord(
        submission_id=fields.pop("sid", "s1"), user="alice", entrypoint="main.py", config="c.yaml", **fields
    )


def some_scores(value: float) -> Scores:
    interval = Interval(value=value, ci_low=value - 0.1, ci_high=min(1.0, value + 0.1))
    return Scores(image_AUROC=interval, image_F1Max=interval, per_category={}, scorer_version="1", resamples=10, seed=1)


# --- liveness ---------------------------------------------------------------------------------------------------


def test_a_job_waiting_for_its_scores_is_never_runner_lost_however_old_its_last_heartbeat() -> None:
    record = waiting(10 * HOUR_S)
    assert waiting_for_scores(record)
    assert not runner_silent(record, now=NOW, after_s=300)
    assert runner_silent(waiting(None, heartbeat_at=NOW - timedelta(hours=10)), now=NOW, after_s=300)


@pytest.mark.parametrize(("ago_s", "overdue"), [(HOUR_S - 1, False), (HOUR_S, True), (10 * HOUR_S, True)])
def test_scoring_is_overdue_once_the_timeout_has_passed_since_the_request(ago_s: float, overdue: bool) -> None:
    assert scoring_overdue(waiting(ago_s), now=NOW, after_s=HOUR_S) is overdue


@pytest.mark.parametrize("status", [JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED])
def test_only_a_job_still_running_can_be_overdue(status: JobStatus) -> None:
    assert not scoring_overdue(waiting(10 * HOUR_S, status=status), now=NOW, after_s=HOUR_S)
    assert not scoring_overdue(waiting(None, heartbeat_at=NOW - timedelta(hours=10)), now=NOW, after_s=HOUR_S)


def test_the_timeout_verdict_changes_only_the_status_error_and_finish() -> None:
    before = waiting(2 * HOUR_S)
    after = fail_scoring_overdue(before.model_copy(deep=True), now=NOW, after_s=HOUR_S)
    assert (after.status, after.error, after.finished_at) == (
        JobStatus.FAILED, "scoring did not finish within 3600 s", NOW,
    )  # fmt: skip
    changed = {"status", "error", "finished_at", "duration_s"}
    assert after.model_dump(exclude=changed) == before.model_dump(exclude=changed)


def test_a_runner_leaves_a_redelivered_job_that_waits_for_its_scores(tmp_path: Path) -> None:
    settings = RunnerSettings(runner_id="runner-b", work_dir=tmp_path, heartbeat_stale_s=15, max_attempts=2)
    runner = Runner(settings, jobs=None, s3=None, stop=asyncio.Event())  # type: ignore[arg-type]  # _claim uses neither
    record = waiting(HOUR_S, now=utcnow())
    assert runner._claim(record, JobMessage(submission_id="s1", user="alice")) is None


async def test_the_dispatcher_fails_overdue_scoring_and_leaves_the_rest(nc: NATS) -> None:
    settings = DispatcherSettings(**NatsSettings().model_dump(), runner_lost_after_s=300, scoring_timeout_s=HOUR_S)
    js = nc.jetstream()
    jobs = JobStore(await js.key_value(settings.jobs_kv_bucket))
    now = utcnow()
    records = [
        waiting(2 * HOUR_S, now=now, sid="overdue"),
        waiting(600, now=now, sid="scoring"),  # its last heartbeat 10 minutes ago: not runner lost
        waiting(None, now=now, sid="silent", heartbeat_at=now - timedelta(seconds=600)),
        waiting(2 * HOUR_S, now=now, sid="scored", status=JobStatus.COMPLETED),
    ]
    view = JobView()
    for record in records:
        assert await jobs.create(record)
        view.put(record)
    releaser = Releaser(
        settings, js, jobs, QuotaStore(await js.key_value(settings.quotas_kv_bucket)),
        TokenStore(await js.key_value(settings.tokens_kv_bucket)), view,
    )  # fmt: skip

    assert await releaser.fail_lost() == 2
    stored = {r.submission_id: r for r in await jobs.list_records("alice")}
    assert {sid: (r.status, r.error) for sid, r in stored.items()} == {
        "overdue": (JobStatus.FAILED, "scoring did not finish within 3600 s"),
        "scoring": (JobStatus.RUNNING, None),
        "silent": (JobStatus.FAILED, "runner lost: runner runner-a stopped reporting for over 300 s"),
        "scored": (JobStatus.COMPLETED, None),
    }


# --- the scorer's verdicts ----------------------------------------------------------------------------------------


def test_scores_complete_a_waiting_job_and_keep_its_self_reported_metrics() -> None:
    before = waiting(60, metrics={"image_AUROC": 1.0})
    after = scored(before.model_copy(deep=True), some_scores(0.5), now=NOW, rescore=False)
    assert after is not None
    assert (after.status, after.error, after.finished_at, after.scores) == (
        JobStatus.COMPLETED, None, NOW, some_scores(0.5),
    )  # fmt: skip
    assert after.metrics == {"image_AUROC": 1.0}


@pytest.mark.parametrize("status", [JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.PENDING])
def test_a_plain_request_leaves_a_job_that_does_not_wait_for_scores(status: JobStatus) -> None:
    record = waiting(60, status=status)
    assert not takes(record, rescore=False)
    assert scored(record, some_scores(0.5), now=NOW, rescore=False) is None
    assert failed(record, "predictions rejected: x", now=NOW, rescore=False) is None


def test_a_rescore_takes_finished_scored_jobs_only() -> None:
    assert rescorable(waiting(60, status=JobStatus.COMPLETED))
    assert rescorable(waiting(60, status=JobStatus.FAILED, error="scoring did not finish within 3600 s"))
    assert not rescorable(waiting(60, status=JobStatus.CANCELLED))
    assert not rescorable(waiting(60)), "still waiting: a plain request's job"
    assert not rescorable(waiting(None, status=JobStatus.FAILED)), "failed before its predictions were stored"


def test_a_rescore_changes_the_scores_and_only_moves_between_completed_and_failed() -> None:
    finished = NOW - timedelta(days=3)
    done = waiting(60, status=JobStatus.COMPLETED, finished_at=finished, scores=some_scores(0.9))
    rejected = failed(done.model_copy(deep=True), "predictions rejected: x", now=NOW, rescore=True)
    assert rejected is not None
    assert (rejected.status, rejected.error, rejected.scores, rejected.finished_at) == (
        JobStatus.FAILED, "predictions rejected: x", None, finished,
    )  # fmt: skip
    mended = scored(rejected.model_copy(deep=True), some_scores(0.7), now=NOW, rescore=True)
    assert mended is not None
    assert mended.model_dump(exclude={"scores"}) == done.model_dump(exclude={"scores"})
    assert mended.scores == some_scores(0.7)
