"""Chaos: 100 submissions from 5 users while services are SIGKILLed and restarted at random.

Run apart with `pytest -m chaos`; `make test` runs it too. It prints the counts it checks.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from mlflow.tracking import MlflowClient

from leadersboard.client import ApiError, Client, collect_files
from leadersboard.client_errors import Unreachable
from leadersboard.models.records import JobRecord, JobStatus
from leadersboard.s3 import make_client
from tests.stack_fixtures import max_overlap, mlflow_admin_url, running_stack, write_submission
from tools.stack.up import Stack

pytestmark = [pytest.mark.slow, pytest.mark.chaos, pytest.mark.timeout(1500)]

USERS = [f"chaos{n}" for n in range(5)]
JOBS_PER_USER = 20
PER_HOUR, CONCURRENT = 25, 2  # a create whose answer a killed ingest lost still counts
VICTIMS = ["dispatcher", "runner", "runner-1", "bridge", "ingest", "nats-server"]
JOB = """
import random, time
time.sleep(random.uniform(0, 0.5))
(out / "metrics.json").write_text('{"metrics": {"image_AUROC": 0.5}}')
"""
T = TypeVar("T")


def patiently(call: Callable[[], T], timeout_s: float = 180) -> T:
    """Retry through the outages the test itself causes (connection refused, 503)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return call()
        except (Unreachable, ApiError) as exc:
            if isinstance(exc, ApiError) and exc.status < 500 and exc.status != 404:
                raise
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def submit_all(client: Client, folder: Path, out: list[str]) -> None:
    """Create, then upload through the same URLs until it goes through (a retried create costs a slot)."""
    for n in range(JOBS_PER_USER):
        files = collect_files([write_submission(folder / str(n), JOB)])
        created = patiently(lambda f=files: client.create_submission(f))  # type: ignore[misc]
        patiently(lambda c=created, f=files: client.upload(c, f))  # type: ignore[misc]
        out.append(created.submission_id)


def make_chaos(stack: Stack, stop: threading.Event, log: list[str]) -> None:
    rng = random.Random(7)
    store_bounced = False
    while not stop.is_set():
        time.sleep(rng.uniform(1.0, 3.0))
        if not store_bounced and len(log) >= 4:
            stack.process("seaweedfs").stop()
            time.sleep(2)
            stack.restart("seaweedfs").wait_ready(60)
            log.append("seaweedfs stopped and restarted")
            store_bounced = True
            continue
        victim = rng.choice(VICTIMS)
        stack.process(victim).kill()
        time.sleep(rng.uniform(0.2, 1.5))
        stack.restart(victim)
        log.append(f"{victim} killed")


def test_nothing_is_lost_or_doubled_when_everything_crashes(tmp_path: Path) -> None:
    overrides = {
        "dispatcher": {"runner_lost_after_s": 90, "sweep_interval_s": 1},
        "runner": {"ack_wait_s": 8, "heartbeat_interval_s": 1, "heartbeat_stale_s": 5, "max_attempts": 5},
    }
    with running_stack(tmp_path / "stack", runners=2, overrides=overrides) as (stack, info):
        api = info["urls"]["ingest"]
        with Client(api, info["admin_token"]) as admin:
            admin.set_default_quota(per_hour=PER_HOUR, concurrent=CONCURRENT)
            tokens = {user: admin.create_token(user)["token"] for user in USERS}
        clients = {user: Client(api, token) for user, token in tokens.items()}
        submitted: dict[str, list[str]] = {user: [] for user in USERS}
        stop, chaos_log = threading.Event(), []
        chaos = threading.Thread(target=make_chaos, args=(stack, stop, chaos_log))
        chaos.start()
        submitters = [threading.Thread(target=submit_all, args=(clients[u], tmp_path / u, submitted[u])) for u in USERS]
        for thread in submitters:
            thread.start()
        for thread in submitters:
            thread.join()
        time.sleep(10)  # more chaos while the last jobs run
        stop.set()
        chaos.join()
        for process in stack.processes:
            if not process.alive:
                stack.restart(process.name)

        records = {
            user: [patiently(lambda c=clients[user], s=sid: c.wait(s, timeout_s=600, poll_s=1)) for sid in sids]  # type: ignore[misc]
            for user, sids in submitted.items()
        }
        _check(stack, info, records, chaos_log)


def _check(stack: Stack, info: dict[str, Any], records: dict[str, list[JobRecord]], chaos_log: list[str]) -> None:
    everything = [r for rs in records.values() for r in rs]
    by_status = {s.value: sum(r.status is s for r in everything) for s in JobStatus}
    print(f"\nchaos: {'; '.join(chaos_log)}")
    print(f"submissions: {len(everything)}; by status: {by_status}")
    assert len(everything) == len(USERS) * JOBS_PER_USER
    assert len({r.submission_id for r in everything}) == len(everything)
    assert by_status["pending"] == by_status["running"] == 0
    assert by_status["completed"] == len(everything), [r.error for r in everything if r.error]

    mlflow = MlflowClient(mlflow_admin_url(info))
    experiments = [e.experiment_id for e in mlflow.search_experiments()]
    runs = mlflow.search_runs(experiments, max_results=1000, filter_string="attributes.status = 'FINISHED'")
    run_ids_by_submission: dict[str, list[str]] = {}
    for run in runs:
        run_ids_by_submission.setdefault(run.data.tags.get("submission_id", ""), []).append(run.info.run_id)
    doubled = {sid: ids for sid, ids in run_ids_by_submission.items() if len(ids) > 1}
    print(f"MLflow runs: {len(runs)}; submissions with more than one run: {len(doubled)}")
    assert not doubled
    assert all(len(run_ids_by_submission.get(r.submission_id, [])) == 1 for r in everything)

    s3 = make_client(stack.s3)
    missing = [
        r.submission_id
        for r in everything
        if "Contents" not in s3.list_objects_v2(Bucket=stack.s3.bucket, Prefix=f"results/{r.user}/{r.submission_id}/")
    ]
    print(f"completed jobs without results in the store: {len(missing)}")
    assert missing == []

    for user, user_records in records.items():
        peak = max_overlap(user_records)
        print(f"{user}: {len(user_records)} accepted (limit {PER_HOUR}/h), {peak} running at most (limit {CONCURRENT})")
        assert len(user_records) <= PER_HOUR
        assert peak <= CONCURRENT
