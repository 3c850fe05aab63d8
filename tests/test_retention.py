"""Retention and storage usage (issue 15, part 4; the guide's FAQ Q7), through the real ingest app, nats-server,
SeaweedFS and MLflow.

Before: nothing was ever removed: submitted files, blobs and abandoned multipart uploads stayed until an operator
wrote a MinIO lifecycle rule, and nobody could tell whose data took the space.
Now: admins set how long submitted files (and, if they choose, whole submissions) are kept; the sweep applies it
and aborts abandoned multipart uploads; `admin usage` shows each user's storage."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from aiohttp import web

from ingest.context import SERVICES
from ingest.retention import RETENTION, sweep
from ingest.settings import IngestSettings
from leadersboard import keys
from leadersboard.client import ApiError, Client
from leadersboard.models.base import utcnow
from leadersboard.models.records import JobStatus
from leadersboard.settings import NatsSettings, S3Settings
from tests.api_fixtures import ADMIN_TOKEN, Api, bearer
from tests.housekeeping_fixtures import Store, housekeeping_settings, store
from tests.scorer_fixtures import Mlflow
from tools.cli import main

__all__ = ["store"]  # the fixture, imported for the tests below

pytestmark = pytest.mark.timeout(300)


@pytest.fixture
def settings(nats_settings: NatsSettings, s3_settings: S3Settings, scorer_mlflow: Mlflow) -> IngestSettings:
    return housekeeping_settings(nats_settings, s3_settings, scorer_mlflow)


async def set_policy(api: Api, **policy: int | None) -> None:
    response = await api.put("/api/v1/admin/retention", json=policy, headers=bearer(ADMIN_TOKEN))
    assert response.status == 200, await response.text()


async def run_sweep(api: Api) -> dict[str, object]:
    response = await api.post("/api/v1/admin/retention/sweep", headers=bearer(ADMIN_TOKEN))
    assert response.status == 200, await response.text()
    return dict(await response.json())


async def test_only_admins_set_the_policy_and_a_bad_value_names_its_field(api: Api, alice: str) -> None:
    response = await api.get("/api/v1/admin/retention", headers=bearer(ADMIN_TOKEN))
    body = await response.json()
    assert (body["submission_files_days"], body["results_days"]) == (None, None)  # by default: kept for ever
    response = await api.put("/api/v1/admin/retention", json={"submission_files_days": 7}, headers=bearer(alice))
    assert response.status == 403
    response = await api.put("/api/v1/admin/retention", json={"submission_files_days": 0}, headers=bearer(ADMIN_TOKEN))
    assert response.status == 400
    assert "submission_files_days" in (await response.json())["error"]["message"]
    await set_policy(api, submission_files_days=30)
    body = await (await api.get("/api/v1/admin/retention", headers=bearer(ADMIN_TOKEN))).json()
    assert (body["submission_files_days"], body["results_days"], body["updated_by"]) == (30, None, "admin")


async def test_the_sweep_deletes_old_files_and_keeps_results_runs_and_shared_blobs(api: Api, store: Store) -> None:
    dataset, weights = b"a dataset" * 50, b"weights"
    old_at = utcnow() - timedelta(days=10)
    old = await store.submission(
        "alice", files={"main.py": b"x"}, blobs={"data.zip": dataset, "w.pt": weights}, finished_at=old_at,
        mlflow_run=True, metrics={"image_AUROC": 0.9},
    )  # fmt: skip
    recent = await store.submission("alice", blobs={"data.zip": dataset})
    running = await store.submission("alice", status=JobStatus.RUNNING, files={"main.py": b"y"})
    await set_policy(api, submission_files_days=7)

    report = await run_sweep(api)
    assert report["files_expired"] == [old.submission_id] and report["failures"] == []
    assert store.keys_under(keys.submission_prefix("alice", old.submission_id)) == []
    assert not store.exists(store.blob("alice", weights))
    assert store.exists(store.blob("alice", dataset)), "the recent submission still uses it"
    assert store.keys_under(keys.results_prefix("alice", old.submission_id)), "results are kept"
    kept = await store.jobs.get("alice", old.submission_id)
    assert kept is not None and kept.files_deleted_at is not None and kept.metrics == {"image_AUROC": 0.9}
    assert old.mlflow_run_id and store.client().get_run(old.mlflow_run_id).info.lifecycle_stage == "active"
    for untouched in (recent, running):
        assert store.keys_under(keys.submission_prefix("alice", untouched.submission_id))

    assert (await run_sweep(api))["files_expired"] == [], "a second pass finds nothing more to do"


async def test_results_days_deletes_whole_submissions(api: Api, store: Store) -> None:
    old = await store.submission(
        "alice", files={"main.py": b"x"}, finished_at=utcnow() - timedelta(days=40), mlflow_run=True
    )
    recent = await store.submission("alice", files={"main.py": b"x"}, finished_at=utcnow() - timedelta(days=20))
    await set_policy(api, submission_files_days=30, results_days=35)

    report = await run_sweep(api)
    assert report["submissions_deleted"] == [old.submission_id] and report["files_expired"] == []
    assert await store.jobs.get("alice", old.submission_id) is None
    assert store.keys_under(keys.results_prefix("alice", old.submission_id)) == []
    assert old.mlflow_run_id and store.client().get_run(old.mlflow_run_id).info.lifecycle_stage == "deleted"
    assert await store.jobs.get("alice", recent.submission_id) is not None


async def test_the_sweep_aborts_abandoned_uploads_and_removes_unused_blobs(
    api: Api, app: web.Application, store: Store
) -> None:
    started = store.s3.create_multipart_upload(Bucket=store.bucket, Key=keys.file_key("alice", "0" * 24, "big.bin"))
    used, unused = b"used", b"left behind"
    await store.submission("alice", blobs={"data.zip": used})
    store.s3.put_object(Bucket=store.bucket, Key=store.blob("alice", unused), Body=unused)
    svc, policy = app[SERVICES], app[RETENTION]

    now = await sweep(svc, policy)  # neither is old enough yet
    assert (now.uploads_aborted, now.orphan_blobs_deleted) == (0, 0)
    assert _uploads(store) == [started["UploadId"]]

    later = utcnow() + timedelta(seconds=svc.settings.abandoned_upload_s + 60)
    report = await sweep(svc, policy, now=later)
    assert (report.uploads_aborted, report.orphan_blobs_deleted) == (1, 1)
    assert _uploads(store) == []
    assert store.exists(store.blob("alice", used)) and not store.exists(store.blob("alice", unused))


def _uploads(store: Store) -> list[str]:
    return [u["UploadId"] for u in store.s3.list_multipart_uploads(Bucket=store.bucket).get("Uploads", [])]


async def test_usage_counts_each_users_bytes_and_objects(
    api: Api, store: Store, alice: str, capsys: pytest.CaptureFixture[str]
) -> None:
    await store.submission("alice", files={"main.py": b"x" * 100}, blobs={"data.zip": b"d" * 1000})
    await store.submission("bob", files={"a.py": b"y" * 10, "b.py": b"z" * 20})
    url = str(api.make_url(""))
    with Client(url, ADMIN_TOKEN) as client:
        report = await asyncio.to_thread(client.usage)
    alices, bobs = report.users["alice"], report.users["bob"]
    # Each submission also has its manifest (`{}`, 2 bytes) and a job log (`done\n`, 5 bytes).
    assert (alices.submissions.bytes, alices.submissions.objects) == (102, 2)
    assert (alices.blobs.bytes, alices.blobs.objects) == (1000, 1)
    assert (alices.results.bytes, alices.results.objects) == (5, 1)
    assert (bobs.submissions.bytes, bobs.submissions.objects, bobs.blobs.objects) == (32, 3, 0)

    with Client(url, alice) as client, pytest.raises(ApiError) as refused:
        await asyncio.to_thread(client.usage)
    assert refused.value.status == 403

    with pytest.raises(SystemExit) as done:
        await asyncio.to_thread(main, ["admin", "usage", "--json", "--url", url, "--token", ADMIN_TOKEN])
    assert done.value.code == 0
    assert '"bytes": 1000' in capsys.readouterr().out


async def test_the_cli_changes_one_limit_and_keeps_the_other(api: Api) -> None:
    url = str(api.make_url(""))

    async def cli(*args: str) -> dict[str, object]:
        with pytest.raises(SystemExit) as done:
            await asyncio.to_thread(main, ["admin", "retention", *args, "--url", url, "--token", ADMIN_TOKEN])
        assert done.value.code == 0
        response = await api.get("/api/v1/admin/retention", headers=bearer(ADMIN_TOKEN))
        return dict(await response.json())

    assert (await cli("set", "--results-days", "400"))["results_days"] == 400
    policy = await cli("set", "--submission-files-days", "30")
    assert (policy["submission_files_days"], policy["results_days"]) == (30, 400)
    policy = await cli("set", "--results-days", "keep")
    assert (policy["submission_files_days"], policy["results_days"]) == (30, None)
    with pytest.raises(SystemExit) as refused:
        main(["admin", "retention", "set", "--results-days", "0", "--url", url, "--token", ADMIN_TOKEN])
    assert refused.value.code == 2  # argparse names the option and says why
