"""The /api/v1 routes for users: submissions, logs, cancel, health (the leaderboard: ingest/leaderboard.py)."""

from __future__ import annotations

import asyncio
import logging
import math
from datetime import timedelta
from typing import Any

from aiohttp import web
from botocore.exceptions import ClientError

from ingest import admin, openapi
from ingest.auth import caller_of
from ingest.context import Services, parse_body, public, services, without_nats
from ingest.errors import BadRequest, Conflict, NotFound, PayloadTooLarge, TooManyRequests
from ingest.presign import UploadPolicy, presign_submission
from leadersboard import keys
from leadersboard.models.api import CreateSubmissionRequest
from leadersboard.models.base import utcnow
from leadersboard.models.benchmarks import BenchmarkInfo
from leadersboard.models.leaderboard import JobPageQuery
from leadersboard.models.records import JobRecord, JobStatus, Role
from leadersboard.quotas import RateDecision
from leadersboard.s3 import error_code, is_not_found

__all__ = ["add_routes", "job_view", "visible_job"]

log = logging.getLogger("ingest")

MAX_LOG_CHUNK_BYTES = 1024 * 1024


def add_routes(app: web.Application) -> None:
    app.router.add_post("/api/v1/submissions", create_submission)
    app.router.add_get("/api/v1/submissions", list_submissions)
    app.router.add_get("/api/v1/submissions/{id}", get_submission)
    app.router.add_get("/api/v1/submissions/{id}/logs", get_logs)
    app.router.add_post("/api/v1/submissions/{id}/cancel", cancel_submission)
    app.router.add_get("/api/v1/health", health)
    app.router.add_get("/api/v1/me", whoami)
    app.router.add_get("/api/v1/openapi.json", public(without_nats(openapi.serve)))
    admin.add_routes(app)


async def create_submission(request: web.Request) -> web.Response:
    svc, caller = services(request), caller_of(request)
    body = await parse_body(request, CreateSubmissionRequest)
    missing = body.missing_declared_files()
    if missing:
        raise BadRequest(f"files: {', '.join(missing)} is named as entrypoint/config but not in files")
    settings = svc.settings
    for spec in body.files:
        if spec.size > settings.max_file_bytes:
            raise PayloadTooLarge(f"files: {spec.path} is {spec.size} bytes; the limit is {settings.max_file_bytes}")
    total = sum(spec.size for spec in body.files)
    if total > settings.max_submission_bytes:
        raise PayloadTooLarge(f"files: {total} bytes in all; the limit is {settings.max_submission_bytes}")
    benchmark = None if body.benchmark is None else await _ready_benchmark(svc, body.benchmark)
    decision = await svc.quotas.reserve(caller.user)
    if not decision.allowed:
        raise TooManyRequests(_rate_message(decision), headers={"Retry-After": str(math.ceil(decision.retry_after_s))})
    response = await asyncio.to_thread(
        presign_submission,
        svc.presigner,
        svc.s3,
        bucket=settings.bucket,
        user=caller.user,
        request=body,
        policy=UploadPolicy.of(settings),
        secret=settings.manifest_secret,
        token_id=caller.token_id,
        benchmark=benchmark,
    )
    try:
        await svc.issued.note(caller.user, response.submission_id, uploads_expire_in_s=settings.presign_expiry_s)
    except Exception as exc:  # only the safety net for a lost event: the upload URLs are good without it
        log.warning("could not note submission %s as issued: %r", response.submission_id, exc)
    return web.json_response(response.model_dump(mode="json"), status=201)


async def _ready_benchmark(svc: Services, name: str) -> BenchmarkInfo:
    """The latest ready version of benchmark `name`: the one the job is scored against (400 if none)."""
    record = await svc.benchmarks.latest_ready(name)
    if record is None:
        raise BadRequest(f"benchmark: no benchmark named {name} (GET /api/v1/benchmarks lists them)")
    return record.info


async def whoami(request: web.Request) -> web.Response:
    """The caller's token as the API sees it (never the token itself): for `leadersboard login`."""
    caller = caller_of(request)
    return web.json_response(caller.model_dump(mode="json", include={"user", "role", "token_id", "expires_at"}))


def _rate_message(decision: RateDecision) -> str:
    when = (utcnow() + timedelta(seconds=decision.retry_after_s)).strftime("%H:%M:%S UTC")
    return (
        f"rate limit: at most {decision.limit} submissions per hour; "
        f"the next one is possible in {math.ceil(decision.retry_after_s)} s (at {when})"
    )


def job_view(record: JobRecord) -> dict[str, Any]:
    return record.model_dump(mode="json", exclude={"version"})


async def visible_job(request: web.Request) -> JobRecord:
    svc, caller = services(request), caller_of(request)
    submission_id = request.match_info["id"]
    if not keys.is_submission_id(submission_id):
        record = None
    elif caller.role is Role.ADMIN:
        record = await svc.jobs.find(submission_id)
    else:
        record = await svc.jobs.get(caller.user, submission_id)
    if record is None:
        # Another user's job is reported exactly like a missing one: ids reveal nothing.
        raise NotFound(
            f"no submission {submission_id!r} of yours; a new submission appears once its manifest is uploaded"
        )
    return record


async def list_submissions(request: web.Request) -> web.Response:
    """A page of the caller's jobs, newest first (admins: everyone's with `all=true`)."""
    svc, caller = services(request), caller_of(request)
    query = JobPageQuery.model_validate(dict(request.query))
    everyone = caller.role is Role.ADMIN and query.all
    records, cursor = await svc.jobs.page(None if everyone else caller.user, limit=query.limit, after=query.cursor)
    return web.json_response({"submissions": [job_view(r) for r in records], "next_cursor": cursor})


async def get_submission(request: web.Request) -> web.Response:
    return web.json_response(job_view(await visible_job(request)))


async def get_logs(request: web.Request) -> web.Response:
    svc = services(request)
    record = await visible_job(request)
    try:
        offset = int(request.query.get("offset", "0"))
    except ValueError as exc:
        raise BadRequest("offset: must be a whole number of bytes") from exc
    if offset < 0:
        raise BadRequest("offset: must not be negative")
    key = keys.result_key(record.user, record.submission_id, "job.log")
    chunk = await asyncio.to_thread(_read_range, svc, key, offset)
    headers = {"X-Next-Offset": str(offset + len(chunk)), "X-Job-Status": record.status.value}
    return web.Response(body=chunk, content_type="text/plain", charset="utf-8", headers=headers)


def _read_range(svc: Services, key: str, offset: int) -> bytes:
    end = offset + MAX_LOG_CHUNK_BYTES - 1
    try:
        response = svc.s3.get_object(Bucket=svc.settings.bucket, Key=key, Range=f"bytes={offset}-{end}")
    except ClientError as exc:
        if is_not_found(exc) or error_code(exc) == "InvalidRange":  # no log yet, or nothing past `offset`
            return b""
        raise
    return bytes(response["Body"].read())


async def cancel_submission(request: web.Request) -> web.Response:
    svc, caller = services(request), caller_of(request)
    record = await visible_job(request)
    applied = False

    def cancel(current: JobRecord) -> JobRecord | None:
        nonlocal applied
        # Called again on a concurrent write: only the last call's verdict counts.
        applied = not current.status.terminal
        if not applied:
            return None
        current.status = JobStatus.CANCELLED
        current.error = f"cancelled by {caller.user}"
        current.finished_at = utcnow()
        return current

    updated = await svc.jobs.update(record.user, record.submission_id, cancel)
    # An already cancelled job comes back unchanged (status cancelled): that is a conflict too.
    if updated is None or not applied:
        status = updated.status.value if updated else "gone"
        raise Conflict(
            f"submission {record.submission_id} is already {status}; only pending or running jobs can be cancelled"
        )
    return web.json_response(job_view(updated))


@public
@without_nats  # it reports NATS's state itself
async def health(request: web.Request) -> web.Response:
    svc = services(request)
    nats_ok = svc.nc.is_connected
    try:
        await asyncio.to_thread(svc.s3.head_bucket, Bucket=svc.settings.bucket)
        store_ok = True
    except Exception:
        store_ok = False
    ok = nats_ok and store_ok
    body = {"status": "ok" if ok else "degraded", "nats": nats_ok, "store": store_ok}
    return web.json_response(body, status=200 if ok else 503)
