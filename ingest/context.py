"""What every handler needs: the connected services, and the request's JSON body."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiohttp import web
from nats.aio.client import Client as NATS

from ingest.errors import BadRequest, ServiceUnavailable
from ingest.settings import IngestSettings
from leadersboard.issued import IssuedStore
from leadersboard.jobs import JobStore
from leadersboard.quotas import QuotaStore
from leadersboard.s3 import S3Client
from leadersboard.tokens import TokenStore

__all__ = ["SERVICES", "SETTINGS", "Services", "json_body", "services"]


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


async def json_body(request: web.Request) -> Any:
    try:
        return await request.json()
    except ValueError as exc:
        raise BadRequest(f"body: not valid JSON ({exc})") from exc
