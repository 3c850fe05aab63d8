"""Deleting a submission: `DELETE /api/v1/submissions/{id}` (its owner, a finished job; or an admin).

A deletion removes, in this order, the job's MLflow run (ingest/mlflow_runs.py), its objects in the store
(`submissions/<user>/<id>/`, `results/<user>/<id>/`, and its blobs no other submission of the user still uses),
its issued note and last its job record, which takes it off the leaderboard view. A failure part way leaves the
record, so the same request finishes the deletion; every step is idempotent.

A job that has not finished (pending, running, or awaiting its scores) is not deleted, not even by an admin: the
caller cancels it first. A job cancelled while it ran can be deleted `deletion_settle_s` after, once its runner
stopped and wrote its last log (which would otherwise land after the deletion).
"""

from __future__ import annotations

import asyncio
import math
from datetime import datetime, timedelta

from aiohttp import web

from ingest import routes
from ingest.context import Services, services
from ingest.errors import Conflict
from ingest.mlflow_runs import MlflowRuns
from ingest.store_ops import blob_keys, delete_keys, delete_prefix
from leadersboard import keys
from leadersboard.models.base import utcnow
from leadersboard.models.housekeeping import DeletionReport
from leadersboard.models.records import JobRecord, JobStatus

__all__ = ["add_routes", "blobs_in_use", "delete_files", "delete_submission", "refuse_unfinished"]


def add_routes(app: web.Application) -> None:
    app.router.add_delete("/api/v1/submissions/{id}", delete_route)


async def delete_route(request: web.Request) -> web.Response:
    """An owner deletes their own finished submission; an admin anyone's (ingest/routes.py finds it)."""
    svc = services(request)
    record = await routes.visible_job(request)
    refuse_unfinished(record, settle_s=svc.settings.deletion_settle_s)
    report = await delete_submission(svc, record)
    return web.json_response(report.model_dump(mode="json"))


def refuse_unfinished(record: JobRecord, *, settle_s: float, now: datetime | None = None) -> None:
    """409 for a job that may still write to its record or results: it is deleted once it has stopped."""
    sid = record.submission_id
    if not record.status.terminal:
        state = "awaiting its scores" if record.scoring_requested_at else record.status.value
        raise Conflict(
            f"submission {sid} is {state}; cancel it first (leadersboard cancel {sid}), then delete it "
            "(only finished submissions are deleted)"
        )
    stopping_until = _stopping_until(record, settle_s)
    now = now or utcnow()
    if stopping_until is not None and now < stopping_until:
        wait_s = math.ceil((stopping_until - now).total_seconds())
        raise Conflict(
            f"submission {sid} was cancelled while it ran; its runner may still be writing its log: "
            f"delete it in {wait_s} s (at {stopping_until.strftime('%H:%M:%S UTC')})",
            headers={"Retry-After": str(wait_s)},
        )


def _stopping_until(record: JobRecord, settle_s: float) -> datetime | None:
    if record.status is not JobStatus.CANCELLED or record.started_at is None or record.finished_at is None:
        return None
    return record.finished_at + timedelta(seconds=settle_s)


async def blobs_in_use(svc: Services, user: str, *, besides: set[str]) -> set[str] | None:
    """The blob keys of `user` that kept submissions other than `besides` (ids) use; None while one of the user's
    submissions is being uploaded (its manifest, not yet a record, may name any blob: keep them all)."""
    issued = await svc.issued.older_than(0)
    if any(note.user == user and note.submission_id not in besides for note in issued):
        return None
    used: set[str] = set()
    for other in await svc.jobs.list_records(user):
        if other.submission_id not in besides and other.files_deleted_at is None:
            used |= blob_keys(other)
    return used


async def delete_submission(svc: Services, record: JobRecord) -> DeletionReport:
    """Delete everything of the submission (see the module's docstring); the caller checked it may go."""
    user, sid = record.user, record.submission_id
    mlflow_run = "none" if record.mlflow_run_id is None else await MlflowRuns(svc.settings).delete(record.mlflow_run_id)
    deleted, kept = await delete_files(svc, record, with_results=True)
    await svc.issued.forget(user, sid)
    await svc.jobs.remove(user, sid)
    return DeletionReport(submission_id=sid, user=user, objects_deleted=deleted, blobs_kept=kept, mlflow_run=mlflow_run)


async def delete_files(svc: Services, record: JobRecord, *, with_results: bool) -> tuple[int, int]:
    """Delete the submission's own objects (and its results, `with_results`) and the blobs no other kept
    submission uses: (objects deleted, blobs kept)."""
    user, sid = record.user, record.submission_id
    blobs = blob_keys(record)
    in_use = await blobs_in_use(svc, user, besides={sid}) if blobs else set()
    # With an upload of the user in progress every blob stays; the sweep removes the unused ones later.
    doomed = set() if in_use is None else blobs - in_use
    prefixes = [keys.submission_prefix(user, sid)] + ([keys.results_prefix(user, sid)] if with_results else [])
    bucket, s3 = svc.settings.bucket, svc.s3

    def delete() -> int:
        return sum(delete_prefix(s3, bucket, prefix) for prefix in prefixes) + delete_keys(s3, bucket, doomed)

    return await asyncio.to_thread(delete), len(blobs) - len(doomed)
