"""When NATS or the store is away, ingest says so (503) at once, and everything works again when they return."""

from __future__ import annotations

import asyncio

from tests.api_fixtures import Api, bearer, http
from tools.stack.procs import tcp_ready
from tools.stack.services import NatsServer, Seaweed

ONE_FILE = {"files": [{"path": "main.py", "size": 1}, {"path": "config.yaml", "size": 1}]}


async def wait_for(predicate, timeout_s: float = 30) -> None:  # type: ignore[no-untyped-def]
    for _ in range(int(timeout_s * 10)):
        if await predicate():
            return
        await asyncio.sleep(0.1)
    raise AssertionError("timed out")


async def test_nats_down_gives_503_then_ingest_reconnects(api: Api, alice: str, nats_server: NatsServer) -> None:
    assert (await api.get("/api/v1/submissions", headers=bearer(alice))).status == 200
    nats_server.process.stop()
    response = await api.post("/api/v1/submissions", json=ONE_FILE, headers=bearer(alice))
    assert response.status == 503
    body = await response.json()
    assert body["error"]["code"] == "service_unavailable" and "NATS" in body["error"]["message"]
    health = await api.get("/api/v1/health")
    assert health.status == 503 and (await health.json())["nats"] is False

    nats_server.process.start()
    assert tcp_ready("127.0.0.1", nats_server.port)
    await wait_for(lambda: _status(api, "/api/v1/health", 200))
    # The token issued before the outage is still known: JetStream kept it on disk.
    assert (await api.post("/api/v1/submissions", json=ONE_FILE, headers=bearer(alice))).status == 201


async def test_store_down_is_reported_by_health(api: Api, seaweed: Seaweed) -> None:
    assert (await api.get("/api/v1/health")).status == 200
    seaweed.process.stop()
    try:
        health = await api.get("/api/v1/health")
        assert health.status == 503 and (await health.json())["store"] is False
    finally:
        seaweed.process.start().wait_ready(60)
    await wait_for(lambda: _status(api, "/api/v1/health", 200))
    assert (await http("GET", seaweed.s3_url)).status_code == 403  # back, with authentication still on


async def _status(api: Api, path: str, expected: int) -> bool:
    return (await api.get(path)).status == expected
