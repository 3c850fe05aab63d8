"""A real nats-server run with the config the local stack writes (one per test module), a connection per NATS
user that collects the permission violations the server reports, and the records the tests of
tests/test_nats_permissions*.py store or publish."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any

import nats
import pytest
from nats.aio.client import Client as NATS
from nats.js.kv import KeyValue

from leadersboard.models.benchmarks import BenchmarkInfo, BenchmarkRecord, CategorySummary, StoredPart
from leadersboard.models.queue import ScoreRequest
from leadersboard.models.records import JobRecord
from leadersboard.nats_permissions import inbox_prefix
from leadersboard.settings import NatsSettings
from tools.stack.procs import free_port
from tools.stack.services import NatsServer, start_nats

T = NatsSettings()  # the topology's default names, as the stack and compose use them
VIOLATION_WAIT_S = 10.0


@pytest.fixture(scope="module")
def users_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    """One nats-server per test module, its users as the local stack configures them (the per-test `nats_server`
    of tests/conftest.py is for the admin's tests)."""
    started = start_nats(tmp_path_factory.mktemp("nats-users"), port=free_port())
    yield started
    started.process.stop()


class Session:
    """One user's connection, with the permission violations the server reported to it."""

    def __init__(self, nc: NATS, violations: asyncio.Queue[str]) -> None:
        self.nc = nc
        self.js = nc.jetstream(timeout=2)
        self.violations = violations

    async def violation(self) -> str:
        """The next violation the server reported (nats-py lowercases it)."""
        return await asyncio.wait_for(self.violations.get(), VIOLATION_WAIT_S)

    async def denied_request(self, subject: str, payload: bytes = b"") -> str:
        """Send a request the user must not send: no answer comes, the server reports the subject."""
        with pytest.raises(nats.errors.TimeoutError):
            await self.nc.request(subject, payload, timeout=1)
        return await self.violation()

    async def bind(self, bucket: str) -> KeyValue:
        return await self.js.key_value(bucket)


async def _session(server: NatsServer, user: str) -> Session:
    violations: asyncio.Queue[str] = asyncio.Queue()

    async def on_error(exc: Exception) -> None:
        violations.put_nowait(str(exc))

    settings = server.settings(user)
    assert settings.nats_password is not None
    nc = await nats.connect(
        server.url,
        user=user,
        password=settings.nats_password.get_secret_value(),
        inbox_prefix=inbox_prefix(user),  # as nats_io.connect does
        error_cb=on_error,
        allow_reconnect=False,
    )
    return Session(nc, violations)


@pytest.fixture
async def as_user(users_server: NatsServer) -> AsyncIterator[Any]:
    sessions: list[Session] = []

    async def open_session(user: str) -> Session:
        sessions.append(await _session(users_server, user))
        return sessions[-1]

    yield open_session
    for session in sessions:
        await session.nc.close()


def job_record(user: str, sid: str) -> JobRecord:
    return JobRecord(
        submission_id=sid, user=user, entrypoint="main.py", config="config.yaml", created_at=datetime.now(UTC)
    )


def benchmark_record(name: str, version: int = 1) -> BenchmarkRecord:
    part = StoredPart(key=f"{name}/v{version}/part.zip", size=1, sha256="0" * 64)
    info = BenchmarkInfo(
        name=name, version=version, layout="mvtec_ad", public_sha256=part.sha256, reference_sha256=part.sha256,
        categories={"bottle": CategorySummary(train=2, test=2, masks=True)},
    )  # fmt: skip
    return BenchmarkRecord(info=info, status="ready", public=part, reference=part, created_by="admin")


def score_request(user: str, sid: str) -> bytes:
    request = ScoreRequest(user=user, submission_id=sid, benchmark="bench", benchmark_version=1,
                           requested_at=datetime.now(UTC))  # fmt: skip
    return request.model_dump_json().encode()
