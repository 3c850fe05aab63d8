"""The public MLflow port: an authenticating, read-only reverse proxy in front of MLflow's basic-auth app.

Users sign in with HTTP Basic auth: their platform user name and one of their API tokens (checked against the
token store, so a revoked token stops working within `mlflow_token_cache_s`). Admin tokens may do everything;
users may read what ingest/mlflow_policy.py allows, and a run's artifacts only if the run is theirs (its
`user` tag), except `metrics.json`. Requests go on to MLflow with MLflow's admin account; the runners' own
MLflow account passes with its own credentials (remote GPU hosts log runs through this port). Bodies are
streamed both ways: artifacts can be large.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import json
import logging
import time
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass

import aiohttp
import httpx
from aiohttp import web
from multidict import CIMultiDict
from nats.errors import ConnectionClosedError, NoServersError
from nats.errors import TimeoutError as NatsTimeoutError
from pydantic import SecretStr

from ingest.context import SERVICES, SETTINGS
from ingest.errors import (
    ApiError,
    Forbidden,
    NotFound,
    PayloadTooLarge,
    ServiceUnavailable,
    Unauthorized,
    error_response,
)
from ingest.mlflow_policy import PUBLIC_ARTIFACT, Kind, Verdict, classify, filter_listing, visible_to_others
from ingest.mlflow_ui import UI_PAGES, with_ui_defaults
from ingest.settings import IngestSettings
from leadersboard.mlflow_auth import MlflowAccountError, ensure_user
from leadersboard.models.records import Role, TokenRecord
from leadersboard.tokens import TokenStore

__all__ = ["MlflowProxy", "serving"]

log = logging.getLogger("ingest.mlflow")

REALM = 'Basic realm="LeadersBoard MLflow"'
CHUNK_BYTES = 256 * 1024
MAX_INSPECTED_BYTES = 1024**2
"""Bodies the proxy reads whole (GraphQL queries, a listing it filters); everything else is streamed."""
MAX_CACHED = 10_000
# Hop-by-hop headers (RFC 9110 7.6.1) and what the proxy sets itself.
_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
_NOT_FORWARDED = _HOP | {"host", "authorization"}


@dataclass(frozen=True)
class Caller:
    user: str
    admin: bool


CURRENT_USER = frozenset({"/api/2.0/mlflow/users/current", "/ajax-api/2.0/mlflow/users/current"})


def _current_user(caller: Caller) -> web.Response:
    """Who the UI says is signed in: the platform user, not the MLflow account the proxy forwards with.

    `is_basic_auth` false hides the UI's change-password dialog, which would change that account's password.
    """
    user = {"id": 0, "username": caller.user, "is_admin": caller.admin}
    return web.json_response({"user": user, "is_basic_auth": False})


@dataclass(frozen=True)
class RunFacts:
    owner: str | None
    experiment_id: str


class _Expiring:
    """A small time-bounded cache (monotonic clock), emptied when it grows past MAX_CACHED."""

    def __init__(self, ttl_s: float) -> None:
        self.ttl_s = ttl_s
        self._items: dict[str, tuple[float, object]] = {}

    def get(self, key: str) -> object | None:
        found = self._items.get(key)
        if found is None or found[0] < time.monotonic():
            return None
        return found[1]

    def put(self, key: str, value: object) -> None:
        if self.ttl_s <= 0:
            return
        if len(self._items) >= MAX_CACHED:
            self._items.clear()
        self._items[key] = (time.monotonic() + self.ttl_s, value)


class MlflowProxy:
    def __init__(self, settings: IngestSettings, tokens: TokenStore, session: aiohttp.ClientSession) -> None:
        assert settings.mlflow_admin_password is not None
        self.settings = settings
        self.tokens = tokens
        self.session = session
        self.upstream = settings.mlflow_upstream_url.rstrip("/")
        admin = f"{settings.mlflow_admin_user}:{settings.mlflow_admin_password.get_secret_value()}"
        self.admin_auth = "Basic " + base64.b64encode(admin.encode()).decode()
        self.verified = _Expiring(settings.mlflow_token_cache_s)
        self.owners = _Expiring(settings.mlflow_owner_cache_s)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        try:
            return await self._handle(request)
        except ApiError as exc:
            return exc.response()
        except (TimeoutError, aiohttp.ClientConnectionError) as exc:
            log.warning("MLflow unreachable: %r", exc)
            return ServiceUnavailable("MLflow is unreachable; try again in a minute").response()
        except (ConnectionClosedError, NoServersError, NatsTimeoutError) as exc:  # the token store
            log.warning("NATS unreachable while checking an MLflow sign-in: %r", exc)
            return ServiceUnavailable("sign-in is unavailable (the job queue is unreachable); try again").response()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        credentials = _basic_credentials(request)
        if credentials is None:
            raise Unauthorized(
                "sign in with your LeadersBoard user name and an API token", headers={"WWW-Authenticate": REALM}
            )
        caller = await self._caller(*credentials)
        if caller is None:
            if credentials[0] == self.settings.mlflow_runner_user:  # MLflow checks the runners' own account
                return await self._forward(request, request.headers["Authorization"])
            raise Unauthorized(
                "wrong user name or API token (revoked or expired?): the user name is your LeadersBoard user, "
                "the password one of your API tokens",
                headers={"WWW-Authenticate": REALM},
            )
        if request.path in CURRENT_USER:
            return _current_user(caller)
        if caller.admin:
            return await self._forward(request, self.admin_auth)
        verdict = classify(request.method, request.path, request.query)
        if verdict.kind is Kind.DENY:
            raise Forbidden(verdict.reason)
        if verdict.kind is Kind.GRAPHQL:
            return await self._graphql(request)
        if verdict.kind is Kind.ALLOW or visible_to_others(verdict) or await self._owns(caller, verdict):
            return await self._forward(request, self.admin_auth)
        if verdict.kind is Kind.ARTIFACT_LIST and verdict.path == "":
            return await self._filtered_listing(request)
        raise Forbidden(f"only the run's owner and admins may read its artifacts (everyone may read {PUBLIC_ARTIFACT})")

    async def _caller(self, user: str, token: str) -> Caller | None:
        key = hashlib.sha256(f"{user}\0{token}".encode()).hexdigest()
        cached = self.verified.get(key)
        if isinstance(cached, Caller):
            return cached
        record: TokenRecord | None = await self.tokens.verify(token)
        if record is None or record.user != user:
            return None
        caller = Caller(record.user, record.role is Role.ADMIN)
        self.verified.put(key, caller)
        return caller

    async def _owns(self, caller: Caller, verdict: Verdict) -> bool:
        if verdict.kind not in (Kind.ARTIFACT, Kind.ARTIFACT_LIST):
            return False
        facts = await self._run_facts(verdict.run_id)
        if verdict.experiment_id is not None and verdict.experiment_id != facts.experiment_id:
            raise NotFound(f"run {verdict.run_id} is not in experiment {verdict.experiment_id}")
        return facts.owner == caller.user

    async def _run_facts(self, run_id: str) -> RunFacts:
        cached = self.owners.get(run_id)
        if isinstance(cached, RunFacts):
            return cached
        url = f"{self.upstream}/api/2.0/mlflow/runs/get"
        headers = {"Authorization": self.admin_auth}
        async with self.session.get(url, params={"run_id": run_id}, headers=headers) as response:
            if response.status == 404 or response.status == 400:
                raise NotFound(f"no MLflow run {run_id}")
            if response.status != 200:
                raise ServiceUnavailable(f"MLflow answered {response.status} when asked for run {run_id}")
            try:
                run = (await response.json(content_type=None))["run"]
                tags = {t["key"]: t["value"] for t in run.get("data", {}).get("tags", [])}
                facts = RunFacts(tags.get("user"), str(run["info"]["experiment_id"]))
            except (ValueError, KeyError, TypeError) as exc:
                raise ServiceUnavailable(f"MLflow's answer for run {run_id} is unreadable ({exc!r})") from exc
        self.owners.put(run_id, facts)
        return facts

    async def _graphql(self, request: web.Request) -> web.StreamResponse:
        """Every GraphQL field MLflow has reads; only the artifact listing needs an owner, so it is refused."""
        body = await _read_capped(request)
        try:
            query = json.loads(body).get("query") if body else None
        except (ValueError, AttributeError):
            query = None
        # GraphQL names cannot be escaped: a query that uses the field spells it out.
        if not isinstance(query, str) or "mlflowListArtifacts" in query:
            raise Forbidden("GraphQL: send a JSON body with a `query`; mlflowListArtifacts is for admins")
        return await self._forward(request, self.admin_auth, body=body)

    async def _filtered_listing(self, request: web.Request) -> web.StreamResponse:
        async with self._upstream(request, self.admin_auth, None) as response:
            if response.status != 200:
                return await _relay(request, response)
            try:
                listing = json.loads(await response.content.read(MAX_INSPECTED_BYTES))
            except ValueError as exc:  # over MAX_INSPECTED_BYTES (cut) or not JSON: nothing safe to filter
                raise ServiceUnavailable("MLflow's artifact listing is unreadable") from exc
        return web.json_response(filter_listing(listing))

    async def _forward(self, request: web.Request, auth: str, *, body: bytes | None = None) -> web.StreamResponse:
        async with self._upstream(request, auth, body) as response:
            if response.status == 401 and auth == self.admin_auth:
                log.error("MLflow refused the proxy's admin account: check mlflow_admin_user/mlflow_admin_password")
                return error_response(502, "the MLflow proxy is misconfigured; please report it to the administrators")
            if request.method == "GET" and request.path in UI_PAGES and _plain(response):
                return await _ui_page(response)
            return await _relay(request, response)

    def _upstream(
        self, request: web.Request, auth: str, body: bytes | None
    ) -> AbstractAsyncContextManager[aiohttp.ClientResponse]:
        headers = CIMultiDict((k, v) for k, v in request.headers.items() if k.lower() not in _NOT_FORWARDED)
        headers["Authorization"] = auth
        data: object = body if body is not None else (request.content if request.body_exists else None)
        if body is not None:
            headers.pop("Content-Length", None)
        return self.session.request(
            request.method,
            self.upstream + request.rel_url.raw_path_qs,
            headers=headers,
            data=data,
            allow_redirects=False,
        )


async def _relay(request: web.Request, response: aiohttp.ClientResponse) -> web.StreamResponse:
    headers = CIMultiDict((k, v) for k, v in response.headers.items() if k.lower() not in _HOP)
    out = web.StreamResponse(status=response.status, reason=response.reason, headers=headers)
    await out.prepare(request)
    async for chunk in response.content.iter_chunked(CHUNK_BYTES):
        await out.write(chunk)
    await out.write_eof()
    return out


def _plain(response: aiohttp.ClientResponse) -> bool:
    """A 200 the proxy can edit: not compressed (MLflow sends its page plain; the proxy does not decompress)."""
    return response.status == 200 and "Content-Encoding" not in response.headers


async def _ui_page(response: aiohttp.ClientResponse) -> web.Response:
    """MLflow's page (a few hundred bytes), opening experiments on their runs (ingest/mlflow_ui.py); its
    length and validators change with it."""
    page = with_ui_defaults(await response.content.read(MAX_INSPECTED_BYTES))
    dropped = _HOP | {"content-length", "etag", "last-modified"}
    headers = CIMultiDict((k, v) for k, v in response.headers.items() if k.lower() not in dropped)
    return web.Response(status=200, body=page, headers=headers)


async def _read_capped(request: web.Request) -> bytes:
    body = await request.content.read(MAX_INSPECTED_BYTES + 1)
    if len(body) > MAX_INSPECTED_BYTES:
        raise PayloadTooLarge(f"body: at most {MAX_INSPECTED_BYTES} bytes here")
    return body


def _basic_credentials(request: web.Request) -> tuple[str, str] | None:
    scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, sep, password = base64.b64decode(encoded.strip(), validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return (user, password) if sep and user and password else None


def _service_accounts(settings: IngestSettings) -> list[tuple[str, SecretStr]]:
    """The platform's own MLflow accounts whose password ingest holds: the runners' and the scorer's."""
    accounts = [
        (settings.mlflow_runner_user, settings.mlflow_runner_password),
        (settings.mlflow_scorer_user, settings.mlflow_scorer_password),
    ]
    return [(username, password) for username, password in accounts if password is not None]


async def _ensure_account(settings: IngestSettings, username: str, password: SecretStr) -> None:
    """Create a service's MLflow account once MLflow answers; bounded: gives up after mlflow_setup_timeout_s."""
    assert settings.mlflow_admin_password is not None
    admin = (settings.mlflow_admin_user, settings.mlflow_admin_password.get_secret_value())
    deadline = time.monotonic() + settings.mlflow_setup_timeout_s
    while True:
        try:
            await asyncio.to_thread(
                ensure_user,
                settings.mlflow_upstream_url,
                admin=admin,
                username=username,
                password=password.get_secret_value(),
            )
        except httpx.TransportError as exc:
            if time.monotonic() > deadline:
                log.error("gave up creating MLflow account %r: MLflow unreachable (%r)", username, exc)
                return
            await asyncio.sleep(2.0)
            continue
        except MlflowAccountError as exc:  # a refusal does not change by retrying
            log.error("%s", exc)
            return
        log.info("MLflow account %r is ready", username)
        return


async def serving(app: web.Application) -> AsyncIterator[None]:
    """Serve the proxy on `mlflow_proxy_port` for as long as the API runs (a cleanup context of the API's app,
    after the one that connects to NATS: the proxy checks tokens in the same token store)."""
    settings, tokens = app[SETTINGS], app[SERVICES].tokens
    assert settings.mlflow_proxy_port is not None
    timeout = aiohttp.ClientTimeout(total=None, connect=10, sock_read=300)
    # auto_decompress off: bodies pass through byte for byte, with their Content-Encoding and Content-Length.
    session = aiohttp.ClientSession(timeout=timeout, auto_decompress=False)
    proxy = MlflowProxy(settings, tokens, session)
    proxy_app = web.Application(client_max_size=0)
    proxy_app.router.add_route("*", "/{tail:.*}", proxy.handle)
    runner = web.AppRunner(proxy_app, shutdown_timeout=10)
    await runner.setup()
    await web.TCPSite(runner, settings.host, settings.mlflow_proxy_port).start()
    setup = [asyncio.create_task(_ensure_account(settings, *account)) for account in _service_accounts(settings)]
    try:
        yield
    finally:
        for task in setup:
            task.cancel()
        await runner.cleanup()
        await session.close()
