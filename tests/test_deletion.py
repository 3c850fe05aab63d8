"""Deleting a submission (issue 15, part 4; the guide's FAQ Q5), through the real ingest app, nats-server, SeaweedFS
and MLflow: `DELETE /api/v1/submissions/{id}` by its owner or an admin.

Before: nothing could delete a submission; the guide told users to ask an administrator, who had no command.
Now: the files, results, MLflow run (artifacts too) and record go, the id answers 404, deduplicated files stay
while another submission of the user uses them, and a job that has not stopped is refused."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from aiohttp import web

from ingest.context import SERVICES
from ingest.deletion import refuse_unfinished
from ingest.errors import Conflict, ServiceUnavailable
from ingest.mlflow_runs import MlflowRefused, MlflowRuns
from ingest.settings import IngestSettings
from leadersboard import keys
from leadersboard.client import ApiError, Client
from leadersboard.issued import IssuedStore
from leadersboard.models.records import JobStatus
from leadersboard.settings import NatsSettings, S3Settings
from tests.api_fixtures import ADMIN_TOKEN, Api, bearer
from tests.housekeeping_fixtures import SETTLE_S, Store, housekeeping_settings, store
from tests.scorer_fixtures import Mlflow
from tools.stack.procs import free_port

__all__ = ["store"]  # the fixture, imported for the tests below

pytestmark = pytest.mark.timeout(300)


@pytest.fixture
def settings(nats_settings: NatsSettings, s3_settings: S3Settings, scorer_mlflow: Mlflow) -> IngestSettings:
    return housekeeping_settings(nats_settings, s3_settings, scorer_mlflow)


async def test_an_owner_deletes_a_finished_submission_and_it_answers_404(api: Api, store: Store, alice: str) -> None:
    record = await store.submission("alice", files={"main.py": b"print(1)\n"}, mlflow_run=True)
    sid, run_id = record.submission_id, record.mlflow_run_id
    assert run_id is not None and store.client().list_artifacts(run_id)

    url = str(api.make_url(""))
    with Client(url, alice) as client:
        report = await asyncio.to_thread(client.delete, sid)
        assert (report.submission_id, report.user, report.mlflow_run) == (sid, "alice", "deleted")
        assert report.objects_deleted == 3  # its file, manifest and job log
        with pytest.raises(ApiError) as gone:
            await asyncio.to_thread(client.get, sid)
        assert gone.value.status == 404
        with pytest.raises(ApiError) as again:
            await asyncio.to_thread(client.delete, sid)
        assert again.value.status == 404

    assert store.keys_under(keys.submission_prefix("alice", sid)) == []
    assert store.keys_under(keys.results_prefix("alice", sid)) == []
    assert await store.jobs.get("alice", sid) is None
    run = store.client().get_run(run_id)
    assert run.info.lifecycle_stage == "deleted"
    assert store.client().list_artifacts(run_id) == []  # its log is gone from MLflow's artifact store too


async def test_another_user_gets_404_and_nothing_is_deleted(api: Api, store: Store, bob: str) -> None:
    record = await store.submission("alice", files={"main.py": b"x"})
    response = await api.delete(f"/api/v1/submissions/{record.submission_id}", headers=bearer(bob))
    assert response.status == 404, await response.text()
    assert await store.jobs.get("alice", record.submission_id) is not None
    assert store.exists(keys.file_key("alice", record.submission_id, "main.py"))


async def test_an_admin_deletes_anyones_submission(api: Api, store: Store, alice: str) -> None:
    record = await store.submission("alice", status=JobStatus.FAILED, files={"main.py": b"x"})
    response = await api.delete(f"/api/v1/submissions/{record.submission_id}", headers=bearer(ADMIN_TOKEN))
    assert response.status == 200, await response.text()
    assert (await response.json())["mlflow_run"] == "none"
    response = await api.get(f"/api/v1/submissions/{record.submission_id}", headers=bearer(alice))
    assert response.status == 404


async def test_a_shared_blob_stays_until_no_submission_uses_it(api: Api, store: Store, alice: str) -> None:
    dataset, weights = b"the dataset" * 100, b"weights"
    first = await store.submission("alice", blobs={"data.zip": dataset, "weights.pt": weights})
    second = await store.submission("alice", blobs={"data.zip": dataset})
    bobs = await store.submission("bob", blobs={"data.zip": dataset})  # the same content, bob's own blob

    response = await api.delete(f"/api/v1/submissions/{first.submission_id}", headers=bearer(alice))
    report = await response.json()
    assert response.status == 200 and report["blobs_kept"] == 1, report
    assert store.exists(store.blob("alice", dataset)), "the second submission still uses it"
    assert not store.exists(store.blob("alice", weights)), "no other submission used it"

    response = await api.delete(f"/api/v1/submissions/{second.submission_id}", headers=bearer(alice))
    assert response.status == 200 and (await response.json())["blobs_kept"] == 0
    assert not store.exists(store.blob("alice", dataset))
    assert store.exists(store.blob("bob", dataset)), "another user's blob is never shared"
    assert await store.jobs.get("bob", bobs.submission_id) is not None


async def test_blobs_stay_while_one_of_the_users_submissions_is_uploading(
    api: Api, app: web.Application, store: Store, alice: str, nats_settings: NatsSettings
) -> None:
    dataset = b"a dataset"
    record = await store.submission("alice", blobs={"data.zip": dataset})
    issued = IssuedStore(await app[SERVICES].nc.jetstream().key_value(nats_settings.issued_kv_bucket))
    await issued.note("alice", keys.new_submission_id(), uploads_expire_in_s=3600)  # its manifest may name the blob

    response = await api.delete(f"/api/v1/submissions/{record.submission_id}", headers=bearer(alice))
    assert response.status == 200 and (await response.json())["blobs_kept"] == 1
    assert store.exists(store.blob("alice", dataset))


async def test_a_job_that_has_not_stopped_is_refused_even_for_an_admin(api: Api, store: Store, alice: str) -> None:
    record = await store.submission("alice", status=JobStatus.RUNNING, files={"main.py": b"x"})
    url = f"/api/v1/submissions/{record.submission_id}"
    response = await api.delete(url, headers=bearer(ADMIN_TOKEN))
    assert response.status == 409
    message = (await response.json())["error"]["message"]
    assert "is running; cancel it first" in message and f"leadersboard cancel {record.submission_id}" in message

    assert (await api.post(f"{url}/cancel", headers=bearer(alice))).status == 200
    response = await api.delete(url, headers=bearer(ADMIN_TOKEN))
    assert response.status == 409  # cancelled while it ran: its runner may still write its last log
    assert "its runner may still be writing its log" in (await response.json())["error"]["message"]
    assert int(response.headers["Retry-After"]) > SETTLE_S - 60
    assert store.exists(keys.file_key("alice", record.submission_id, "main.py"))

    cancelled = await store.jobs.get("alice", record.submission_id)
    assert cancelled is not None and cancelled.finished_at is not None
    later = cancelled.finished_at + timedelta(seconds=SETTLE_S + 1)
    refuse_unfinished(cancelled, settle_s=SETTLE_S, now=later)  # then it may go
    with pytest.raises(Conflict):
        refuse_unfinished(cancelled, settle_s=SETTLE_S, now=later - timedelta(seconds=2))


async def test_a_run_mlflow_no_longer_has_is_already_gone(
    api: Api, store: Store, alice: str, settings: IngestSettings
) -> None:
    record = await store.submission("alice", mlflow_run=True)
    assert record.mlflow_run_id is not None
    store.client().delete_run(record.mlflow_run_id)
    response = await api.delete(f"/api/v1/submissions/{record.submission_id}", headers=bearer(alice))
    assert response.status == 200 and (await response.json())["mlflow_run"] == "already gone"
    unknown = await MlflowRuns(settings).delete("0" * 32)
    assert unknown == "already gone"  # MLflow's 404


async def test_mlflow_refusing_or_away_leaves_the_submission_whole(
    store: Store, settings: IngestSettings, scorer_mlflow: Mlflow
) -> None:
    run_id = store.run("kept")
    wrong = settings.model_copy(update={"mlflow_admin_user": "nobody"})
    with pytest.raises(MlflowRefused) as refused:  # a 401 is permanent: not asked again
        await MlflowRuns(wrong).delete(run_id)
    assert refused.value.status == 502 and "401" in refused.value.message
    away = settings.model_copy(update={"mlflow_upstream_url": f"http://127.0.0.1:{free_port()}"})
    with pytest.raises(ServiceUnavailable, match=r"unreachable .* on 4 attempts"):
        await MlflowRuns(away).delete(run_id)
    assert store.client().get_run(run_id).info.lifecycle_stage == "active"
