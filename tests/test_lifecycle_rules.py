"""The runner-lost rule (leadersboard/liveness.py), and the two places that judge by it: the runner claiming a
redelivered job, and the dispatcher's sweep (against a real nats-server)."""

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
from leadersboard.liveness import fail_silent_runner, fail_vanished_runner, last_sign_of_life, runner_silent
from leadersboard.models.base import utcnow
from leadersboard.models.queue import JobMessage
from leadersboard.models.records import JobRecord, JobStatus
from leadersboard.quotas import QuotaStore
from leadersboard.settings import NatsSettings
from leadersboard.tokens import TokenStore

NOW = datetime(2030, 1, 1, 12, 0, 0).astimezone()
CHANGED = {"status", "error", "finished_at", "duration_s"}
"""The only fields a runner-lost verdict changes (the duration follows from the finish)."""


def running(ago_s: dict[str, float], *, now: datetime = NOW, **fields: Any) -> JobRecord:
    """A running job whose timestamps (created_at, started_at, heartbeat_at) lie `ago_s` seconds before `now`."""
    times = {name: now - timedelta(seconds=s) for name, s in ago_s.items()}
    times.setdefault("created_at", now - timedelta(hours=1))
    fields = {"status": JobStatus.RUNNING, "runner": "runner-a", "attempts": 1} | fields
    return JobRecord(submission_id=fields.pop("sid", "s1"), user="alice", entrypoint="main.py", config="config.yaml",
                     **times, **fields)  # fmt: skip


# --- the rule ----------------------------------------------------------------------------------------------


def test_silence_counts_from_the_last_heartbeat_else_the_start_else_the_creation() -> None:
    assert last_sign_of_life(running({"created_at": 90, "started_at": 60, "heartbeat_at": 5})) == NOW - timedelta(0, 5)
    assert last_sign_of_life(running({"created_at": 90, "started_at": 60})) == NOW - timedelta(seconds=60)
    assert last_sign_of_life(running({"created_at": 90})) == NOW - timedelta(seconds=90)


@pytest.mark.parametrize(
    ("ago_s", "silent"),
    [
        ({"started_at": 600, "heartbeat_at": 299}, False),
        ({"started_at": 600, "heartbeat_at": 300}, True),
        ({"started_at": 600, "heartbeat_at": 3600}, True),
        # Started a moment ago, no heartbeat yet: the start counts, not the creation an hour ago.
        ({"created_at": 3600, "started_at": 1}, False),
        ({"created_at": 3600}, True),
    ],
)
def test_a_running_job_is_silent_once_its_runner_said_nothing_for_the_limit(
    ago_s: dict[str, float], silent: bool
) -> None:
    assert runner_silent(running(ago_s), now=NOW, after_s=300) is silent


@pytest.mark.parametrize("status", [JobStatus.PENDING, JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED])
def test_only_a_running_job_can_be_silent(status: JobStatus) -> None:
    assert not runner_silent(running({"heartbeat_at": 3600}, status=status), now=NOW, after_s=300)


def test_both_verdicts_fail_the_job_and_keep_who_ran_it_and_when() -> None:
    before = running({"started_at": 900, "heartbeat_at": 600}, attempts=2)
    vanished = fail_vanished_runner(before.model_copy(deep=True), now=NOW)
    silent = fail_silent_runner(before.model_copy(deep=True), now=NOW, after_s=300)
    assert vanished.error == "runner lost: runner runner-a vanished; 2 attempts made"
    assert silent.error == "runner lost: runner runner-a stopped reporting for over 300 s"
    for failed in (vanished, silent):
        assert (failed.status, failed.finished_at) == (JobStatus.FAILED, NOW)
        assert failed.model_dump(exclude=CHANGED) == before.model_dump(exclude=CHANGED)
        assert failed.duration_s == 900


# --- the runner, claiming a job whose message came back ------------------------------------------------------


def claim(record: JobRecord, tmp_path: Path) -> JobRecord | None:
    settings = RunnerSettings(runner_id="runner-b", work_dir=tmp_path, heartbeat_stale_s=15, max_attempts=2)
    runner = Runner(settings, jobs=None, s3=None, stop=asyncio.Event())  # type: ignore[arg-type]  # _claim uses neither
    message = JobMessage(submission_id=record.submission_id, user=record.user, queued_at=record.created_at)
    return runner._claim(record, message)


def test_the_runner_leaves_a_job_whose_runner_is_alive(tmp_path: Path) -> None:
    assert claim(running({"heartbeat_at": 1}, now=utcnow()), tmp_path) is None


def test_the_runner_takes_over_a_silent_job_with_attempts_left(tmp_path: Path) -> None:
    claimed = claim(running({"started_at": 120, "heartbeat_at": 60}, now=utcnow()), tmp_path)
    assert claimed is not None
    assert (claimed.status, claimed.runner, claimed.attempts) == (JobStatus.RUNNING, "runner-b", 2)


def test_the_runner_fails_a_silent_job_with_no_attempt_left(tmp_path: Path) -> None:
    before = running({"started_at": 120, "heartbeat_at": 60}, now=utcnow(), attempts=2)
    failed = claim(before.model_copy(deep=True), tmp_path)
    assert failed is not None and failed.error == "runner lost: runner runner-a vanished; 2 attempts made"
    assert failed.model_dump(exclude=CHANGED) == before.model_dump(exclude=CHANGED)


# --- the dispatcher's sweep, for when no runner is left --------------------------------------------------------


async def test_the_dispatcher_fails_only_the_silent_jobs_and_keeps_their_history(nc: NATS) -> None:
    settings = DispatcherSettings(**NatsSettings().model_dump(), runner_lost_after_s=300)
    js = nc.jetstream()
    jobs = JobStore(await js.key_value(settings.jobs_kv_bucket))
    now = utcnow()
    records = [
        running({"started_at": 900, "heartbeat_at": 600}, now=now, sid="silent"),
        running({"started_at": 900, "heartbeat_at": 2}, now=now, sid="alive"),
        running({"created_at": 3600, "started_at": 2}, now=now, sid="starting"),  # no heartbeat yet
        running({"created_at": 3600, "started_at": 2}, now=now, sid="restarted"),
    ]
    view = JobView()
    for record in records:
        assert await jobs.create(record)
        view.put(record)
    # The view lags the store: it still shows the silent run before this one started.
    view.put(running({"created_at": 3600, "started_at": 900, "heartbeat_at": 600}, now=now, sid="restarted"))
    quotas = QuotaStore(await js.key_value(settings.quotas_kv_bucket))
    tokens = TokenStore(await js.key_value(settings.tokens_kv_bucket))
    releaser = Releaser(settings, js, jobs, quotas, tokens, view)

    await releaser.fail_lost()
    stored = {r.submission_id: r for r in await jobs.list_records("alice")}
    assert {sid: r.status for sid, r in stored.items()} == {
        "silent": JobStatus.FAILED, "alive": JobStatus.RUNNING, "starting": JobStatus.RUNNING,
        "restarted": JobStatus.RUNNING,  # judged again on the stored record, by the same rule
    }  # fmt: skip
    assert stored["silent"].error == "runner lost: runner runner-a stopped reporting for over 300 s"
    assert stored["silent"].model_dump(exclude=CHANGED) == records[0].model_dump(exclude=CHANGED)
