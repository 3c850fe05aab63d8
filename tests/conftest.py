"""Real services for the tests: a nats-server per test, one SeaweedFS and one MLflow per session."""

from __future__ import annotations

import secrets
import warnings
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from nats.aio.client import Client as NATS

from leadersboard import nats_io
from leadersboard.s3 import ensure_bucket, make_client
from leadersboard.settings import NatsSettings, S3Settings
from tests.api_fixtures import alice, api, app, bob, jobs, settings, tokens  # noqa: F401  (shared fixtures)
from tests.compose_fixtures import compose, env, gpu_host_raw, gpu_host_services, raw, services  # noqa: F401  (compose files)
from tests.leaderboard_fixtures import board_kv  # noqa: F401  (the leaderboard view's bucket)
from tests.nats_user_fixtures import as_user, users_server  # noqa: F401  (NATS users' connections)
from tests.sandbox_fixtures import data_root  # noqa: F401  (shared fixture)
from tests.scorer_fixtures import benchmark_split, mlflow_env, scorer_mlflow, scoring  # noqa: F401  (shared fixtures)
from tests.stack_fixtures import admin, demo, stack  # noqa: F401  (shared fixtures)
from tests.web_fixtures import browser, chromium, page, web  # noqa: F401  (shared fixtures)
from tools.stack.procs import SeaweedPorts, free_port
from tools.stack.services import NatsServer, Seaweed, start_nats, start_seaweed

warnings.filterwarnings("ignore", category=DeprecationWarning, module="botocore")


@pytest.fixture(scope="session", autouse=True)
def private_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The client's sha256 cache goes to a temporary directory, not the developer's home."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache")))
        yield


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    server = start_nats(tmp_path / "nats-root", port=free_port())
    yield server
    server.process.stop()


@pytest.fixture
def nats_settings(nats_server: NatsServer) -> NatsSettings:
    """The NATS admin's settings: tests keep every right (tests/test_nats_permissions.py checks the users')."""
    return nats_server.settings()


@pytest.fixture
async def nc(nats_settings: NatsSettings) -> AsyncIterator[NATS]:
    client = await nats_io.connect(nats_settings, name="test")
    await nats_io.ensure_topology(client.jetstream(), nats_settings)
    yield client
    await client.drain()


SESSION_VOLUME_MB = 16


@pytest.fixture(scope="session")
def seaweed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seaweed]:
    server = start_seaweed(
        tmp_path_factory.mktemp("seaweed"),
        ports=SeaweedPorts.free(),
        access_key="test-" + secrets.token_hex(4),
        secret_key=secrets.token_hex(16),
        # A fresh bucket per test, a volume per bucket: with weed mini's 128 MB volumes the session ran out of
        # volumes (free disk / volume size) a few hundred tests in, and every write failed with InternalError.
        volume_size_limit_mb=SESSION_VOLUME_MB,
    )
    yield server
    server.process.stop()


@pytest.fixture
def s3_settings(seaweed: Seaweed) -> S3Settings:
    """A fresh bucket per test in the session's SeaweedFS."""
    fresh = seaweed.settings(bucket="t" + secrets.token_hex(6))
    ensure_bucket(make_client(fresh), fresh.bucket)
    return fresh
