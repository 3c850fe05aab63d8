"""What every handler needs: the connected services, and the request's JSON body."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, TypeVar

from aiohttp import web
from nats.aio.client import Client as NATS
from pydantic import BaseModel

from ingest.errors import BadRequest, ServiceUnavailable
from ingest.settings import IngestSettings
from leadersboard.issued import IssuedStore
from leadersboard.jobs import JobStore
from leadersboard.limits import json_depth
from leadersboard.quotas import QuotaStore
from leadersboard.s3 import S3Client
from leadersboard.tokens import TokenStore

__all__ = ["MAX_BODY_DEPTH", "SERVICES", "SETTINGS", "Services", "parse_body", "services"]

MAX_BODY_DEPTH = 32
"""Objects and lists nested in a request body: no body the API defines comes near (metadata stops at 5).
Refused before validation, so that neither pydantic's parser (200 levels) nor a serializer recurses deeper."""

Model = TypeVar("Model", bound=BaseModel)


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

    def require_nats(self) -> None:
        if not self.nc.is_connected:
            raise ServiceUnavailable("the job queue (NATS) is unreachable; try again in a minute")


SERVICES = web.AppKey("services", Services)
SETTINGS = web.AppKey("settings", IngestSettings)


def services(request: web.Request) -> Services:
    return request.app[SERVICES]


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
