"""Who is calling: the bearer token, checked against the token store on every request."""

from __future__ import annotations

from aiohttp import web

from ingest.errors import Forbidden, Unauthorized
from leadersboard.models.records import Role, TokenRecord
from leadersboard.tokens import TokenStore

__all__ = ["require_admin", "require_token"]


async def require_token(request: web.Request, tokens: TokenStore) -> TokenRecord:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("missing API token: send `Authorization: Bearer <token>`")
    record = await tokens.verify(token.strip())
    if record is None:
        raise Unauthorized("invalid, expired or revoked API token; ask an administrator for a new one")
    return record


async def require_admin(request: web.Request, tokens: TokenStore) -> TokenRecord:
    record = await require_token(request, tokens)
    if record.role is not Role.ADMIN:
        raise Forbidden("this endpoint is for administrators")
    return record
