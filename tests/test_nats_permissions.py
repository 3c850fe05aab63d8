"""NATS users per service, against a real nats-server run with the config the local stack writes.

Each attack is a real client of the real server: an anonymous connection, a runner reaching for
tokens or quotas, ingest pulling jobs, the events user writing records. The server answers with a
permissions violation (its error reaches the client's error callback). Then each service's own
operations, through the kernel's own stores, still work with nothing but its own user; and a normal
job completes through the real local stack with every process on its own user. The rights around
scoring and the benchmark catalogue: tests/test_nats_permissions_scoring.py.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import nats
import pytest
from nats.js.api import AckPolicy, ConsumerConfig
from pydantic import SecretStr

from leadersboard import nats_io, store_access
from leadersboard.issued import IssuedStore
from leadersboard.jobs import JobStore
from leadersboard.models.queue import JobMessage
from leadersboard.models.records import JobRecord, JobStatus, Quota, QuotaOverride, Role
from leadersboard.nats_permissions import (
    ADMIN,
    DISPATCHER,
    DISPATCHER_CONSUMER,
    EVENTS,
    INGEST,
    RUNNER,
    RUNNER_CONSUMER,
    SCORER,
    USERS,
    inbox_prefix,
)
from leadersboard.quotas import QuotaStore
from leadersboard.settings import settings_env
from leadersboard.tokens import TokenStore, hash_token
from tests.nats_user_fixtures import T, job_record
from tests.stack_fixtures import client_for, write_submission
from tools.stack.services import NatsServer
from tools.stack.up import Secrets, Stack

ROOT = Path(__file__).resolve().parents[1]
WRITE_METRICS = """(out / "metrics.json").write_text(json.dumps({"metrics": {"image_AUROC": 0.5}}))"""


# --- anonymous and wrong credentials -------------------------------------------------------------


@pytest.mark.parametrize(
    "credentials", [{}, {"user": RUNNER, "password": "guessed"}, {"user": "nobody", "password": "x"}]
)
async def test_anonymous_and_unknown_clients_are_refused(users_server: NatsServer, credentials: dict[str, str]) -> None:
    with pytest.raises(nats.errors.Error, match="Authorization Violation"):
        await nats.connect(users_server.url, allow_reconnect=False, max_reconnect_attempts=1, **credentials)


async def test_a_service_with_a_wrong_password_stops_with_a_precise_error(users_server: NatsServer) -> None:
    wrong = users_server.settings(RUNNER).model_copy(update={"nats_password": SecretStr("guessed")})
    with pytest.raises(nats_io.NatsCredentialsError, match=r"refused user 'runner'.*NATS_PASSWORD"):
        await nats_io.connect(wrong, name="runner-test")


@pytest.mark.parametrize(("service", "user"), [("dispatcher", DISPATCHER), ("runner", RUNNER)])
def test_the_compose_health_checks_pass_with_each_services_own_user(
    users_server: NatsServer, service: str, user: str
) -> None:
    """infra/healthcheck.py checks only what the service's user may see (runners: not the events stream)."""
    settings = users_server.settings(user)
    prefix = "LB_DISPATCHER_" if service == "dispatcher" else "LB_RUNNER_"
    env = {**os.environ, **{prefix + k.upper(): v for k, v in settings_env(settings).items()}}
    checked = subprocess.run(
        [sys.executable, str(ROOT / "infra" / "healthcheck.py"), "nats", service],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert checked.returncode == 0, checked.stderr


# --- the runner ----------------------------------------------------------------------------------


async def test_the_runner_cannot_read_or_write_tokens_or_quotas(as_user: Any) -> None:
    admin = await as_user(ADMIN)
    token, _ = await TokenStore(await admin.bind(T.tokens_kv_bucket)).create("victim")
    digest = hash_token(token)
    runner = await as_user(RUNNER)

    for bucket, key in [(T.tokens_kv_bucket, digest), (T.quotas_kv_bucket, "default")]:
        stream = f"KV_{bucket}"
        assert stream.lower() in await runner.denied_request(f"$JS.API.STREAM.INFO.{stream}")
        assert stream.lower() in await runner.denied_request(f"$JS.API.DIRECT.GET.{stream}.$KV.{bucket}.{key}")
        get = json.dumps({"last_by_subj": f"$KV.{bucket}.{key}"}).encode()
        assert stream.lower() in await runner.denied_request(f"$JS.API.STREAM.MSG.GET.{stream}", get)
        assert stream.lower() in await runner.denied_request(f"$JS.API.CONSUMER.CREATE.{stream}")
        # A write: make itself admin, or lift its own quota.
        forged = b'{"role": "admin"}'
        assert f"$KV.{bucket}".lower() in await runner.denied_request(f"$KV.{bucket}.{key}", forged)
        # Nor may it listen to the bucket's subjects or to anyone else's replies.
        for subject in (f"$KV.{bucket}.>", "_INBOX.>", f"{inbox_prefix(INGEST)}.>", ">"):
            await runner.nc.subscribe(subject)
            assert "subscription" in await runner.violation()

    record = await TokenStore(await admin.bind(T.tokens_kv_bucket)).verify(token)
    assert record is not None and record.user == "victim" and record.role is Role.USER


async def test_the_runner_cannot_publish_events_declare_streams_or_delete_the_queue(as_user: Any) -> None:
    runner = await as_user(RUNNER)
    await runner.nc.publish(T.events_subject, b"{}")
    assert T.events_subject.lower() in await runner.violation()
    assert "stream.create" in await runner.denied_request("$JS.API.STREAM.CREATE.LB_EVIL", b"{}")
    assert T.jobs_stream.lower() in await runner.denied_request(f"$JS.API.STREAM.DELETE.{T.jobs_stream}")
    assert T.jobs_stream.lower() in await runner.denied_request(f"$JS.API.STREAM.PURGE.{T.jobs_stream}")
    assert T.events_stream.lower() in await runner.denied_request(f"$JS.API.CONSUMER.CREATE.{T.events_stream}.x")


async def test_the_runner_takes_jobs_and_updates_their_records(as_user: Any) -> None:
    admin, runner = await as_user(ADMIN), await as_user(RUNNER)
    await JobStore(await admin.bind(T.jobs_kv_bucket)).create(job_record("alice", "job-r1"))
    await admin.js.publish(T.jobs_subject, JobMessage(submission_id="job-r1", user="alice").model_dump_json().encode())

    jobs = JobStore(await runner.bind(T.jobs_kv_bucket))
    pull = await runner.js.pull_subscribe(
        T.jobs_subject,
        durable=RUNNER_CONSUMER,
        stream=T.jobs_stream,
        config=ConsumerConfig(ack_policy=AckPolicy.EXPLICIT),
    )
    [message] = await pull.fetch(1, timeout=5)
    job = JobMessage.model_validate_json(message.data)

    def claim(current: JobRecord) -> JobRecord:
        current.status = JobStatus.RUNNING
        return current

    assert await jobs.update(job.user, job.submission_id, claim) is not None
    await message.in_progress()
    await message.ack()
    stored = await jobs.get("alice", "job-r1")
    assert stored is not None and stored.status is JobStatus.RUNNING
    await pull.unsubscribe()
    assert runner.violations.empty()


async def test_the_runner_cannot_redirect_records_or_jobs_to_another_subject(as_user: Any) -> None:
    """A push consumer delivers wherever its creator says, unchecked by nats-server 2.15 (nats-io/nats-server#8274):
    a runner must not be able to make one, or it could feed job records into the events stream."""
    admin, runner = await as_user(ADMIN), await as_user(RUNNER)
    pull = await runner.js.pull_subscribe(T.jobs_subject, durable=RUNNER_CONSUMER, stream=T.jobs_stream)
    await pull.unsubscribe()
    events_before = (await admin.js.stream_info(T.events_stream)).state.messages
    push = {"deliver_subject": T.events_subject, "deliver_policy": "all", "ack_policy": "none"}
    for stream, name in [(f"KV_{T.jobs_kv_bucket}", "leak"), (T.jobs_stream, "leak")]:
        request = json.dumps({"stream_name": stream, "config": {**push, "durable_name": name}}).encode()
        assert stream.lower() in await runner.denied_request(f"$JS.API.CONSUMER.CREATE.{stream}.{name}", request)
        assert stream.lower() in await runner.denied_request(f"$JS.API.CONSUMER.CREATE.{stream}", request)
    # Its own durable is allowed, but the server refuses to turn the pull consumer into a push one.
    own = {"stream_name": T.jobs_stream, "config": {**push, "durable_name": RUNNER_CONSUMER}}
    answer = await runner.nc.request(
        f"$JS.API.CONSUMER.CREATE.{T.jobs_stream}.{RUNNER_CONSUMER}", json.dumps(own).encode(), timeout=5
    )
    assert "error" in json.loads(answer.data), answer.data
    assert (await admin.js.consumer_info(T.jobs_stream, RUNNER_CONSUMER)).config.deliver_subject is None
    assert (await admin.js.stream_info(T.events_stream)).state.messages == events_before


# --- ingest --------------------------------------------------------------------------------------


async def test_ingest_cannot_consume_the_work_queue(as_user: Any) -> None:
    ingest = await as_user(INGEST)
    stream = T.jobs_stream
    assert stream.lower() in await ingest.denied_request(f"$JS.API.CONSUMER.CREATE.{stream}.steal", b"{}")
    assert stream.lower() in await ingest.denied_request(f"$JS.API.CONSUMER.DURABLE.CREATE.{stream}.steal", b"{}")
    assert stream.lower() in await ingest.denied_request(f"$JS.API.CONSUMER.MSG.NEXT.{stream}.runners", b'{"batch": 1}')
    await ingest.nc.publish(T.jobs_subject, b"{}")
    assert T.jobs_subject.lower() in await ingest.violation()


async def test_ingests_own_operations_work(as_user: Any) -> None:
    ingest = await as_user(INGEST)
    tokens = TokenStore(await ingest.bind(T.tokens_kv_bucket))
    token, record = await tokens.create("carol")
    assert (await tokens.verify(token)) is not None
    assert record.token_id in {r.token_id for r in await tokens.list_records()}
    assert (await tokens.revoke(record.token_id)) is not None
    quotas = QuotaStore(await ingest.bind(T.quotas_kv_bucket))
    await quotas.set_default(Quota())
    await quotas.set_override("carol", QuotaOverride(per_hour=3))
    assert "carol" in await quotas.overrides()
    assert (await quotas.reserve("carol")).allowed
    issued = IssuedStore(await ingest.bind(T.issued_kv_bucket))
    await issued.note("carol", "sub-i1", uploads_expire_in_s=60)
    assert "sub-i1" in {n.submission_id for n in await issued.older_than(0)}
    jobs = JobStore(await ingest.bind(T.jobs_kv_bucket))
    await JobStore(await (await as_user(ADMIN)).bind(T.jobs_kv_bucket)).create(job_record("carol", "sub-i2"))

    def cancel(current: JobRecord) -> JobRecord:
        current.status = JobStatus.CANCELLED
        return current

    assert (await jobs.update("carol", "sub-i2", cancel)) is not None
    assert (await jobs.find("sub-i2")) is not None
    assert ingest.violations.empty()


# --- the dispatcher ------------------------------------------------------------------------------


async def test_the_dispatchers_own_operations_work(as_user: Any) -> None:
    events, dispatcher = await as_user(EVENTS), await as_user(DISPATCHER)
    await events.js.publish(T.events_subject, b'{"EventName": "s3:ObjectCreated:Put"}')
    pull = await dispatcher.js.pull_subscribe(
        T.events_subject, durable=DISPATCHER_CONSUMER, stream=T.events_stream,
        config=ConsumerConfig(ack_policy=AckPolicy.EXPLICIT),
    )  # fmt: skip
    [message] = await pull.fetch(1, timeout=5)
    await message.nak(delay=0.1)
    [message] = await pull.fetch(1, timeout=5)
    await message.ack()
    await pull.unsubscribe()

    jobs = JobStore(await dispatcher.bind(T.jobs_kv_bucket))
    assert await jobs.create(job_record("dave", "sub-d1"))
    assert [r.submission_id for r in await jobs.list_records("dave")] == ["sub-d1"]
    await dispatcher.js.publish(
        T.jobs_subject, JobMessage(submission_id="sub-d1", user="dave").model_dump_json().encode()
    )
    assert (await QuotaStore(await dispatcher.bind(T.quotas_kv_bucket)).effective("dave")).per_hour >= 0
    await QuotaStore(await dispatcher.bind(T.quotas_kv_bucket)).overrides()
    issued = IssuedStore(await dispatcher.bind(T.issued_kv_bucket))
    await issued.older_than(0)
    await issued.forget("dave", "sub-d1")
    tokens = await dispatcher.bind(T.tokens_kv_bucket)
    assert await nats_io.kv_read(tokens, "no-such-digest") is None  # revocation checks read tokens
    assert dispatcher.violations.empty()


async def test_the_dispatcher_cannot_write_tokens_or_quotas(as_user: Any) -> None:
    dispatcher = await as_user(DISPATCHER)
    for bucket in (T.tokens_kv_bucket, T.quotas_kv_bucket, T.benchmarks_kv_bucket):
        assert f"$KV.{bucket}".lower() in await dispatcher.denied_request(f"$KV.{bucket}.default", b"{}")
    # Benchmarks and scoring are none of its business: it copies a manifest's benchmark fields, nothing more.
    stream = f"KV_{T.benchmarks_kv_bucket}"
    assert stream.lower() in await dispatcher.denied_request(f"$JS.API.STREAM.INFO.{stream}")
    await dispatcher.nc.publish(T.scoring_subject, b"{}")
    assert T.scoring_subject.lower() in await dispatcher.violation()


# --- the events publisher (the SeaweedFS bridge, MinIO's notifier) --------------------------------


async def test_the_events_user_can_only_publish_events(as_user: Any) -> None:
    events = await as_user(EVENTS)
    ack = await events.js.publish(T.events_subject, b'{"EventName": "s3:ObjectCreated:Put"}')
    assert ack.stream == T.events_stream
    for subject in (T.jobs_subject, f"$KV.{T.jobs_kv_bucket}.alice.x", f"$KV.{T.tokens_kv_bucket}.x"):
        await events.nc.publish(subject, b"{}")
        assert subject.lower() in await events.violation()
    for stream in (T.events_stream, f"KV_{T.jobs_kv_bucket}", f"KV_{T.tokens_kv_bucket}"):
        assert stream.lower() in await events.denied_request(f"$JS.API.STREAM.INFO.{stream}")
        assert stream.lower() in await events.denied_request(f"$JS.API.CONSUMER.CREATE.{stream}", b"{}")
    await events.nc.subscribe(f"{inbox_prefix(RUNNER)}.>")
    assert "subscription" in await events.violation()


# --- the local stack's credentials ---------------------------------------------------------------


def test_a_data_dir_from_before_gets_nats_passwords_once(tmp_path: Path) -> None:
    path = tmp_path / "secrets.json"
    path.write_text(json.dumps({"s3_access_key": "a", "s3_secret_key": "b", "admin_token": "c", "demo_token": "d",
                                "manifest_secret": "e"}))  # fmt: skip
    first = Secrets.load_or_create(path)
    assert set(first.nats_passwords) == set(USERS)
    assert set(first.s3_keys) == set(store_access.SERVICES)  # and each service its own S3 identity
    assert (first.admin_token, first.manifest_secret, first.s3_access_key) == ("c", "e", "a")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = Secrets.load_or_create(path)
    assert (again.nats_passwords, again.s3_keys) == (first.nats_passwords, first.s3_keys)


async def test_the_stacks_nats_refuses_anonymous_clients(stack: tuple[Stack, dict[str, Any]]) -> None:
    _, info = stack
    with pytest.raises(nats.errors.Error, match="Authorization Violation"):
        await nats.connect(info["urls"]["nats"], allow_reconnect=False, max_reconnect_attempts=1)


def test_a_job_completes_with_every_service_on_its_own_nats_user(
    stack: tuple[Stack, dict[str, Any]], tmp_path: Path
) -> None:
    the_stack, info = stack
    expected = {"bridge": EVENTS, "ingest": INGEST, "dispatcher": DISPATCHER, "runner": RUNNER, "scorer": SCORER}
    for name, user in expected.items():
        env = the_stack.process(name).env
        [prefix] = {key.removesuffix("NATS_USER") for key in env if key.endswith("_NATS_USER")}
        assert env[f"{prefix}NATS_USER"] == user, name
        assert env[f"{prefix}NATS_PASSWORD"] == the_stack.secrets.nats_passwords[user], name
    for private in (the_stack.data_dir / "secrets.json", the_stack.data_dir / "nats-server.conf"):
        assert stat.S_IMODE(private.stat().st_mode) == 0o600, private

    with client_for(info) as demo:
        sid = demo.submit([write_submission(tmp_path / "ok", WRITE_METRICS)])
        record = demo.wait(sid, timeout_s=120)
    assert record.status is JobStatus.COMPLETED, record.error
    # Every service did its whole part of the job within its own permissions.
    log = (the_stack.logs / "nats-server.log").read_text()
    assert "Violation" not in log, [line for line in log.splitlines() if "Violation" in line]
