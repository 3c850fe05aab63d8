"""The real ingest app on a real socket, wired to the test's nats-server and SeaweedFS, and its users."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from nats.aio.client import Client as NATS
from pydantic import SecretStr

from ingest.app import create_app
from ingest.settings import IngestSettings
from leadersboard.jobs import JobStore
from leadersboard.s3 import ensure_bucket, make_client
from leadersboard.settings import NatsSettings, S3Settings, settings_env
from leadersboard.tokens import TokenStore, new_token
from tools.stack.procs import ManagedProcess, free_port, http_ready
from tools.stack.services import Seaweed, start_nats

__all__ = [
    "ADMIN_TOKEN",
    "MAX_FILE_BYTES",
    "Api",
    "alice",
    "api",
    "app",
    "bearer",
    "bob",
    "ingest_process",
    "jobs",
    "settings",
    "tokens",
]

ADMIN_TOKEN = new_token()
MAX_FILE_BYTES = 1024 * 1024

Api = TestClient[web.Request, web.Application]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def settings(nats_settings: NatsSettings, s3_settings: S3Settings) -> IngestSettings:
    return IngestSettings(
        **nats_settings.model_dump(),
        **s3_settings.model_dump(),
        admin_token=SecretStr(ADMIN_TOKEN),
        max_file_bytes=MAX_FILE_BYTES,
    )


@pytest.fixture
def app(settings: IngestSettings) -> web.Application:
    return create_app(settings)


@pytest.fixture
async def api(app: web.Application) -> AsyncIterator[Api]:
    async with TestClient(TestServer(app)) as client:
        yield client


@pytest.fixture
async def tokens(nc: NATS) -> TokenStore:
    return TokenStore(await nc.jetstream().key_value(NatsSettings().tokens_kv_bucket))


@pytest.fixture
async def jobs(nc: NATS) -> JobStore:
    return JobStore(await nc.jetstream().key_value(NatsSettings().jobs_kv_bucket))


@pytest.fixture
async def alice(tokens: TokenStore) -> str:
    return (await tokens.create("alice"))[0]


@pytest.fixture
async def bob(tokens: TokenStore) -> str:
    return (await tokens.create("bob"))[0]


async def http(method: str, url: str, **kwargs: Any) -> httpx.Response:
    """One plain HTTP call from outside the platform, as a user's browser or script makes it."""
    async with httpx.AsyncClient() as client:
        return await client.request(method, url, **kwargs)


@contextmanager
def ingest_process(root: Path, seaweed: Seaweed, *, admin_token: str) -> Iterator[tuple[str, Path]]:
    """A real `python -m ingest` on a free port, with its own nats-server and bucket: its URL and log file."""
    nats = start_nats(root, port=free_port())
    s3 = seaweed.settings()
    for bucket in (s3.bucket, s3.reference_bucket):  # an admin's benchmark parts go to the reference one
        ensure_bucket(make_client(s3), bucket)
    port = free_port()
    settings = IngestSettings(
        **nats.settings().model_dump(), **s3.model_dump(), port=port, admin_token=SecretStr(admin_token),
        manifest_secret=SecretStr("test-secret"),
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    log_path = root / "ingest.log"
    ingest = ManagedProcess(
        "ingest", [sys.executable, "-m", "ingest"], log_path, env=settings_env(settings),
        ready=http_ready(f"{url}/api/v1/health"),
    )  # fmt: skip
    ingest.start().wait_ready(60)
    try:
        yield url, log_path
    finally:
        ingest.stop()
        nats.process.stop()
