"""The retention policy, its sweep, and the storage each user takes (admins: `leadersboard admin retention|usage`).

The policy (a `RetentionPolicy` under the key `retention` of the quotas KV bucket) says how many days after a job
finished its submitted files are kept, and the whole submission; by default everything is kept. A sweep applies
it: every `retention_sweep_interval_s` in the background of each ingest, and at once when an admin asks
(`POST /api/v1/admin/retention/sweep`, which answers its report). One pass:

1. deletes the files of finished submissions older than `submission_files_days` (the record, results and MLflow
   run stay; the record notes `files_deleted_at`), and deletes whole submissions older than `results_days`
   (ingest/deletion.py); a blob goes once no kept submission of its user uses it;
2. deletes the blobs no submission uses any more that were written more than `abandoned_upload_s` ago (a
   deletion keeps them all while one of the user's submissions is being uploaded);
3. aborts the multipart uploads begun more than `abandoned_upload_s` ago (a closed browser tab, a killed client).
4. deletes what no record accounts for once nothing under it was written for `orphan_upload_grace_s`: the files of
   submissions whose manifest never came (`submissions/<user>/<id>/` with no manifest, no record and no issued
   note: the client gave up), and results of submissions without a record (a late scorer or rescore writing
   `results/<user>/<id>/` after the submission's deletion). The grace outlasts the upload URLs, so nothing deleted
   can still be completed by a client.

Each step is idempotent: a submission whose deletion fails is reported and tried again on the next pass.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import AsyncIterator
from datetime import datetime, timedelta

from aiohttp import web
from nats.js.kv import KeyValue

from ingest.auth import caller_of
from ingest.context import SERVICES, Services, admin_only, parse_body, services
from ingest.deletion import blobs_in_use, delete_files, delete_submission
from ingest.store_ops import (
    abort_stale_uploads,
    delete_keys,
    keys_if_all_before,
    objects_under,
    submission_dirs,
    usage,
)
from leadersboard import keys
from leadersboard.models.base import utcnow
from leadersboard.models.housekeeping import RetentionPolicy, SweepReport
from leadersboard.models.records import JobRecord
from leadersboard.nats_io import kv_read
from leadersboard.waiting import stop_tasks

__all__ = ["RETENTION", "RETENTION_KEY", "RetentionStore", "add_routes", "serving", "sweep"]

log = logging.getLogger("ingest.retention")

RETENTION_KEY = "retention"
"""The policy's key in the quotas bucket (beside `default`, `user.*` and `rate.*`, leadersboard/quotas.py)."""


class RetentionStore:
    def __init__(self, kv: KeyValue) -> None:
        self._kv = kv

    async def get(self) -> RetentionPolicy:
        raw = await kv_read(self._kv, RETENTION_KEY)
        return RetentionPolicy() if raw is None else RetentionPolicy.model_validate_json(raw[0])

    async def set(self, policy: RetentionPolicy) -> None:
        await self._kv.put(RETENTION_KEY, policy.model_dump_json().encode())


RETENTION = web.AppKey("retention", RetentionStore)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/v1/admin/retention", get_policy)
    app.router.add_put("/api/v1/admin/retention", set_policy)
    app.router.add_post("/api/v1/admin/retention/sweep", sweep_now)
    app.router.add_get("/api/v1/admin/usage", get_usage)


async def serving(app: web.Application) -> AsyncIterator[None]:
    """The policy's store, and the periodic sweep (after the app's services: a cleanup context of its own)."""
    svc = app[SERVICES]
    store = RetentionStore(await svc.nc.jetstream().key_value(svc.settings.quotas_kv_bucket))
    app[RETENTION] = store
    interval_s = svc.settings.retention_sweep_interval_s
    task = None if interval_s is None else asyncio.create_task(_sweep_every(interval_s, svc, store))
    yield
    if task is not None:
        await stop_tasks(task)


async def _sweep_every(interval_s: float, svc: Services, store: RetentionStore) -> None:
    while True:
        await asyncio.sleep(interval_s)
        try:
            report = await sweep(svc, store)
        except Exception as exc:  # an outage: the next pass tries again
            log.warning("retention sweep failed: %r", exc)
            continue
        if report != SweepReport():
            log.info("retention sweep: %s", report.model_dump_json())


@admin_only
async def get_policy(request: web.Request) -> web.Response:
    return web.json_response((await request.app[RETENTION].get()).model_dump(mode="json"))


@admin_only
async def set_policy(request: web.Request) -> web.Response:
    body = await parse_body(request, RetentionPolicy)
    policy = body.model_copy(update={"updated_at": utcnow(), "updated_by": caller_of(request).user})
    await request.app[RETENTION].set(policy)
    return web.json_response(policy.model_dump(mode="json"))


@admin_only
async def sweep_now(request: web.Request) -> web.Response:
    report = await sweep(services(request), request.app[RETENTION])
    return web.json_response(report.model_dump(mode="json"))


@admin_only
async def get_usage(request: web.Request) -> web.Response:
    svc = services(request)
    report = await asyncio.to_thread(usage, svc.s3, svc.settings.bucket)
    return web.json_response(report.model_dump(mode="json"))


async def sweep(svc: Services, store: RetentionStore, *, now: datetime | None = None) -> SweepReport:
    """One pass of the retention sweep (the module's docstring); `now` is the clock it judges ages by."""
    now = now or utcnow()
    policy = await store.get()
    report = SweepReport()
    records = await svc.jobs.list_records(None)
    for record in records:
        try:
            await _expire(svc, policy, record, now, report)
        except Exception as exc:  # this submission only; the others go on, the next pass tries it again
            log.warning("retention of %s failed: %r", record.submission_id, exc)
            report.failures.append(f"{record.submission_id}: {getattr(exc, 'message', None) or exc!r}")
    report.orphan_blobs_deleted = await _collect_blobs(svc, before=now - _abandoned(svc))
    report.uploads_aborted = await asyncio.to_thread(
        abort_stale_uploads, svc.s3, svc.settings.bucket, started_before=now - _abandoned(svc)
    )
    grace = timedelta(seconds=svc.settings.orphan_upload_grace_s)
    await _collect_orphans(svc, {(r.user, r.submission_id) for r in records}, report, before=now - grace)
    return report


def _abandoned(svc: Services) -> timedelta:
    return timedelta(seconds=svc.settings.abandoned_upload_s)


def _older(record: JobRecord, days: int | None, now: datetime) -> bool:
    """Finished more than `days` ago (never, when `days` is None or the job has not finished)."""
    if days is None or record.finished_at is None or not record.status.terminal:
        return False
    return record.finished_at < now - timedelta(days=days)


async def _expire(
    svc: Services, policy: RetentionPolicy, record: JobRecord, now: datetime, report: SweepReport
) -> None:
    if _older(record, policy.results_days, now):
        deleted = await delete_submission(svc, record)
        report.submissions_deleted.append(record.submission_id)
        report.objects_deleted += deleted.objects_deleted
    elif record.files_deleted_at is None and _older(record, policy.submission_files_days, now):
        deleted_count, _ = await delete_files(svc, record, with_results=False)

        def mark(current: JobRecord) -> JobRecord:
            current.files_deleted_at = now
            return current

        await svc.jobs.update(record.user, record.submission_id, mark)
        report.files_expired.append(record.submission_id)
        report.objects_deleted += deleted_count


async def _collect_blobs(svc: Services, *, before: datetime) -> int:
    """Delete the blobs written before `before` that no kept submission of their user uses."""
    bucket = svc.settings.bucket
    by_user: defaultdict[str, list[str]] = defaultdict(list)
    for found in await asyncio.to_thread(lambda: list(objects_under(svc.s3, bucket, "blobs/"))):
        if found.modified < before:
            by_user[found.key.split("/", 2)[1]].append(found.key)
    deleted = 0
    for user, stored in sorted(by_user.items()):
        in_use = await blobs_in_use(svc, user, besides=set())
        if in_use is None:
            continue  # an upload of the user in progress may name any of them
        unused = [key for key in stored if key not in in_use and key.startswith(keys.blob_key(user, ""))]
        deleted += await asyncio.to_thread(delete_keys, svc.s3, bucket, unused)
    return deleted


async def _collect_orphans(
    svc: Services, recorded: set[tuple[str, str]], report: SweepReport, *, before: datetime
) -> None:
    """Step 4 (the module's docstring): `recorded` are the submissions with a record when the pass began; one
    created since is looked up again before anything of it goes."""
    kept = recorded | {(note.user, note.submission_id) for note in await svc.issued.older_than(0)}
    for area in ("submissions", "results"):
        for orphan in await asyncio.to_thread(submission_dirs, svc.s3, svc.settings.bucket, area):
            if (orphan.user, orphan.submission_id) in kept:
                continue
            try:
                deleted = await _delete_orphan(svc, area, orphan, before=before)
            except Exception as exc:  # this prefix only; the next pass tries it again
                log.warning("deleting orphan %s/%s/%s failed: %r", area, orphan.user, orphan.submission_id, exc)
                report.failures.append(
                    f"{area}/{orphan.user}/{orphan.submission_id}/: {getattr(exc, 'message', None) or exc!r}"
                )
                continue
            if deleted:
                report.objects_deleted += deleted
                if area == "submissions":
                    report.abandoned_submissions_deleted += 1
                else:
                    report.orphan_results_deleted += 1


async def _delete_orphan(svc: Services, area: str, orphan: keys.SubmissionDir, *, before: datetime) -> int:
    """Delete the prefix if all of it was written before `before`, it holds no manifest and the submission still
    has no record; how many objects went."""
    user, sid = orphan.user, orphan.submission_id
    bucket, s3 = svc.settings.bucket, svc.s3
    if area == "submissions":
        prefix, manifest = keys.submission_prefix(user, sid), keys.manifest_key(user, sid)
    else:
        prefix, manifest = keys.results_prefix(user, sid), None
    doomed = await asyncio.to_thread(keys_if_all_before, s3, bucket, prefix, before=before, unless=manifest)
    if not doomed or await svc.jobs.get(user, sid) is not None:
        return 0
    return await asyncio.to_thread(delete_keys, s3, bucket, doomed)
