"""Quotas, fairness, cancel and crash safety with every process real: three runners, SIGKILLs, SIGTERMs."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from gpu_runner.cgroups import CgroupHost, host_cgroups, owned_groups, owner_tag
from leadersboard import nats_io
from leadersboard.client import ApiError, Client
from leadersboard.models.records import JobRecord, JobStatus
from tests.stack_fixtures import max_overlap, running_stack, write_submission
from tools.stack.up import Stack

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

SLEEP_THEN_METRICS = """
import time
time.sleep({seconds})
(out / "metrics.json").write_text('{{"metrics": {{"image_AUROC": 0.5}}}}')
"""


# Not the shared stack (tests/stack_fixtures.py): three runners, and short heartbeat, recovery and
# runner-lost times so that losing a runner or the dispatcher shows within a test.
@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, dict[str, Any]]]:
    overrides = {
        "dispatcher": {"runner_lost_after_s": 60, "sweep_interval_s": 1, "recover_after_s": 3, "recover_interval_s": 1},
        "runner": {"ack_wait_s": 6, "heartbeat_interval_s": 1, "heartbeat_stale_s": 4, "shutdown_grace_s": 2},
    }
    with running_stack(tmp_path_factory.mktemp("sched"), runners=3, overrides=overrides) as started:
        yield started


def user(stack: tuple[Stack, dict[str, Any]], admin: Client, name: str, *, concurrent: int) -> Client:
    admin.set_user_quota(name, concurrent=concurrent)
    return Client(stack[1]["urls"]["ingest"], admin.create_token(name)["token"])


def submit_sleeper(client: Client, tmp_path: Path, seconds: float) -> str:
    folder = tmp_path / f"job-{time.monotonic_ns()}"
    return client.submit([write_submission(folder, SLEEP_THEN_METRICS.format(seconds=seconds))])


def wait_until(predicate: Callable[[], bool], timeout_s: float = 60, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def current(client: Client, sid: str) -> JobRecord | None:
    """The record, or None while the manifest's event is still on its way."""
    try:
        return client.get(sid)
    except ApiError as exc:
        if exc.status == 404:
            return None
        raise


def running(client: Client, sid: str, attempt: int | None = None) -> bool:
    record = current(client, sid)
    return record is not None and record.status is JobStatus.RUNNING and attempt in (None, record.attempts)


def wait_all(client: Client, ids: list[str], timeout_s: float = 120) -> list[JobRecord]:
    return [client.wait(sid, timeout_s=timeout_s, poll_s=0.3) for sid in ids]


def test_per_user_concurrency_is_capped_and_jobs_start_oldest_first(stack, admin, tmp_path: Path) -> None:
    alice = user(stack, admin, "alice", concurrent=2)
    ids = [submit_sleeper(alice, tmp_path, 2) for _ in range(5)]
    records = wait_all(alice, ids)
    assert all(r.status is JobStatus.COMPLETED and r.attempts == 1 for r in records)
    assert max_overlap(records) == 2, "three runners were free: only the quota keeps alice at two"
    # Released oldest first. Jobs released in one pass (two slots freed at once) then start on different
    # runners in whichever order those claim them, so the start order is not asserted.
    released = sorted(records, key=lambda r: r.queued_at)  # type: ignore[arg-type,return-value]
    assert [r.submission_id for r in released] == ids
    assert all(r.queued_at <= r.started_at for r in records)  # type: ignore[operator]


def test_a_heavy_user_cannot_starve_another(stack, admin, tmp_path: Path) -> None:
    bob = user(stack, admin, "bob", concurrent=10)
    carol = user(stack, admin, "carol", concurrent=2)
    bob_ids = [submit_sleeper(bob, tmp_path, 1.5) for _ in range(12)]
    wait_until(lambda: sum(r.status is JobStatus.RUNNING for r in bob.jobs()) == 3, what="bob filling the runners")
    carol_record = carol.wait(submit_sleeper(carol, tmp_path, 0), timeout_s=60, poll_s=0.3)
    bob_records = wait_all(bob, bob_ids)
    started_after_carol = [r for r in bob_records if r.started_at > carol_record.started_at]  # type: ignore[operator]
    assert len(started_after_carol) >= 5, "carol waited behind bob's backlog"


def test_cancel_pending_never_runs_and_cancel_running_stops_it(stack, admin, tmp_path: Path) -> None:
    dave = user(stack, admin, "dave", concurrent=1)
    first, second = submit_sleeper(dave, tmp_path, 60), submit_sleeper(dave, tmp_path, 60)
    wait_until(lambda: running(dave, first), what="the first job running")
    wait_until(lambda: current(dave, second) is not None, what="the second job recorded")
    assert dave.cancel(second).status is JobStatus.CANCELLED
    cancelled_at = time.monotonic()
    assert dave.cancel(first).status is JobStatus.CANCELLED
    # The runner stops the process within seconds and is free again: dave's next job completes.
    third = dave.wait(submit_sleeper(dave, tmp_path, 0), timeout_s=60, poll_s=0.3)
    assert third.status is JobStatus.COMPLETED
    assert time.monotonic() - cancelled_at < 30
    assert dave.get(second).started_at is None, "a cancelled pending job must never run"
    # The runner that ran it writes its log's last line once the process is gone (another runner may
    # have finished the third job before that).
    wait_until(lambda: "job cancelled" in dave.logs(first)[0], timeout_s=30, what="the cancelled job's log")


def test_dispatcher_sigkill_at_random_loses_nothing_and_queues_nothing_twice(stack, admin, tmp_path: Path) -> None:
    the_stack, _ = stack
    eve = user(stack, admin, "eve", concurrent=3)
    published_before = asyncio.run(_jobs_published(the_stack))
    ids = []
    for n in range(20):
        ids.append(submit_sleeper(eve, tmp_path, 0))
        if n % 6 == 2:
            time.sleep(random.uniform(0, 0.3))
            the_stack.process("dispatcher").kill()
            the_stack.restart("dispatcher")
    records = wait_all(eve, ids)
    assert [r.status for r in records] == [JobStatus.COMPLETED] * 20
    assert all(r.attempts == 1 for r in records), "a job ran twice"
    assert asyncio.run(_jobs_published(the_stack)) - published_before == 20, "a job was queued twice"


def test_a_lost_runner_is_replaced_once_then_the_job_fails(stack, admin, tmp_path: Path) -> None:
    the_stack, _ = stack
    frank = user(stack, admin, "frank", concurrent=1)
    retried = submit_sleeper(frank, tmp_path, 8)
    _kill_runner_of(the_stack, frank, retried, attempt=1)
    record = frank.wait(retried, timeout_s=90, poll_s=0.3)
    assert record.status is JobStatus.COMPLETED and record.attempts == 2

    doomed = submit_sleeper(frank, tmp_path, 30)
    _kill_runner_of(the_stack, frank, doomed, attempt=1)
    _kill_runner_of(the_stack, frank, doomed, attempt=2)
    record = frank.wait(doomed, timeout_s=90, poll_s=0.3)
    assert record.status is JobStatus.FAILED
    assert record.error is not None and record.error.startswith("runner lost")


def test_sigterm_hands_the_job_back_to_another_runner(stack, admin, tmp_path: Path) -> None:
    the_stack, _ = stack
    grace = user(stack, admin, "grace", concurrent=1)
    sid = submit_sleeper(grace, tmp_path, 10)
    wait_until(lambda: running(grace, sid), what="the job running")
    first_runner = grace.get(sid).runner
    name = _process_name(first_runner)
    the_stack.process(name).stop()  # SIGTERM; the grace period is 2 s, then the job is handed back
    record = grace.wait(sid, timeout_s=90, poll_s=0.3)
    the_stack.restart(name)
    assert record.status is JobStatus.COMPLETED
    assert record.runner != first_runner and record.attempts == 1


def _runner_index(runner_id: str | None) -> int:
    return int((runner_id or "").rsplit("-", 1)[-1])


def _process_name(runner_id: str | None) -> str:
    index = _runner_index(runner_id)
    return "runner" if index == 0 else f"runner-{index}"


def _kill_runner_of(stack: Stack, client: Client, sid: str, *, attempt: int) -> None:
    """SIGKILL the runner mid-job and restart it: its restart removes the job's disk (gpu_runner/leftovers.py)."""
    wait_until(lambda: running(client, sid, attempt), timeout_s=90, what=f"attempt {attempt} running")
    runner_id = client.get(sid).runner
    name = _process_name(runner_id)
    work_dir = stack.data_dir / "runner" / str(_runner_index(runner_id))
    workspace, image = work_dir / sid, work_dir / ".volumes" / f"{sid}.img"
    wait_until(lambda: (workspace / "job.log").exists(), what="the job's workspace")
    stack.process(name).kill()
    left = [path for path in (workspace, image) if path.exists()]
    assert workspace in left
    host = host_cgroups()
    groups = owned_groups(host, owner_tag(work_dir)) if isinstance(host, CgroupHost) else []
    log = stack.process(name).log_path
    lines = [f"removed a leftover of an earlier run: {path}\n" for path in left]
    before = [log.read_text().count(line) for line in lines]  # a runner killed twice logs each time
    stack.restart(name)

    def removed() -> bool:
        text = log.read_text()
        return all(text.count(line) > n for line, n in zip(lines, before, strict=True))

    wait_until(removed, what=f"{name} removing what the killed job left: {left}")
    assert not any(group.exists() for group in groups)


async def _jobs_published(stack: Stack) -> int:
    nc = await nats_io.connect(stack.nats, name="probe")
    try:
        info = await nc.jetstream().stream_info(stack.nats.jobs_stream)
        return int(info.state.last_seq)
    finally:
        await nc.drain()


def test_a_submission_whose_event_is_lost_still_runs(
    stack: tuple[Stack, dict[str, Any]], admin: Client, tmp_path: Path
) -> None:
    the_stack, _ = stack
    client = user(stack, admin, "eventless", concurrent=1)
    the_stack.process("bridge").stop()  # no bucket event can reach the dispatcher now
    try:
        sid = submit_sleeper(client, tmp_path, 0)
        record = client.wait(sid, timeout_s=90)
    finally:
        the_stack.restart("bridge").wait_ready(60)
    assert record.status is JobStatus.COMPLETED, record.error
    dispatcher_log = (the_stack.logs / "dispatcher.log").read_text()
    assert f"no bucket event for {sid} of eventless: dispatching it from the store" in dispatcher_log
