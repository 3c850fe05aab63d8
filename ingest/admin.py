"""Admin routes: issue, list and revoke tokens."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from aiohttp import web
from pydantic import BaseModel, Field

from ingest.auth import require_admin
from ingest.context import json_body, services
from ingest.errors import BadRequest, NotFound
from leadersboard.models import USER_NAME_PATTERN, Quota, QuotaOverride, Role, TokenRecord, utcnow

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
    app.router.add_get("/api/v1/admin/quotas", list_quotas)
    app.router.add_put("/api/v1/admin/quotas/default", set_default_quota)
    app.router.add_get("/api/v1/admin/quotas/users/{user}", get_user_quota)
    app.router.add_put("/api/v1/admin/quotas/users/{user}", set_user_quota)


def _token_view(record: TokenRecord) -> dict[str, Any]:
    return record.model_dump(mode="json", exclude={"version"})


async def create_token(request: web.Request) -> web.Response:
    svc = services(request)
    await require_admin(request, svc.tokens)
    body = CreateTokenRequest.model_validate(await json_body(request))
    expires_at = utcnow() + timedelta(seconds=body.expires_in_s) if body.expires_in_s else None
    token, record = await svc.tokens.create(body.user, role=body.role, expires_at=expires_at)
    return web.json_response({"token": token, **_token_view(record)}, status=201)


async def list_tokens(request: web.Request) -> web.Response:
    svc = services(request)
    await require_admin(request, svc.tokens)
    return web.json_response({"tokens": [_token_view(r) for r in await svc.tokens.list_records()]})


async def revoke_token(request: web.Request) -> web.Response:
    svc = services(request)
    await require_admin(request, svc.tokens)
    record = await svc.tokens.revoke(request.match_info["token_id"])
    if record is None:
        raise NotFound(f"no token with id {request.match_info['token_id']!r}")
    return web.json_response(_token_view(record))


async def list_quotas(request: web.Request) -> web.Response:
    svc = services(request)
    await require_admin(request, svc.tokens)
    overrides = await svc.quotas.overrides()
    body = {
        "default": (await svc.quotas.default()).model_dump(exclude={"version"}),
        "users": {user: o.model_dump(exclude={"version"}) for user, o in sorted(overrides.items())},
    }
    return web.json_response(body)


async def set_default_quota(request: web.Request) -> web.Response:
    svc = services(request)
    await require_admin(request, svc.tokens)
    quota = Quota.model_validate(await json_body(request))
    await svc.quotas.set_default(quota)
    return web.json_response(quota.model_dump(exclude={"version"}))


def _user(request: web.Request) -> str:
    user = request.match_info["user"]
    if not re.match(USER_NAME_PATTERN, user):
        raise BadRequest(f"user: {user!r} is not a valid user name")
    return user


async def get_user_quota(request: web.Request) -> web.Response:
    svc = services(request)
    await require_admin(request, svc.tokens)
    user = _user(request)
    override = await svc.quotas.override(user)
    body = {
        "user": user,
        "effective": (await svc.quotas.effective(user)).model_dump(exclude={"version"}),
        "override": override.model_dump(exclude={"version"}) if override else None,
    }
    return web.json_response(body)


async def set_user_quota(request: web.Request) -> web.Response:
    svc = services(request)
    await require_admin(request, svc.tokens)
    user = _user(request)
    await svc.quotas.set_override(user, QuotaOverride.model_validate(await json_body(request)))
    return await get_user_quota(request)
