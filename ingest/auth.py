"""Who is calling: the bearer token, checked against the token store before the handler of every route that
needs one (ingest/context.py `RouteSpec`), and kept on the request for the handler (`caller_of`)."""

from __future__ import annotations

from aiohttp import web

from ingest.context import Access, Handler, route_spec, services
from ingest.errors import Forbidden, Unauthorized
from leadersboard.models.records import Role, TokenRecord
from leadersboard.tokens import TokenStore

__all__ = ["CALLER", "auth_middleware", "caller_of"]

CALLER = web.RequestKey("caller", TokenRecord)


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """401 without a valid token, 403 for a user on an admins' route; else the caller goes on the request."""
    access = route_spec(request).access
    if access is not Access.PUBLIC:
        caller = await _verified(request, services(request).tokens)
        if access is Access.ADMIN and caller.role is not Role.ADMIN:
            raise Forbidden("this endpoint is for administrators")
        request[CALLER] = caller
    return await handler(request)


def caller_of(request: web.Request) -> TokenRecord:
    """The verified caller of a route that needs a token (every route not declared `@public`)."""
    return request[CALLER]


async def _verified(request: web.Request, tokens: TokenStore) -> TokenRecord:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("missing API token: send `Authorization: Bearer <token>`")
    record = await tokens.verify(token.strip())
    if record is None:
        raise Unauthorized("invalid, expired or revoked API token; ask an administrator for a new one")
    return record
