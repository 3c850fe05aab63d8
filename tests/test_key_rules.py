"""One home for a submission's keys and names (leadersboard/keys.py): the NATS KV key both stores write, the
filters that list them, and the user-name and id rules, which agree with the models' validation."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from nats.aio.client import Client as NATS
from pydantic import ValidationError

from leadersboard import keys
from leadersboard.issued import IssuedStore
from leadersboard.jobs import JobStore
from leadersboard.models.base import utcnow
from leadersboard.models.records import JobRecord, TokenRecord
from leadersboard.models.submission import FileSpec, Manifest
from leadersboard.nats_io import kv_keys
from leadersboard.settings import NatsSettings


def test_a_submissions_kv_key_is_user_dot_id_and_gives_its_id_back() -> None:
    key = keys.kv_submission_key("alice", "0123abcd")
    assert key == "alice.0123abcd"
    assert keys.kv_submission_id(key) == "0123abcd"


def test_the_kv_filters_select_one_user_one_id_or_everything() -> None:
    assert keys.kv_submissions(user="alice") == "alice.*"
    assert keys.kv_submissions(submission_id="0123abcd") == "*.0123abcd"
    assert keys.kv_submissions() == "*.*"


async def test_the_job_and_issued_stores_write_the_same_key(nc: NATS) -> None:
    js, settings = nc.jetstream(), NatsSettings()
    jobs_kv, issued_kv = await js.key_value(settings.jobs_kv_bucket), await js.key_value(settings.issued_kv_bucket)
    sid = keys.new_submission_id()
    record = JobRecord(submission_id=sid, user="alice", entrypoint="main.py", config="c.yaml", created_at=utcnow())
    assert await JobStore(jobs_kv).create(record)
    await IssuedStore(issued_kv).note("alice", sid, uploads_expire_in_s=60)
    assert await kv_keys(jobs_kv) == await kv_keys(issued_kv) == [keys.kv_submission_key("alice", sid)]
    assert await JobStore(jobs_kv).find(sid) == record
    assert await JobStore(jobs_kv).list_records("alice") == [record]
    assert await JobStore(jobs_kv).list_records() == [record]


NAMES = ["alice", "a", "bob-2", "c_d", "0day", "x" * 63, "x" * 64, "Alice", "-bob", "a.b", "a/b", "a*", "", "alice\n"]
IDS = ["0123abcd", "a" * 40, "a" * 41, "0123abc", "0123ABCD", "0123abc-", "0123abcd\n", ""]


def model_accepts(build: Callable[[], object]) -> bool:
    try:
        build()
    except ValidationError:
        return False
    return True


@pytest.mark.parametrize("name", NAMES)
def test_a_user_name_is_valid_exactly_when_the_models_accept_it(name: str) -> None:
    accepted = model_accepts(lambda: TokenRecord(token_id="t", user=name, created_at=utcnow()))
    assert keys.is_user_name(name) is accepted


def manifest(submission_id: str) -> Manifest:
    files = [FileSpec(path="main.py", size=1), FileSpec(path="c.yaml", size=1)]
    return Manifest(submission_id=submission_id, user="alice", entrypoint="main.py", config="c.yaml", files=files,
                    created_at=utcnow())  # fmt: skip


@pytest.mark.parametrize("submission_id", IDS)
def test_a_submission_id_is_valid_exactly_when_a_manifest_accepts_it(submission_id: str) -> None:
    assert keys.is_submission_id(submission_id) is model_accepts(lambda: manifest(submission_id))
