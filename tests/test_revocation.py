"""Revoking a token stops what it started; disabling a user stops the user.

The dispatcher's part against real NATS and SeaweedFS; the whole path (the admin API, presigned uploads,
the dispatcher, the sandboxed runner) through one real local stack for the module.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from nats.aio.client import Client as NATS

from dispatcher.intake import TOKEN_REVOKED
from dispatcher.service import Dispatcher
from leadersboard import keys
from leadersboard.client import ApiError, Client, collect_files
from leadersboard.models.base import utcnow
from leadersboard.models.records import JobRecord, JobStatus
from leadersboard.settings import NatsSettings, S3Settings
from leadersboard.tokens import TokenStore, UserDisabledError
from tests.reference import minio_event
from tests.stack_fixtures import client_for, write_submission
from tests.test_cli import as_json, ok
from tests.test_cli import run as run_cli
from tests.test_dead_letter import dispatcher_settings, put_submission
from tests.test_dispatcher import make_dispatcher, queued_jobs
from tools.stack.up import Stack

QUICK = '(out / "metrics.json").write_text(json.dumps({"params": {}, "metrics": {"score": 1.0}}))\n'
SLEEPER = "import time\ntime.sleep(600)\n"
WAIT_S = 180.0


# --- the dispatcher and the token store, on real NATS and SeaweedFS ---------------------------------------------


@pytest.fixture
async def dispatcher(nc: NATS, nats_settings: NatsSettings, s3_settings: S3Settings) -> AsyncIterator[Dispatcher]:
    dispatcher = await make_dispatcher(dispatcher_settings(nats_settings, s3_settings), nc.jetstream())
    view = await dispatcher.start_view()
    yield dispatcher
    view.cancel()


async def dispatched(dispatcher: Dispatcher, user: str, token_id: str | None) -> JobRecord:
    sid = put_submission(dispatcher.s3, dispatcher.settings.bucket, user, token_id=token_id)
    await dispatcher.handle_event(minio_event(dispatcher.settings.bucket, keys.manifest_key(user, sid)))
    record = await dispatcher.jobs.get(user, sid)
    assert record is not None
    return record


async def test_the_dispatcher_fails_a_submission_whose_token_was_revoked(dispatcher: Dispatcher) -> None:
    tokens = dispatcher.tokens
    _, valid = await tokens.create("alice")
    _, revoked = await tokens.create("alice")
    await tokens.revoke(revoked.token_id)
    _, expired = await tokens.create("alice", expires_at=utcnow() - timedelta(seconds=1))
    _, bobs = await tokens.create("bob")
    outcomes = {
        "valid": await dispatched(dispatcher, "alice", valid.token_id),
        "revoked": await dispatched(dispatcher, "alice", revoked.token_id),
        "unknown": await dispatched(dispatcher, "alice", "0123456789ab"),
        "another user's": await dispatched(dispatcher, "alice", bobs.token_id),
        "the start of a valid id": await dispatched(dispatcher, "alice", valid.token_id[:8]),
        # Its upload URLs were granted while it was valid: expiry is no withdrawal of trust.
        "expired": await dispatched(dispatcher, "alice", expired.token_id),
        "issued before tokens were recorded": await dispatched(dispatcher, "alice", None),
    }
    assert {name: (r.status, r.error) for name, r in outcomes.items()} == {
        "valid": (JobStatus.PENDING, None),
        "revoked": (JobStatus.FAILED, TOKEN_REVOKED),
        "unknown": (JobStatus.FAILED, TOKEN_REVOKED),
        "another user's": (JobStatus.FAILED, TOKEN_REVOKED),
        "the start of a valid id": (JobStatus.FAILED, TOKEN_REVOKED),
        "expired": (JobStatus.PENDING, None),
        "issued before tokens were recorded": (JobStatus.PENDING, None),
    }


async def test_a_job_of_a_disabled_user_is_cancelled_instead_of_released(
    dispatcher: Dispatcher, nc: NATS, nats_settings: NatsSettings
) -> None:
    # Recorded while the admin's `user disable` was cancelling the user's other jobs: it must not run either.
    record = await dispatched(dispatcher, "alice", None)
    await dispatcher.tokens.disable_user("alice", by="root")
    await dispatcher.releaser.release_due()
    after = await dispatcher.jobs.get("alice", record.submission_id)
    assert after is not None and (after.status, after.error) == (
        JobStatus.CANCELLED,
        "cancelled by root: user alice was disabled",
    )
    assert await queued_jobs(nc, nats_settings) == []


async def test_a_disabled_user_gets_no_token_until_enabled(nc: NATS) -> None:
    tokens = TokenStore(await nc.jetstream().key_value(NatsSettings().tokens_kv_bucket))
    first, _ = await tokens.create("carol")
    await tokens.create("bob")
    revoked = await tokens.disable_user("carol", by="root")
    assert [r.user for r in revoked] == ["carol"]
    assert await tokens.verify(first) is None
    with pytest.raises(UserDisabledError, match="enable it first"):
        await tokens.create("carol")
    # The refused token was stored before the check (see TokenStore.create): it must be revoked too.
    assert all(r.revoked for r in await tokens.list_records() if r.user == "carol")
    assert await tokens.enable_user("carol")
    again, _ = await tokens.create("carol")
    assert await tokens.verify(again) is not None
    assert await tokens.verify(first) is None  # enabling does not bring old tokens back


async def test_a_token_is_found_by_its_id_or_the_start_of_it(nc: NATS) -> None:
    tokens = TokenStore(await nc.jetstream().key_value(NatsSettings().tokens_kv_bucket))
    records = [(await tokens.create(f"user{n}"))[1] for n in range(20)]
    for record in records:
        assert (await tokens.find(record.token_id) or ("", None))[1] == record
        assert (await tokens.find(record.token_id[:8]) or ("", None))[1] == record
    for bad in ("0123456789ab", "0123", "*", "ids.>", "users.alice"):
        assert await tokens.find(bad) is None


# --- through the whole stack ------------------------------------------------------------------------------------


needs_bwrap = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed")


def user_client(info: dict[str, Any], admin: Client, user: str) -> tuple[Client, str]:
    created = admin.create_token(user)
    return Client(info["urls"]["ingest"], created["token"]), created["token_id"]


def wait_for(client: Client, sid: str, status: JobStatus) -> JobRecord:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        try:
            record = client.get(sid)
        except ApiError as exc:
            if exc.status != 404:
                raise
        else:
            if record.status is status:
                return record
            assert not record.status.terminal, f"{sid} ended {record.status}: {record.error}"
        time.sleep(0.5)
    raise AssertionError(f"{sid} did not become {status} within {WAIT_S:.0f} s")


@pytest.mark.slow
@needs_bwrap
def test_a_token_revoked_before_the_upload_finished_starts_nothing(
    stack: tuple[Stack, dict[str, Any]], admin: Client, tmp_path: Path
) -> None:
    info = stack[1]
    files = collect_files([write_submission(tmp_path / "quick", QUICK)])
    carol, token_id = user_client(info, admin, "carol")
    with carol:
        created = carol.create_submission(files)
        admin.revoke_token(token_id)
        carol.upload(created, files)  # presigned URLs: the store does not ask for the API token
    record = admin.wait(created.submission_id, timeout_s=WAIT_S)
    assert (record.status, record.error) == (JobStatus.FAILED, TOKEN_REVOKED)
    dave, _ = user_client(info, admin, "dave")
    with dave:
        done = dave.wait(dave.submit([tmp_path / "quick"]), timeout_s=WAIT_S)
    assert done.status is JobStatus.COMPLETED, done.error


@pytest.mark.slow
@needs_bwrap
def test_disabling_a_user_stops_its_jobs_and_tokens_and_no_one_elses(
    stack: tuple[Stack, dict[str, Any]], admin: Client, tmp_path: Path
) -> None:
    info = stack[1]
    sleeper = write_submission(tmp_path / "sleeper", SLEEPER)
    quick = write_submission(tmp_path / "quick", QUICK)
    admin.set_user_quota("erin", concurrent=1)  # the second job waits as pending
    erin, _ = user_client(info, admin, "erin")
    erin_again, _ = user_client(info, admin, "erin")
    with erin, erin_again, client_for(info) as demo:
        running = erin.submit([sleeper])
        wait_for(erin, running, JobStatus.RUNNING)
        pending = erin.submit([sleeper])
        wait_for(erin, pending, JobStatus.PENDING)
        # The stack has one runner, busy with erin's sleeper: the demo job completes only once it is stopped.
        other = demo.submit([quick])

        state = admin.disable_user("erin")

        assert state["disabled"] and state["disabled_by"] == "admin"
        assert sorted(state["cancelled"]) == sorted([running, pending])
        assert len(state["revoked_tokens"]) == 2
        for sid in (running, pending):
            record = admin.get(sid)
            assert (record.status, record.error) == (JobStatus.CANCELLED, "cancelled by admin: user erin was disabled")
        for client in (erin, erin_again):
            with pytest.raises(ApiError) as refused:
                client.whoami()
            assert refused.value.status == 401
        with pytest.raises(ApiError) as conflict:
            admin.create_token("erin")
        assert conflict.value.status == 409 and "admin user enable erin" in conflict.value.message
        done = demo.wait(other, timeout_s=WAIT_S)
        assert done.status is JobStatus.COMPLETED, done.error
        assert admin.get(running).status is JobStatus.CANCELLED  # the runner did not overwrite it on the way out

    admin.enable_user("erin")
    fresh, _ = user_client(info, admin, "erin")
    with fresh:
        assert fresh.whoami()["user"] == "erin"


@pytest.mark.slow
def test_the_cli_disables_and_enables_a_user(
    stack: tuple[Stack, dict[str, Any]], admin: Client, tmp_path: Path
) -> None:
    info = stack[1]
    frank, _ = user_client(info, admin, "frank")

    def as_admin(*args: str) -> subprocess.CompletedProcess[str]:
        return run_cli("admin", *args, info=info, home=tmp_path / "xdg", token="admin_token")

    disabled = as_json(as_admin("user", "disable", "frank", "--json"))
    assert disabled["disabled"] and len(disabled["revoked_tokens"]) == 1
    refused = as_admin("token", "create", "--user", "frank")
    assert refused.returncode != 0 and "leadersboard admin user enable frank" in refused.stderr
    enabled = ok(as_admin("user", "enable", "frank"))
    assert "enabled frank" in enabled.stderr and "revoked tokens stay revoked" in enabled.stderr
    ok(as_admin("token", "create", "--user", "frank"))
    with frank, pytest.raises(ApiError) as still_revoked:
        frank.whoami()
    assert still_revoked.value.status == 401
