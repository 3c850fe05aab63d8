"""What a route declares (ingest/context.py RouteSpec) holds for every route the app serves, read from its router
so that a new route cannot be forgotten: no token 401, a user on an admins' route 403, NATS away 503, and the
verified caller on the request for the handler. Through the real app, nats-server and SeaweedFS."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from ingest.app import create_app
from ingest.auth import caller_of
from ingest.context import SERVICES, Access, RouteSpec, admin_only, spec_of
from ingest.openapi import document
from ingest.settings import IngestSettings
from leadersboard.models.records import Role
from leadersboard.tokens import TokenStore, new_token
from tests.api_fixtures import ADMIN_TOKEN, Api, bearer
from tools.stack.services import NatsServer

pytestmark = pytest.mark.timeout(120)

PUBLIC = {"/api/v1/health", "/api/v1/openapi.json"}
NO_TOKEN = "missing API token: send `Authorization: Bearer <token>`"
BAD_TOKEN = "invalid, expired or revoked API token; ask an administrator for a new one"
NOT_ADMIN = "this endpoint is for administrators"
NATS_AWAY = "the job queue (NATS) is unreachable; try again in a minute"


def served(app: web.Application) -> list[tuple[str, str, RouteSpec]]:
    """Every (method, path, declaration) the app's router serves; path parameters get a sample value."""
    found = []
    for route in app.router.routes():
        assert route.resource is not None
        names = re.findall(r"\{(\w+)\}", route.resource.canonical)
        path = str(route.resource.url_for(**{name: "sample" for name in names}))
        found.append((route.method, path, spec_of(route.handler)))
    assert len(found) >= 20  # the API's routes, each with its HEAD for a GET
    return found


async def until(condition: Callable[[], bool]) -> None:
    """Wait for `condition`, a client's connection state, for at most 30 s."""
    for _ in range(600):
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the NATS client's state did not change within 30 s")


async def error_of(response: Any, status: int, message: str) -> None:
    """`response` has `status`; unless it answers a HEAD, the error body says `message`."""
    assert response.status == status, await response.text()
    if response.method != "HEAD":
        assert (await response.json())["error"]["message"] == message


async def test_every_route_but_the_public_ones_answers_401_without_a_valid_token(
    api: Api, app: web.Application
) -> None:
    checked = set()
    for method, path, spec in served(app):
        if spec.access is Access.PUBLIC:
            continue
        await error_of(await api.request(method, path), 401, NO_TOKEN)
        await error_of(await api.request(method, path, headers={"Authorization": "Basic abc"}), 401, NO_TOKEN)
        await error_of(await api.request(method, path, headers=bearer(new_token())), 401, BAD_TOKEN)
        checked.add(path)
    assert "/api/v1/submissions" in checked and "/api/v1/admin/tokens" in checked


async def test_only_health_and_the_api_document_are_public(api: Api, app: web.Application) -> None:
    public = {(method, path) for method, path, spec in served(app) if spec.access is Access.PUBLIC}
    assert public == {(method, path) for path in PUBLIC for method in ("GET", "HEAD")}
    for _, path in public:
        assert (await api.get(path)).status == 200
    # The document says the same: its operations without security are the public routes.
    unsecured = {path for path, item in document()["paths"].items() for op in item.values() if op.get("security") == []}
    assert unsecured == PUBLIC


async def test_the_admins_routes_refuse_a_users_token_with_403(
    api: Api, app: web.Application, alice: str, tokens: TokenStore
) -> None:
    revoked, record = await tokens.create("carol", role=Role.ADMIN)
    await tokens.revoke(record.token_id)
    admin_routes = [(method, path) for method, path, spec in served(app) if spec.access is Access.ADMIN]
    assert {path for _, path in admin_routes} >= {"/api/v1/admin/tokens", "/api/v1/admin/quotas/users/sample"}
    assert all(path.startswith("/api/v1/admin/") for _, path in admin_routes)
    for method, path in admin_routes:
        await error_of(await api.request(method, path, headers=bearer(alice)), 403, NOT_ADMIN)
        await error_of(await api.request(method, path, headers=bearer(revoked)), 401, BAD_TOKEN)
    user_routes = [path for _, path, spec in served(app) if spec.access is Access.USER]
    assert not any(path.startswith("/api/v1/admin/") for path in user_routes)


async def test_the_routers_own_answers_need_no_token(api: Api) -> None:
    assert (await api.get("/api/v1/no-such-route")).status == 404
    assert (await api.delete("/api/v1/submissions")).status == 405


@pytest.fixture
async def probed(settings: IngestSettings) -> AsyncIterator[Api]:
    """The app with two more routes, one for anyone with a token and one for admins, that echo their caller."""
    app = create_app(settings)

    async def anyone(request: web.Request) -> web.Response:
        return web.json_response(caller_of(request).model_dump(mode="json", include={"user", "role", "token_id"}))

    @admin_only
    async def admins(request: web.Request) -> web.Response:
        return web.json_response(caller_of(request).model_dump(mode="json", include={"user", "role", "token_id"}))

    app.router.add_get("/probe/anyone", anyone)
    app.router.add_get("/probe/admins", admins)
    async with TestClient(TestServer(app)) as client:
        yield client


async def test_the_verified_caller_is_on_the_request(probed: Api, tokens: TokenStore) -> None:
    token, record = await tokens.create("alice")
    caller = {"user": "alice", "role": "user", "token_id": record.token_id}
    response = await probed.get("/probe/anyone", headers=bearer(token))
    assert response.status == 200 and await response.json() == caller
    await error_of(await probed.get("/probe/admins", headers=bearer(token)), 403, NOT_ADMIN)
    response = await probed.get("/probe/admins", headers=bearer(ADMIN_TOKEN))
    assert response.status == 200 and (await response.json())["role"] == "admin"


async def test_an_undeclared_route_needs_a_token(probed: Api) -> None:
    await error_of(await probed.get("/probe/anyone"), 401, NO_TOKEN)
    await error_of(await probed.get("/probe/admins", headers=bearer(new_token())), 401, BAD_TOKEN)


async def test_while_nats_is_away_only_the_routes_declared_without_it_answer(
    api: Api, app: web.Application, nats_server: NatsServer
) -> None:
    nc = app[SERVICES].nc
    nats_server.process.stop()
    await until(lambda: not nc.is_connected)
    answering = set()
    for method, path, spec in served(app):
        if spec.nats:
            await error_of(await api.request(method, path, headers=bearer(ADMIN_TOKEN)), 503, NATS_AWAY)
        else:
            answering.add(path)
    assert answering == PUBLIC
    assert (await api.get("/api/v1/openapi.json")).status == 200
    health = await api.get("/api/v1/health")
    assert health.status == 503 and (await health.json())["nats"] is False
    nats_server.process.start()  # and the app reconnects, for its cleanup to drain a connected client
    await until(lambda: nc.is_connected)
