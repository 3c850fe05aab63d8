"""The retention sweep removes what no record accounts for, through the real ingest app, nats-server and SeaweedFS.

Before: files uploaded by a client that gave up before its manifest stayed under `submissions/<user>/<id>/` for
ever, and so did results a late scorer wrote after the submission's deletion.
Now: once nothing under them was written for `orphan_upload_grace_s`, the sweep deletes both; never a submission
with a manifest, a record or upload URLs still noted, never one written more recently. Ages are judged by the
clock the test hands the sweep (`now`), not by waiting."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import timedelta

import pytest
from aiohttp import web
from nats.js.kv import KeyValue
from pydantic import SecretStr

from ingest.context import SERVICES
from ingest.retention import RETENTION, sweep
from ingest.settings import IngestSettings
from leadersboard import keys
from leadersboard.jobs import JobStore
from leadersboard.models.base import utcnow
from leadersboard.models.housekeeping import SweepReport
from leadersboard.models.records import JobRecord, JobStatus
from leadersboard.s3 import S3Client, make_client
from leadersboard.settings import NatsSettings, S3Settings
from tests.api_fixtures import ADMIN_TOKEN, Api
from tools.cli import main

pytestmark = pytest.mark.timeout(300)


@pytest.fixture
def settings(nats_settings: NatsSettings, s3_settings: S3Settings) -> IngestSettings:
    """No background sweep: the test runs each pass itself."""
    return IngestSettings(
        **nats_settings.model_dump(), **s3_settings.model_dump(), admin_token=SecretStr(ADMIN_TOKEN),
        retention_sweep_interval_s=None,
    )  # fmt: skip


class Bucket:
    def __init__(self, s3_settings: S3Settings) -> None:
        self.s3: S3Client = make_client(s3_settings)
        self.name = s3_settings.bucket

    def put(self, *keys_: str) -> None:
        for key in keys_:
            self.s3.put_object(Bucket=self.name, Key=key, Body=b"x")

    def under(self, prefix: str) -> list[str]:
        listed = self.s3.list_objects_v2(Bucket=self.name, Prefix=prefix)
        return sorted(item["Key"] for item in listed.get("Contents", []))


def uploaded(bucket: Bucket, user: str, *paths: str) -> str:
    """A submission whose files went up and whose manifest did not (yet): its id."""
    sid = keys.new_submission_id()
    bucket.put(*(keys.file_key(user, sid, path) for path in paths))
    return sid


async def recorded(jobs: JobStore, user: str, sid: str) -> None:
    now = utcnow()
    record = JobRecord(
        submission_id=sid, user=user, entrypoint="main.py", config="config.yaml", created_at=now,
        status=JobStatus.RUNNING, started_at=now,
    )  # fmt: skip
    assert await jobs.create(record)


def test_a_submissions_own_prefixes_parse_back_and_nothing_else_does() -> None:
    sid = keys.new_submission_id()
    for prefix in (keys.submission_prefix("alice", sid), keys.results_prefix("alice", sid)):
        assert keys.parse_submission_dir(prefix) == keys.SubmissionDir("alice", sid)
    for other in (f"blobs/alice/{sid}/", f"submissions/alice/{sid}", "submissions/alice/NOT-AN-ID/", "results/a/"):
        assert keys.parse_submission_dir(other) is None


async def test_the_sweep_deletes_abandoned_uploads_and_results_without_a_record(
    api: Api, app: web.Application, s3_settings: S3Settings, jobs: JobStore, capsys: pytest.CaptureFixture[str]
) -> None:
    bucket, svc = Bucket(s3_settings), app[SERVICES]
    abandoned = uploaded(bucket, "alice", "main.py", "data/train.csv")
    with_manifest = uploaded(bucket, "alice", "main.py")  # the dispatcher has not made its job yet
    bucket.put(keys.manifest_key("alice", with_manifest))
    running = uploaded(bucket, "bob", "main.py")  # a job in flight: only its record says so here
    await recorded(jobs, "bob", running)
    bucket.put(keys.result_key("bob", running, "job.log"))
    uploading = uploaded(bucket, "bob", "main.py")  # its upload URLs are noted: the client may still finish
    await svc.issued.note("bob", uploading, uploads_expire_in_s=svc.settings.presign_expiry_s)
    deleted_job = keys.new_submission_id()  # a late scorer's results, after the submission was deleted
    bucket.put(keys.scores_key("alice", deleted_job), keys.result_key("alice", deleted_job, "output/p.csv"))
    stray = "submissions/alice/NOT-AN-ID/file"  # not a submission's prefix: not the sweep's to judge
    bucket.put(stray)
    everything = bucket.under("")

    cli = ["admin", "retention", "sweep", "--json", "--url", str(api.make_url("")), "--token", ADMIN_TOKEN]
    with pytest.raises(SystemExit) as done:  # now: everything was written within the grace period
        await asyncio.to_thread(main, cli)
    young = SweepReport.model_validate_json(capsys.readouterr().out)
    assert done.value.code == 0 and (young.abandoned_submissions_deleted, young.orphan_results_deleted) == (0, 0)
    assert bucket.under("") == everything

    later = utcnow() + timedelta(seconds=svc.settings.orphan_upload_grace_s + 60)
    report = await sweep(svc, app[RETENTION], now=later)
    assert (report.abandoned_submissions_deleted, report.orphan_results_deleted) == (1, 1), report
    assert (report.objects_deleted, report.failures) == (4, [])
    doomed = _keys_of(everything, abandoned, deleted_job)
    assert len(doomed) == 4 and bucket.under("") == sorted(set(everything) - doomed), "exactly those two went"

    await svc.issued.forget("bob", uploading)  # the dispatcher gave up on it: now it is abandoned too
    again = await sweep(svc, app[RETENTION], now=later)
    assert (again.abandoned_submissions_deleted, again.orphan_results_deleted, again.objects_deleted) == (1, 0, 1)
    assert bucket.under("") == sorted(set(everything) - doomed - _keys_of(everything, uploading))


def _keys_of(everything: list[str], *submission_ids: str) -> set[str]:
    return {key for key in everything if any(f"/{sid}/" in key for sid in submission_ids)}


async def test_an_abandoned_upload_goes_only_once_its_last_write_is_older_than_the_grace(
    api: Api, app: web.Application, s3_settings: S3Settings
) -> None:
    bucket, svc = Bucket(s3_settings), app[SERVICES]
    sid = uploaded(bucket, "alice", "a.py", "b.py")
    last = max(item["LastModified"] for item in bucket.s3.list_objects_v2(Bucket=bucket.name)["Contents"])
    grace = timedelta(seconds=svc.settings.orphan_upload_grace_s)

    at_grace = await sweep(svc, app[RETENTION], now=last + grace)  # written exactly the grace ago: still young
    assert at_grace.abandoned_submissions_deleted == 0 and len(bucket.under(keys.submission_prefix("alice", sid))) == 2
    past = await sweep(svc, app[RETENTION], now=last + grace + timedelta(seconds=1))
    assert (past.abandoned_submissions_deleted, past.objects_deleted) == (1, 2)
    assert bucket.under("") == []


class RecordedMidPass(JobStore):
    """The jobs bucket, where the dispatcher makes the job of `late` just after the sweep has listed the records:
    the pass begins without its record, and it exists before anything of the pass is deleted."""

    def __init__(self, kv: KeyValue, late: tuple[str, str]) -> None:
        super().__init__(kv)
        self.late: tuple[str, str] | None = late

    async def list_records(self, user: str | None = None) -> list[JobRecord]:
        listed = await super().list_records(user)
        if self.late is not None:
            await recorded(self, *self.late)
            self.late = None
        return listed


async def test_a_submission_recorded_after_the_pass_listed_the_records_is_kept(
    api: Api, app: web.Application, s3_settings: S3Settings
) -> None:
    bucket, svc = Bucket(s3_settings), app[SERVICES]
    late = uploaded(bucket, "alice", "main.py", "data/train.csv")
    bucket.put(keys.result_key("alice", late, "job.log"))
    abandoned = uploaded(bucket, "bob", "main.py")  # beside it, one the same pass does delete
    everything = bucket.under("")
    jobs_kv = await svc.nc.jetstream().key_value(svc.settings.jobs_kv_bucket)
    racing = dataclasses.replace(svc, jobs=RecordedMidPass(jobs_kv, ("alice", late)))

    later = utcnow() + timedelta(seconds=svc.settings.orphan_upload_grace_s + 60)
    report = await sweep(racing, app[RETENTION], now=later)
    assert await svc.jobs.get("alice", late) is not None, "the record was created during the pass"
    assert (report.abandoned_submissions_deleted, report.orphan_results_deleted, report.failures) == (1, 0, [])
    assert bucket.under("") == sorted(set(everything) - _keys_of(everything, abandoned)), "its files and results stay"
