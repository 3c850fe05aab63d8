"""GET /api/v1/submissions page by page through the real ingest app and nats-server: newest first, every job of
the caller once, never another user's record, and a cursor that carries on where a page ended."""

from __future__ import annotations

from typing import Any

import pytest
from nats.aio.client import Client as NATS

from leadersboard import keys
from leadersboard.jobs import JobStore
from leadersboard.models.base import utcnow
from leadersboard.models.records import JobRecord
from leadersboard.settings import NatsSettings
from tests.api_fixtures import ADMIN_TOKEN, Api, bearer
from tests.test_ingest_api import error_of

pytestmark = pytest.mark.timeout(120)


async def created(jobs: JobStore, user: str, count: int) -> list[str]:
    """`count` new jobs of `user`, their ids newest first."""
    ids = []
    for _ in range(count):
        record = JobRecord(
            submission_id=keys.new_submission_id(), user=user, entrypoint="main.py", config="config.yaml",
            created_at=utcnow(),
        )  # fmt: skip
        assert await jobs.create(record)
        ids.append(record.submission_id)
    return sorted(ids, reverse=True)


async def pages(api: Api, token: str, limit: int, **query: str) -> list[dict[str, Any]]:
    """Every page, following `next_cursor` until it is null."""
    found: list[dict[str, Any]] = []
    cursor = None
    while True:
        params = {"limit": str(limit), **query} | ({"cursor": cursor} if cursor else {})
        response = await api.get("/api/v1/submissions", params=params, headers=bearer(token))
        assert response.status == 200, await response.text()
        found.append(await response.json())
        cursor = found[-1]["next_cursor"]
        if cursor is None:
            return found
        assert len(found) < 100, "the cursor never ends"


async def test_pages_cover_the_callers_jobs_once_newest_first(
    api: Api, jobs: JobStore, nc: NATS, alice: str, bob: str
) -> None:
    mine = await created(jobs, "alice", 25)
    theirs = await created(jobs, "bob", 3)
    # Another user's record that no reader could parse: a page that read any other user's record would fail.
    kv = await nc.jetstream().key_value(NatsSettings().jobs_kv_bucket)
    await kv.put(keys.kv_submission_key("mallory", keys.new_submission_id()), b"not a record")

    listed = await pages(api, alice, 10)
    assert [len(page["submissions"]) for page in listed] == [10, 10, 5]
    assert [s["submission_id"] for page in listed for s in page["submissions"]] == mine
    assert {s["user"] for page in listed for s in page["submissions"]} == {"alice"}
    assert [page["next_cursor"] for page in listed] == [mine[9], mine[19], None]

    exact = await pages(api, alice, 25)  # a page that ends exactly at the last job says there is no more
    assert len(exact) == 1 and exact[0]["next_cursor"] is None
    after = await api.get("/api/v1/submissions", params={"cursor": mine[-1]}, headers=bearer(alice))
    assert await after.json() == {"submissions": [], "next_cursor": None}
    default = await (await api.get("/api/v1/submissions", headers=bearer(alice))).json()
    assert [s["submission_id"] for s in default["submissions"]] == mine  # 100 by default

    bobs = await pages(api, bob, 2)
    assert [s["submission_id"] for page in bobs for s in page["submissions"]] == theirs


async def test_an_admin_pages_through_everyones_jobs(api: Api, jobs: JobStore, alice: str) -> None:
    everyone = sorted([*await created(jobs, "alice", 4), *await created(jobs, "bob", 3)], reverse=True)
    listed = await pages(api, ADMIN_TOKEN, 3, all="true")
    assert [s["submission_id"] for page in listed for s in page["submissions"]] == everyone
    own = await pages(api, alice, 3, all="true")  # a user's `all` is their own jobs
    assert {s["user"] for page in own for s in page["submissions"]} == {"alice"}


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "1001"}, "limit"),
        ({"limit": "x"}, "limit"),
        ({"cursor": "../b"}, "cursor"),
    ],
)
async def test_a_bad_page_query_is_a_400_naming_its_field(
    api: Api, alice: str, query: dict[str, str], field: str
) -> None:
    error = await error_of(await api.get("/api/v1/submissions", params=query, headers=bearer(alice)), 400)
    assert error["message"].removeprefix("invalid request: ").startswith(f"{field}:")
