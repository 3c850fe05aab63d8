"""The aiohttp application: wiring of services, middlewares and routes."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from aiohttp import web
from aiohttp.typedefs import Middleware
from botocore.exceptions import BotoCoreError, ClientError
from nats.errors import ConnectionClosedError, NoServersError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.errors import ServiceUnavailableError
from pydantic import ValidationError

from ingest import benchmarks, deletion, leaderboard, mlflow_proxy, retention, routes
from ingest.auth import auth_middleware
from ingest.board import BoardIndex, following
from ingest.context import SERVICES, SETTINGS, Handler, Services, route_spec
from ingest.errors import ApiError, BadRequest, ServiceUnavailable, http_error_response
from ingest.replicates import ReplicateCache
from ingest.settings import IngestSettings
from leadersboard import nats_io
from leadersboard.benchmarks.catalogue import BenchmarkCatalogue
from leadersboard.issued import IssuedStore
from leadersboard.jobs import JobStore
from leadersboard.metadata import FieldProblem
from leadersboard.models.api import NEXT_VERSION_HEADER
from leadersboard.models.records import Role
from leadersboard.quotas import QuotaStore
from leadersboard.s3 import make_client, make_presigner
from leadersboard.tokens import TokenStore

__all__ = ["create_app"]

log = logging.getLogger("ingest")


def create_app(settings: IngestSettings) -> web.Application:
    # Outermost first: CORS headers go on every answer, errors become the API's body, then what the route
    # declared (ingest/context.py RouteSpec) is checked: NATS up, then the token.
    middlewares: list[Middleware] = [cors_middleware(settings), error_middleware, nats_middleware, auth_middleware]
    app = web.Application(middlewares=middlewares, client_max_size=1024**2)
    app[SETTINGS] = settings
    app.cleanup_ctx.append(_services)
    app.cleanup_ctx.append(retention.serving)  # the policy's store and the periodic sweep, on the services
    if settings.mlflow_proxy_port is not None:  # the public MLflow port, on the same token store
        app.cleanup_ctx.append(mlflow_proxy.serving)
    routes.add_routes(app)
    benchmarks.add_routes(app)
    deletion.add_routes(app)
    retention.add_routes(app)
    leaderboard.add_routes(app)
    return app


async def _services(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    board = BoardIndex()

    async def reload_board() -> None:  # after a reconnect the view's watcher may be gone
        board.resync.set()

    nc = await nats_io.connect(settings, name="ingest", on_reconnect=reload_board)
    js = nc.jetstream()  # the topology is the admin's to declare (nats_io.ensure_topology): here we only bind
    jobs = JobStore(await js.key_value(settings.jobs_kv_bucket))
    tokens = TokenStore(await js.key_value(settings.tokens_kv_bucket))
    quotas = QuotaStore(await js.key_value(settings.quotas_kv_bucket))
    if settings.admin_token is not None:
        await tokens.ensure(settings.admin_token.get_secret_value(), settings.admin_user, Role.ADMIN)
    issued = IssuedStore(await js.key_value(settings.issued_kv_bucket))
    catalogue = BenchmarkCatalogue(await js.key_value(settings.benchmarks_kv_bucket))
    board_kv = await js.key_value(settings.board_kv_bucket)
    s3 = make_client(settings)
    replicates = ReplicateCache(s3, settings.bucket, max_bytes=settings.replicate_cache_mb * 1024**2)
    app[SERVICES] = Services(
        settings, nc, jobs, tokens, quotas, issued, s3, make_presigner(settings), catalogue,
        board=board, board_kv=board_kv, replicates=replicates,
    )  # fmt: skip
    async with following(board, board_kv):
        yield
    board.close()
    await nc.drain()


_BACKEND_DOWN = (
    ConnectionClosedError,
    NoServersError,
    NatsTimeoutError,
    ServiceUnavailableError,
    asyncio.TimeoutError,
    BotoCoreError,
)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        return exc.response()
    except ValidationError as exc:
        return BadRequest(_describe(exc)).response()
    except _BACKEND_DOWN as exc:
        log.warning("backing service unavailable: %r", exc)
        return ServiceUnavailable("a backing service (job queue or store) is unreachable; retry shortly").response()
    except ClientError as exc:
        log.warning("store error: %s", exc)
        return ServiceUnavailable("the object store refused the request; retry shortly").response()
    except web.HTTPException as exc:
        # aiohttp's own: no such route (404), method not allowed (405), body over client_max_size (413).
        if exc.status < 400:
            raise
        return http_error_response(exc, request)
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return ApiError("internal server error; please report it to the administrators").response()


@web.middleware
async def nats_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer 503 at once while NATS is away, rather than after every call's timeout (routes declared
    `@without_nats` answer anyway)."""
    if route_spec(request).nats and request.method != "OPTIONS":
        request.app[SERVICES].require_nats()
    return await handler(request)


def cors_middleware(settings: IngestSettings) -> Middleware:
    allowed = set(settings.cors_origins)
    # The headers a page may read: a 429's wait, where a log goes on and its job's status, a benchmark's next version.
    exposed = ", ".join(("Retry-After", "X-Next-Offset", "X-Job-Status", NEXT_VERSION_HEADER))

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        origin = request.headers.get("Origin")
        if request.method == "OPTIONS" and origin:
            response: web.StreamResponse = web.Response(status=204)
        else:
            response = await handler(request)
        if origin and ("*" in allowed or origin in allowed):
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Access-Control-Allow-Headers"] = "Authorization, Content-Type"
            response.headers["Access-Control-Allow-Methods"] = "GET, POST, DELETE, OPTIONS"
            response.headers["Access-Control-Expose-Headers"] = exposed
        return response

    return middleware


def _describe(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors(include_input=False)[:5]:
        location = [str(p)[:60] for p in error["loc"]]  # a hostile key is named, not echoed whole
        cause = error.get("ctx", {}).get("error")
        if isinstance(cause, FieldProblem):  # found below the field, e.g. metadata.x<y
            location += cause.path
            message = cause.problem
        else:
            message = error["msg"]
        parts.append(f"{'.'.join(location) or 'body'}: {message}")
    return "invalid request: " + "; ".join(parts)
