"""The OpenAPI document of /api/v1, built from the same pydantic models the handlers validate with."""

from __future__ import annotations

from functools import cache
from typing import Any

from aiohttp import web
from pydantic import BaseModel

from ingest.admin import CreateTokenRequest
from ingest.context import MAX_BODY_DEPTH
from leadersboard.models.api import (
    BenchmarkListing,
    BenchmarkView,
    CreateBenchmarkRequest,
    CreateBenchmarkResponse,
    CreateSubmissionRequest,
    CreateSubmissionResponse,
    ErrorBody,
    RescoreResponse,
)
from leadersboard.models.board import BoardBuilt
from leadersboard.models.housekeeping import DeletionReport, RetentionPolicy, SweepReport, UsageReport
from leadersboard.models.leaderboard import (
    BoardQuery,
    JobPage,
    JobPageQuery,
    RebuildAccepted,
    SelfReportedBoard,
    SelfReportedQuery,
    VerifiedBoard,
)
from leadersboard.models.records import JobRecord, Quota, QuotaOverride

__all__ = ["document", "serve"]

_ERRORS = {
    "400": "Malformed request: the message names the field and why. Bodies are validated strictly (`'10'` is no "
    f"integer, `true` no number), nest at most {MAX_BODY_DEPTH} levels, and every field is bounded (see the schemas).",
    "401": "Missing, bad, expired or revoked token.",
    "403": "An administrators' endpoint called with a user's token.",
    "404": "No such submission among those the token may see.",
    "409": "A conflict with the current state: the job is already finished, the user is disabled, a benchmark "
    "version is taken (`X-Next-Version` names the next one) or its parts are not uploaded yet, ...",
    "413": "A file or the submission is over the size limit, or the body over 1 MiB.",
    "429": "Rate limit reached; see Retry-After.",
    "503": "A backing service is down; retry later.",
}


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _json(model: type[BaseModel] | dict[str, Any]) -> dict[str, Any]:
    schema = _ref(model) if isinstance(model, type) else model
    return {"content": {"application/json": {"schema": schema}}}


def _op(summary: str, ok: tuple[str, dict[str, Any]], *, body: type[BaseModel] | None = None,
        params: list[dict[str, Any]] | None = None, auth: bool = True) -> dict[str, Any]:  # fmt: skip
    responses: dict[str, Any] = {ok[0]: {"description": "OK", **ok[1]}}
    for code, text in _ERRORS.items():
        responses[code] = {"description": text, **_json(ErrorBody)}
    operation: dict[str, Any] = {"summary": summary, "responses": responses}
    if body is not None:
        operation["requestBody"] = {"required": True, **_json(body)}
    if params:
        operation["parameters"] = params
    if not auth:
        operation["security"] = []
    return operation


_USER = {"name": "user", "in": "path", "required": True, "schema": {"type": "string"}}
_ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
_NAME = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
_VERSION = {"name": "version", "in": "path", "required": True, "schema": {"type": "integer", "minimum": 1}}
_ALL = {"name": "all", "in": "query", "schema": {"type": "boolean", "default": False}}
_BOARD = {"oneOf": [_ref(VerifiedBoard), _ref(SelfReportedBoard)]}


def _query(*models: type[BaseModel]) -> list[dict[str, Any]]:
    """The query parameters of the models a handler validates its query with (the first model's wins a name)."""
    params: dict[str, dict[str, Any]] = {}
    for model in models:
        for name, schema in model.model_json_schema()["properties"].items():
            params.setdefault(name, {"name": name, "in": "query", "schema": schema})
    return list(params.values())


_ME = {
    "type": "object",
    "properties": {
        "user": {"type": "string"},
        "role": {"type": "string"},
        "token_id": {"type": "string"},
        "expires_at": {"type": ["string", "null"]},
    },
}
_TEXT = {"content": {"text/plain": {"schema": {"type": "string"}}}}
_USER_STATE = {
    "type": "object",
    "properties": {
        "user": {"type": "string"},
        "disabled": {"type": "boolean"},
        "disabled_at": {"type": ["string", "null"]},
        "disabled_by": {"type": ["string", "null"]},
        "revoked_tokens": {"type": "array", "items": {"type": "string"}, "description": "Ids revoked by this call."},
        "cancelled": {"type": "array", "items": {"type": "string"}, "description": "Jobs cancelled by this call."},
    },
}


@cache
def document() -> dict[str, Any]:
    models: list[type[BaseModel]] = [
        CreateSubmissionRequest, CreateSubmissionResponse, JobRecord, ErrorBody, CreateTokenRequest, Quota,
        QuotaOverride, CreateBenchmarkRequest, CreateBenchmarkResponse, BenchmarkListing, BenchmarkView,
        RescoreResponse, VerifiedBoard, SelfReportedBoard, JobPage, RebuildAccepted, BoardBuilt,
    ]  # fmt: skip
    models += [DeletionReport, RetentionPolicy, SweepReport, UsageReport]  # ingest/deletion.py, ingest/retention.py
    schemas: dict[str, Any] = {}
    for model in models:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    offset = {"name": "offset", "in": "query", "schema": {"type": "integer", "minimum": 0, "default": 0}}
    paths = {
        "/api/v1/submissions": {
            "post": _op("Create a submission; returns presigned upload URLs", ("201", _json(CreateSubmissionResponse)),
                        body=CreateSubmissionRequest),
            "get": _op("A page of your submissions, newest first; `next_cursor` is the next page's `cursor` (admins: "
                       "?all=true for everyone's)", ("200", _json(JobPage)), params=_query(JobPageQuery)),
        },
        "/api/v1/submissions/{id}": {
            "get": _op("One submission", ("200", _json(JobRecord)), params=[_ID]),
            "delete": _op("Delete a finished submission: files, results, MLflow run, record (owner or admin; 409 "
                          "while it runs)", ("200", _json(DeletionReport)), params=[_ID]),
        },
        "/api/v1/submissions/{id}/logs": {
            "get": _op("The job log from byte `offset`; X-Next-Offset tells where to go on", ("200", _TEXT),
                       params=[_ID, offset]),
        },
        "/api/v1/submissions/{id}/cancel": {"post": _op("Cancel a pending or running job",
                                                        ("200", _json(JobRecord)), params=[_ID])},
        "/api/v1/leaderboard": {
            "get": _op("With `benchmark`: its verified board (platform scores, 95% intervals, rank ranges, ties with "
                       "the leader; `metric`, `category`, `version`, `all`, `limit`, `offset`). Without: the "
                       "self-reported board (`metric`, `dataset`, `best_per_user`)", ("200", _json(_BOARD)),
                       params=_query(BoardQuery, SelfReportedQuery)),
        },
        "/api/v1/admin/leaderboard/rebuild": {
            "post": _op("Ask for the leaderboard view to be rebuilt from the job records",
                        ("202", _json(RebuildAccepted))),
            "get": _op("The view's last rebuild (404: none yet)", ("200", _json(BoardBuilt))),
        },
        "/api/v1/me": {"get": _op("The caller's user, role, token id and expiry (never the token)",
                                  ("200", _json(_ME)))},
        "/api/v1/health": {"get": _op("Health of the API and its backing services", ("200", {}), auth=False)},
        "/api/v1/openapi.json": {"get": _op("This OpenAPI document", ("200", {}), auth=False)},
        "/api/v1/benchmarks": {
            "get": _op("Ready benchmark versions: the latest of each (?all=true: every version)",
                       ("200", _json(BenchmarkListing)), params=[_ALL]),
        },
        "/api/v1/admin/benchmarks": {
            "post": _op("Register a benchmark version (or resume its upload); returns presigned uploads of its parts",
                        ("201", _json(CreateBenchmarkResponse)), body=CreateBenchmarkRequest),
        },
        "/api/v1/admin/benchmarks/{name}/versions/{version}/ready": {
            "post": _op("Mark a version ready once both parts are in the store", ("200", _json(BenchmarkView)),
                        params=[_NAME, _VERSION]),
        },
        "/api/v1/admin/benchmarks/{name}/rescore": {
            "post": _op("Score every job of a benchmark again from its stored predictions",
                        ("200", _json(RescoreResponse)), params=[_NAME]),
        },
        "/api/v1/admin/tokens": {
            "post": _op("Issue a token (shown once)", ("201", {}), body=CreateTokenRequest),
            "get": _op("List tokens (never the tokens themselves)", ("200", {})),
        },
        "/api/v1/admin/tokens/{token_id}/revoke": {
            "post": _op("Revoke a token", ("200", {}),
                        params=[{"name": "token_id", "in": "path", "required": True, "schema": {"type": "string"}}]),
        },
        "/api/v1/admin/users/{user}/disable": {
            "post": _op("Disable a user: revoke its tokens, refuse new ones, cancel its pending and running jobs",
                        ("200", _json(_USER_STATE)), params=[_USER]),
        },
        "/api/v1/admin/users/{user}/enable": {
            "post": _op("Enable a disabled user: tokens can be issued again (revoked ones stay revoked)",
                        ("200", _json(_USER_STATE)), params=[_USER]),
        },
        "/api/v1/admin/quotas": {"get": _op("Default quota and per-user overrides", ("200", {}))},
        "/api/v1/admin/retention": {
            "get": _op("The retention policy (null: kept for ever)", ("200", _json(RetentionPolicy))),
            "put": _op("Set the retention policy", ("200", _json(RetentionPolicy)), body=RetentionPolicy),
        },
        "/api/v1/admin/retention/sweep": {
            "post": _op("Apply the retention policy now; also aborts abandoned multipart uploads",
                        ("200", _json(SweepReport))),
        },
        "/api/v1/admin/usage": {"get": _op("Storage per user under submissions/, blobs/ and results/",
                                           ("200", _json(UsageReport)))},
        "/api/v1/admin/quotas/default": {
            "put": _op("Set the default quota (takes effect at once)", ("200", _json(Quota)), body=Quota),
        },
        "/api/v1/admin/quotas/users/{user}": {
            "get": _op("A user's effective quota and override", ("200", {}), params=[_USER]),
            "put": _op("Set a user's override (null fields fall back to the default)", ("200", {}),
                       body=QuotaOverride, params=[_USER]),
        },
    }  # fmt: skip
    return {
        "openapi": "3.1.0",
        "info": {"title": "LeadersBoard API", "version": "1"},
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
    }


async def serve(request: web.Request) -> web.Response:
    return web.json_response(document())
