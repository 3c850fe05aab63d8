"""Admin routes: issue, list and revoke tokens; disable and enable users; quotas."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from aiohttp import web
from pydantic import BaseModel, Field

from ingest.auth import caller_of
from ingest.context import admin_only, parse_body, services
from ingest.errors import BadRequest, Conflict, NotFound
from leadersboard.jobs import JobStore
from leadersboard.keys import USER_NAME_PATTERN, is_user_name
from leadersboard.models.base import utcnow
from leadersboard.models.records import DisabledUser, JobRecord, Quota, QuotaOverride, Role, TokenRecord
from leadersboard.tokens import UserDisabledError

__all__ = ["CreateTokenRequest", "add_routes"]


class CreateTokenRequest(BaseModel):
    user: str = Field(pattern=USER_NAME_PATTERN)
    role: Role = Role.USER
    # Ten years at most: beyond that a date overflows, and no token should live that long.
    expires_in_s: int | None = Field(default=None, gt=0, le=10 * 365 * 24 * 3600)


def add_routes(app: web.Application) -> None:
    app.router.add_post("/api/v1/admin/tokens", create_token)
    app.router.add_get("/api/v1/admin/tokens", list_tokens)
    app.router.add_post("/api/v1/admin/tokens/{token_id}/revoke", revoke_token)
    app.router.add_post("/api/v1/admin/users/{user}/disable", disable_user)
    app.router.add_post("/api/v1/admin/users/{user}/enable", enable_user)
    app.router.add_get("/api/v1/admin/quotas", list_quotas)
    app.router.add_put("/api/v1/admin/quotas/default", set_default_quota)
    app.router.add_get("/api/v1/admin/quotas/users/{user}", get_user_quota)
    app.router.add_put("/api/v1/admin/quotas/users/{user}", set_user_quota)


def _token_view(record: TokenRecord) -> dict[str, Any]:
    return record.model_dump(mode="json", exclude={"version"})


@admin_only
async def create_token(request: web.Request) -> web.Response:
    svc = services(request)
    body = await parse_body(request, CreateTokenRequest)
    expires_at = utcnow() + timedelta(seconds=body.expires_in_s) if body.expires_in_s else None
    try:
        token, record = await svc.tokens.create(body.user, role=body.role, expires_at=expires_at)
    except UserDisabledError as exc:
        raise Conflict(f"user: {exc}") from exc
    return web.json_response({"token": token, **_token_view(record)}, status=201)


@admin_only
async def list_tokens(request: web.Request) -> web.Response:
    svc = services(request)
    return web.json_response({"tokens": [_token_view(r) for r in await svc.tokens.list_records()]})


@admin_only
async def revoke_token(request: web.Request) -> web.Response:
    svc = services(request)
    record = await svc.tokens.revoke(request.match_info["token_id"])
    if record is None:
        raise NotFound(f"no token with id {request.match_info['token_id']!r}")
    return web.json_response(_token_view(record))


@admin_only
async def disable_user(request: web.Request) -> web.Response:
    """Revoke every token of the user, refuse new ones, and cancel its pending and running jobs."""
    svc, caller = services(request), caller_of(request)
    user = _user(request)
    if user == caller.user:
        raise Conflict(f"user: {user!r} is your own account; another admin has to disable it")
    revoked = await svc.tokens.disable_user(user, by=caller.user)
    state = await svc.tokens.disabled(user)
    if state is None:  # enabled again by a concurrent call: report what is true now
        return web.json_response(_user_view(user, None, revoked, []))
    cancelled = [
        record.submission_id
        for record in await svc.jobs.list_records(user)
        if state.stopped(record) or (not record.status.terminal and await _cancel_for(svc.jobs, record, state))
    ]
    return web.json_response(_user_view(user, state, revoked, cancelled))


async def _cancel_for(jobs: JobStore, record: JobRecord, state: DisabledUser) -> bool:
    """Mark the job cancelled as POST /submissions/{id}/cancel does (a runner running it notices at its next
    heartbeat and kills it). True if it ends cancelled by this disabling: here, or meanwhile by the dispatcher."""
    stored = await jobs.update(record.user, record.submission_id, state.cancel)
    return stored is not None and state.stopped(stored)


@admin_only
async def enable_user(request: web.Request) -> web.Response:
    """Let the user be issued tokens again; the tokens revoked by `disable` stay revoked."""
    svc = services(request)
    user = _user(request)
    await svc.tokens.enable_user(user)
    return web.json_response(_user_view(user, None, [], []))


def _user_view(
    user: str, state: DisabledUser | None, revoked: list[TokenRecord], cancelled: list[str]
) -> dict[str, Any]:
    return {
        "user": user,
        "disabled": state is not None,
        "disabled_at": state.disabled_at.isoformat() if state else None,
        "disabled_by": state.disabled_by if state else None,
        "revoked_tokens": [r.token_id for r in revoked],
        "cancelled": cancelled,
    }


@admin_only
async def list_quotas(request: web.Request) -> web.Response:
    svc = services(request)
    overrides = await svc.quotas.overrides()
    body = {
        "default": (await svc.quotas.default()).model_dump(exclude={"version"}),
        "users": {user: o.model_dump(exclude={"version"}) for user, o in sorted(overrides.items())},
    }
    return web.json_response(body)


@admin_only
async def set_default_quota(request: web.Request) -> web.Response:
    svc = services(request)
    quota = await parse_body(request, Quota)
    await svc.quotas.set_default(quota)
    return web.json_response(quota.model_dump(exclude={"version"}))


def _user(request: web.Request) -> str:
    user = request.match_info["user"]
    if not is_user_name(user):
        raise BadRequest(f"user: {user!r} is not a valid user name")
    return user


@admin_only
async def get_user_quota(request: web.Request) -> web.Response:
    svc = services(request)
    user = _user(request)
    override = await svc.quotas.override(user)
    body = {
        "user": user,
        "effective": (await svc.quotas.effective(user)).model_dump(exclude={"version"}),
        "override": override.model_dump(exclude={"version"}) if override else None,
    }
    return web.json_response(body)


@admin_only
async def set_user_quota(request: web.Request) -> web.Response:
    svc = services(request)
    user = _user(request)
    await svc.quotas.set_override(user, await parse_body(request, QuotaOverride))
    return await get_user_quota(request)
