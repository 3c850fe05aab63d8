"""The routes of official benchmarks: an admin registers a version (its two parts go straight to the store through
presigned uploads, then the version is marked ready) and re-scores every job of a benchmark; everyone lists the
ready versions.

Versions: a registration names the version its parts were packed for (their `index.json` and `reference.json`
carry it). It is either the next version of the name (one above every version, ready or not), which it creates,
or the version of an `uploading` record with the very same parts, which it resumes. Any other version is a 409
whose `X-Next-Version` header tells the client which version to pack for instead. A version is never reused:
its objects in the store belong to one content, so "present with that size" means uploaded.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from aiohttp import web

from ingest.auth import caller_of
from ingest.context import Services, admin_only, parse_body, services
from ingest.errors import BadRequest, Conflict, NotFound
from ingest.presign import UploadPolicy, presign_object
from leadersboard.benchmarks.catalogue import BenchmarkCatalogue, VersionTaken
from leadersboard.benchmarks.package import PUBLIC_ZIP, REFERENCE_ZIP
from leadersboard.keys import benchmark_public_key, benchmark_reference_key, is_benchmark_name
from leadersboard.models.api import (
    MAX_BENCHMARK_VERSION,
    NEXT_VERSION_HEADER,
    BenchmarkListing,
    BenchmarkPart,
    BenchmarkView,
    CreateBenchmarkRequest,
    CreateBenchmarkResponse,
    RescoreResponse,
    UploadItem,
)
from leadersboard.models.base import utcnow
from leadersboard.models.benchmarks import BenchmarkRecord, StoredPart
from leadersboard.models.queue import ScoreRequest
from leadersboard.models.submission import FileSpec
from leadersboard.s3 import head
from leadersboard.scoring.verdict import rescorable

__all__ = ["add_routes"]


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/v1/benchmarks", list_benchmarks)
    app.router.add_post("/api/v1/admin/benchmarks", create_benchmark)
    app.router.add_post("/api/v1/admin/benchmarks/{name}/versions/{version}/ready", mark_ready)
    app.router.add_post("/api/v1/admin/benchmarks/{name}/rescore", rescore)


async def list_benchmarks(request: web.Request) -> web.Response:
    """The ready versions: the latest of each benchmark, or every one with `?all=true`."""
    every = request.query.get("all", "").lower() in ("1", "true")
    records = await services(request).benchmarks.listing(all_versions=every)
    listing = BenchmarkListing(benchmarks=[BenchmarkView.of(record.info) for record in records])
    return web.json_response(listing.model_dump(mode="json"))


@admin_only
async def create_benchmark(request: web.Request) -> web.Response:
    svc, caller = services(request), caller_of(request)
    body = await parse_body(request, CreateBenchmarkRequest)
    record, resumed = await _claim(svc.benchmarks, body, caller.user)
    public, reference = await asyncio.to_thread(_presign_parts, svc, record)
    response = CreateBenchmarkResponse(
        name=record.info.name,
        version=record.info.version,
        resumed=resumed,
        public=public,
        reference=reference,
        expires_at=utcnow() + timedelta(seconds=svc.settings.presign_expiry_s),
    )
    # 201 for a resumed upload too (`resumed` says which): the version's upload is (re)opened either way.
    return web.json_response(response.model_dump(mode="json"), status=201)


async def _claim(
    catalogue: BenchmarkCatalogue, body: CreateBenchmarkRequest, user: str
) -> tuple[BenchmarkRecord, bool]:
    """The record the parts are uploaded for, and whether it existed (a resumed upload)."""
    versions = await catalogue.versions(body.name)
    next_version = (versions[-1].info.version if versions else 0) + 1
    existing = next((record for record in versions if record.info.version == body.version), None)
    if existing is not None:
        # Left as it is (its description too): rewriting it could undo a concurrent `ready`.
        if existing.status == "uploading" and _same_parts(existing, body):
            return existing, True
        state = "is being uploaded with other parts" if existing.status == "uploading" else "exists already"
        raise _version_conflict(f"{body.name} v{body.version} {state}", next_version)
    if body.version != next_version:
        raise _version_conflict(f"v{body.version} is not the next version of {body.name}", next_version)
    record = BenchmarkRecord(
        info=body.info(),
        public=_stored(benchmark_public_key(body.name, body.version), body.public),
        reference=_stored(benchmark_reference_key(body.name, body.version), body.reference),
        created_by=user,
    )
    try:
        await catalogue.create(record)
    except VersionTaken as exc:
        raise _version_conflict(f"another registration took {body.name} v{body.version}", next_version + 1) from exc
    return record, False


def _version_conflict(what: str, next_version: int) -> Conflict:
    return Conflict(
        f"version: {what}; pack the parts for v{next_version}", headers={NEXT_VERSION_HEADER: str(next_version)}
    )


def _stored(key: str, part: BenchmarkPart) -> StoredPart:
    return StoredPart(key=key, size=part.size, sha256=part.sha256)


def _same_parts(record: BenchmarkRecord, body: CreateBenchmarkRequest) -> bool:
    declared = (body.public.sha256, body.reference.sha256, body.public_sha256, body.reference_sha256)
    stored = (record.public.sha256, record.reference.sha256, record.info.public_sha256, record.info.reference_sha256)
    return declared == stored


def _presign_parts(svc: Services, record: BenchmarkRecord) -> tuple[UploadItem, UploadItem]:
    """Blocking (HEADs, multipart creation): the public part into the main bucket, the reference part into the
    reference bucket."""
    policy = UploadPolicy.of(svc.settings)
    public, reference = (
        presign_object(svc.presigner, svc.s3, bucket=bucket, key=part.key, policy=policy,
                       spec=FileSpec(path=file_name, size=part.size, sha256=part.sha256))
        for file_name, part, bucket in _parts(svc, record)
    )  # fmt: skip
    return public, reference


def _parts(svc: Services, record: BenchmarkRecord) -> list[tuple[str, StoredPart, str]]:
    """(file name, stored part, bucket) of both parts, public first."""
    settings = svc.settings
    return [(PUBLIC_ZIP, record.public, settings.bucket), (REFERENCE_ZIP, record.reference, settings.reference_bucket)]


@admin_only
async def mark_ready(request: web.Request) -> web.Response:
    """Check that both parts are in the store with their declared sizes, then list the version."""
    svc = services(request)
    name, version = _name(request), _version(request)
    record = await svc.benchmarks.get(name, version)
    if record is None:
        raise NotFound(f"no benchmark {name} v{version}")
    if record.status != "ready":
        problems = await asyncio.to_thread(_missing_parts, svc, record)
        if problems:
            raise Conflict("; ".join(problems))
        record.status = "ready"
        await svc.benchmarks.put(record)
    return web.json_response(BenchmarkView.of(record.info).model_dump(mode="json"))


def _missing_parts(svc: Services, record: BenchmarkRecord) -> list[str]:
    problems = []
    for file_name, part, bucket in _parts(svc, record):
        label = file_name.removesuffix(".zip")
        found = head(svc.s3, bucket, part.key)
        if found is None:
            problems.append(f"{label}: the {label} part ({file_name}) is not uploaded yet")
        elif found.size != part.size:
            problems.append(f"{label}: the stored {file_name} has {found.size} bytes, not the {part.size} declared")
    return problems


@admin_only
async def rescore(request: web.Request) -> web.Response:
    """Ask the scorer again for every job of the benchmark whose predictions are stored (rescorable)."""
    svc = services(request)
    name = _name(request)
    if not await svc.benchmarks.versions(name):
        raise NotFound(f"no benchmark named {name}")
    js = svc.nc.jetstream()
    now = utcnow()
    count = 0
    for job in await svc.jobs.list_records(None):
        if job.benchmark != name or job.benchmark_version is None or not rescorable(job):
            continue
        message = ScoreRequest(
            user=job.user,
            submission_id=job.submission_id,
            benchmark=name,
            benchmark_version=job.benchmark_version,
            requested_at=now,
            rescore=True,
        )
        await js.publish(svc.settings.scoring_subject, message.model_dump_json().encode())
        count += 1
    return web.json_response(RescoreResponse(benchmark=name, requested=count).model_dump(mode="json"))


def _name(request: web.Request) -> str:
    name = request.match_info["name"]
    if not is_benchmark_name(name):
        raise BadRequest(f"name: {name[:60]!r} is not a valid benchmark name")
    return name


def _version(request: web.Request) -> int:
    raw = request.match_info["version"]
    version = int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 7 else 0
    if not 1 <= version <= MAX_BENCHMARK_VERSION:
        raise BadRequest(f"version: {raw[:20]!r} is not a version number (1 to {MAX_BENCHMARK_VERSION})")
    return version
