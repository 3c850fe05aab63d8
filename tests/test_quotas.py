"""Rate limits and quota administration through the real API on real NATS and SeaweedFS."""

from __future__ import annotations

import asyncio
import re

from nats.aio.client import Client as NATS

from leadersboard.quotas import QuotaStore
from leadersboard.settings import NatsSettings
from tests.api_fixtures import ADMIN_TOKEN, Api, bearer

ONE_FILE = {"files": [{"path": "main.py", "size": 1}, {"path": "config.yaml", "size": 1}]}


async def test_200_simultaneous_creates_with_a_limit_of_50_accept_exactly_50(api: Api, alice: str) -> None:
    response = await api.put("/api/v1/admin/quotas/default", json={"per_hour": 50, "concurrent": 2},
                             headers=bearer(ADMIN_TOKEN))  # fmt: skip
    assert response.status == 200

    async def create() -> tuple[int, str | None, dict]:
        response = await api.post("/api/v1/submissions", json=ONE_FILE, headers=bearer(alice))
        return response.status, response.headers.get("Retry-After"), await response.json()

    results = await asyncio.gather(*(create() for _ in range(200)))
    statuses = [status for status, _, _ in results]
    assert statuses.count(201) == 50
    assert statuses.count(429) == 150
    refused = [(retry, body) for status, retry, body in results if status == 429]
    for retry_after, body in refused:
        assert retry_after is not None and 1 <= int(retry_after) <= 3600
        assert body["error"]["code"] == "rate_limited"
        assert re.search(
            r"at most 50 submissions per hour; the next one is possible in \d+ s", body["error"]["message"]
        )


async def test_admin_changes_take_effect_at_once(api: Api, alice: str, bob: str) -> None:
    response = await api.put("/api/v1/admin/quotas/users/alice", json={"per_hour": 1}, headers=bearer(ADMIN_TOKEN))
    assert response.status == 200
    assert (await response.json())["effective"] == {
        "per_hour": 1,
        "concurrent": 2,
        "job_timeout_s": None,
        "job_disk_gib": None,
        "job_memory_gib": None,
    }

    assert (await api.post("/api/v1/submissions", json=ONE_FILE, headers=bearer(alice))).status == 201
    assert (await api.post("/api/v1/submissions", json=ONE_FILE, headers=bearer(alice))).status == 429
    assert (await api.post("/api/v1/submissions", json=ONE_FILE, headers=bearer(bob))).status == 201

    response = await api.put("/api/v1/admin/quotas/users/alice", json={"per_hour": 3}, headers=bearer(ADMIN_TOKEN))
    assert response.status == 200
    assert (await api.post("/api/v1/submissions", json=ONE_FILE, headers=bearer(alice))).status == 201

    listing = await (await api.get("/api/v1/admin/quotas", headers=bearer(ADMIN_TOKEN))).json()
    assert listing["users"]["alice"] == {
        "per_hour": 3,
        "concurrent": None,
        "job_timeout_s": None,
        "job_disk_gib": None,
        "job_memory_gib": None,
    }
    assert listing["default"] == {
        "per_hour": 50,
        "concurrent": 2,
        "job_timeout_s": None,
        "job_disk_gib": None,
        "job_memory_gib": None,
    }


async def test_quota_endpoints_are_for_admins_and_validate(api: Api, alice: str) -> None:
    assert (await api.get("/api/v1/admin/quotas", headers=bearer(alice))).status == 403
    bad = await api.put("/api/v1/admin/quotas/default", json={"per_hour": -1}, headers=bearer(ADMIN_TOKEN))
    assert bad.status == 400 and "per_hour" in (await bad.json())["error"]["message"]
    bad = await api.put("/api/v1/admin/quotas/users/Not A User", json={}, headers=bearer(ADMIN_TOKEN))
    assert bad.status == 400


async def test_ledger_is_exact_under_contention(nc: NATS) -> None:
    quotas = QuotaStore(await nc.jetstream().key_value(NatsSettings().quotas_kv_bucket))
    decisions = await asyncio.gather(*(quotas.reserve("carol", now_s=1000.0) for _ in range(120)))
    assert sum(d.allowed for d in decisions) == 50
    later = await quotas.reserve("carol", now_s=1000.0 + 3601)
    assert later.allowed, "the rolling hour has passed"


async def test_a_refusal_never_asks_to_wait_longer_than_the_window(nc: NATS) -> None:
    # Concurrent requests take their clocks a moment apart: the ledger can hold times just after a refused
    # request's own, which used to ask for 3,601 s.
    quotas = QuotaStore(await nc.jetstream().key_value(NatsSettings().quotas_kv_bucket))
    for _ in range(50):
        assert (await quotas.reserve("dave", now_s=2000.5)).allowed
    refused = await quotas.reserve("dave", now_s=2000.0)
    assert not refused.allowed and refused.retry_after_s == 3600.0
