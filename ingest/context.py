"""What every handler needs: the connected services, the request's JSON body, and what its route declares.

A route declares what must hold before its handler runs (`RouteSpec`: a caller's token, an admin's, NATS up)
with `@public`, `@admin_only` and `@without_nats`; the middlewares in ingest/app.py and ingest/auth.py see to it,
so no handler checks it again.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any, TypeVar

from aiohttp import web
from nats.aio.client import Client as NATS
from nats.js.kv import KeyValue
from pydantic import BaseModel

from ingest.board import BoardIndex
from ingest.errors import BadRequest, ServiceUnavailable
from ingest.replicates import ReplicateCache
from ingest.settings import IngestSettings
from leadersboard.benchmarks.catalogue import BenchmarkCatalogue
from leadersboard.issued import IssuedStore
from leadersboard.jobs import JobStore
from leadersboard.limits import json_depth
from leadersboard.quotas import QuotaStore
from leadersboard.s3 import S3Client
from leadersboard.tokens import TokenStore

__all__ = [
    "MAX_BODY_DEPTH",
    "SERVICES",
    "SETTINGS",
    "Access",
    "Handler",
    "RouteSpec",
    "Services",
    "admin_only",
    "parse_body",
    "public",
    "route_spec",
    "services",
    "spec_of",
    "without_nats",
]

MAX_BODY_DEPTH = 32
"""Objects and lists nested in a request body: no body the API defines comes near (metadata stops at 5).
Refused before validation, so that neither pydantic's parser (200 levels) nor a serializer recurses deeper."""

Model = TypeVar("Model", bound=BaseModel)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
H = TypeVar("H", bound=Handler)


@dataclass
class Services:
    settings: IngestSettings
    nc: NATS
    jobs: JobStore
    tokens: TokenStore
    quotas: QuotaStore
    issued: IssuedStore
    s3: S3Client
    presigner: S3Client
    benchmarks: BenchmarkCatalogue
    board: BoardIndex
    """The leaderboard view, followed in memory (ingest/board.py)."""
    board_kv: KeyValue
    replicates: ReplicateCache

    def require_nats(self) -> None:
        if not self.nc.is_connected:
            raise ServiceUnavailable("the job queue (NATS) is unreachable; try again in a minute")


SERVICES = web.AppKey("services", Services)
SETTINGS = web.AppKey("settings", IngestSettings)


def services(request: web.Request) -> Services:
    return request.app[SERVICES]


class Access(StrEnum):
    PUBLIC = "public"
    """Anyone, without a token."""
    USER = "user"
    """Any valid token (a user's or an admin's)."""
    ADMIN = "admin"
    """An admin's token; a user's is refused with 403."""


@dataclass(frozen=True)
class RouteSpec:
    """What a route needs before its handler runs. Undeclared, a route needs a valid token and NATS."""

    access: Access = Access.USER
    nats: bool = True
    """Answer 503 at once while NATS is away (every token check reads NATS)."""


_SPEC_ATTRIBUTE = "__route_spec__"
# The router's own answers (no such route 404, method not allowed 405) need no token; while NATS is away
# they answer 503 like the routes, as they always have.
_ROUTER_ANSWER = RouteSpec(access=Access.PUBLIC)


def spec_of(handler: object) -> RouteSpec:
    """What the handler's route declared (an undeclared handler: the defaults)."""
    spec = getattr(handler, _SPEC_ATTRIBUTE, None)
    return spec if isinstance(spec, RouteSpec) else RouteSpec()


def route_spec(request: web.Request) -> RouteSpec:
    """What the route the request matched declared."""
    if request.match_info.http_exception is not None:
        return _ROUTER_ANSWER
    return spec_of(request.match_info.handler)


def _declare(handler: H, *, access: Access | None = None, nats: bool | None = None) -> H:
    # On the function itself, so that functools.wraps carries it (with `__dict__`) to a wrapper.
    spec = spec_of(handler)
    spec = replace(spec, access=spec.access if access is None else access, nats=spec.nats if nats is None else nats)
    setattr(handler, _SPEC_ATTRIBUTE, spec)
    return handler


def public(handler: H) -> H:
    """The route answers anyone, without a token."""
    return _declare(handler, access=Access.PUBLIC)


def admin_only(handler: H) -> H:
    """The route answers admins only: 401 without a valid token, 403 with a user's."""
    return _declare(handler, access=Access.ADMIN)


def without_nats(handler: H) -> H:
    """The route answers while NATS is away (it reads nothing from NATS, or reports NATS's state itself)."""
    return _declare(handler, nats=False)


async def parse_body(request: web.Request, model: type[Model]) -> Model:
    """The body as `model`, strictly: JSON types as the schema says (`"10"` is no integer, `true` no number).

    Every request body goes through here; the models stay lenient where they are stored records read back.
    """
    raw = await request.read()  # over client_max_size: aiohttp's 413, answered in the API's shape
    _check_json(raw)
    # JSON mode: a strict enum still takes its value ("admin"), a strict datetime its ISO string.
    return model.model_validate_json(raw, strict=True)


def _check_json(raw: bytes) -> None:
    """Valid JSON no deeper than MAX_BODY_DEPTH, else 400: checked with the standard parser, which tells the
    depth before pydantic's own parser (and its recursion limit) sees the body."""
    try:
        data = json.loads(raw)
    except RecursionError as exc:  # the decoder recurses per level: thousands of `[` exhaust the stack
        raise BadRequest(f"body: nested too deeply (at most {MAX_BODY_DEPTH} levels)") from exc
    except ValueError as exc:
        raise BadRequest(f"body: not valid JSON ({exc})") from exc
    if json_depth(data, limit=MAX_BODY_DEPTH) > MAX_BODY_DEPTH:
        raise BadRequest(f"{_deepest_field(data)}: nested too deeply (a body nests at most {MAX_BODY_DEPTH} levels)")


def _deepest_field(data: Any) -> str:
    """The top-level field of a too deep body that holds the depth, to name it (`metadata`, usually)."""
    if isinstance(data, dict):
        for name, value in data.items():
            if json_depth(value, limit=MAX_BODY_DEPTH) >= MAX_BODY_DEPTH:
                return str(name)[:60]
    return "body"
