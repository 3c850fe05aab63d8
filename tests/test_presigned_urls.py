"""Access control of presigned URLs: they expire, and they open only the keys of the caller's own submission."""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit, urlunsplit

import pytest
from pydantic import SecretStr

from ingest.settings import IngestSettings
from leadersboard.settings import NatsSettings, S3Settings
from tests.api_fixtures import ADMIN_TOKEN, Api, bearer, http

EXPIRY_S = 2


@pytest.fixture
def settings(nats_settings: NatsSettings, s3_settings: S3Settings) -> IngestSettings:
    return IngestSettings(
        **nats_settings.model_dump(), **s3_settings.model_dump(), admin_token=SecretStr(ADMIN_TOKEN),
        presign_expiry_s=EXPIRY_S,
    )  # fmt: skip


async def create(api: Api, token: str) -> dict:
    body = {"files": [{"path": "main.py", "size": 4}, {"path": "config.yaml", "size": 4}]}
    response = await api.post("/api/v1/submissions", json=body, headers=bearer(token))
    assert response.status == 201
    return dict(await response.json())


async def test_presigned_urls_expire(api: Api, alice: str) -> None:
    created = await create(api, alice)
    url = next(u["url"] for u in created["uploads"] if u["path"] == "main.py")
    await asyncio.sleep(EXPIRY_S + 1.5)
    response = await http("PUT", url, content=b"late")
    assert response.status_code == 403
    assert "expired" in response.text.lower() or "AccessDenied" in response.text


async def test_a_url_opens_only_its_own_key(api: Api, alice: str, bob: str) -> None:
    alices, bobs = await create(api, alice), await create(api, bob)
    alice_url = next(u["url"] for u in alices["uploads"] if u["path"] == "main.py")
    parts = urlsplit(alice_url)
    for other_path in (
        parts.path.replace("/alice/", "/bob/").replace(alices["submission_id"], bobs["submission_id"]),
        parts.path.replace("files/main.py", "manifest.json"),
        parts.path.replace("submissions/alice", "results/alice"),
    ):
        forged = urlunsplit(parts._replace(path=other_path))
        assert (await http("PUT", forged, content=b"evil")).status_code == 403, other_path
    # Reading with an upload URL is refused too.
    assert (await http("GET", alice_url)).status_code == 403
    assert (await http("PUT", alice_url, content=b"mine")).status_code == 200
