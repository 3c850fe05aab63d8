"""The ingest API as it runs: the real aiohttp app on a real socket, real nats-server, real SeaweedFS."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx
import pytest
from aiohttp import web

from leadersboard import keys
from leadersboard.jobs import JobStore
from leadersboard.models.api import NEXT_VERSION_HEADER
from leadersboard.models.base import utcnow
from leadersboard.models.records import JobRecord, JobStatus
from leadersboard.s3 import S3Client, head, make_client
from leadersboard.settings import S3Settings
from leadersboard.tokens import TokenStore, new_token
from tests.api_fixtures import ADMIN_TOKEN, MAX_FILE_BYTES, Api, bearer

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def s3(s3_settings: S3Settings) -> S3Client:
    return make_client(s3_settings)


async def error_of(response: Any, status: int) -> dict[str, str]:
    """The error object of a response that must have `status` and the contract's error shape."""
    assert response.status == status, await response.text()
    body = await response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}
    assert body["error"]["message"]
    return dict(body["error"])


def job(user: str, **fields: Any) -> JobRecord:
    return JobRecord(
        submission_id=keys.new_submission_id(),
        user=user,
        entrypoint="main.py",
        config="config.yaml",
        created_at=utcnow(),
        **fields,
    )


def exists(s3: S3Client, bucket: str, key: str) -> bool:
    return head(s3, bucket, key) is not None  # any other error than "not found" is raised


# --- health and the OpenAPI document -------------------------------------------------------------------------


async def test_health(api: Api) -> None:
    response = await api.get("/api/v1/health")
    assert response.status == 200
    assert await response.json() == {"status": "ok", "nats": True, "store": True}


async def test_a_page_of_an_allowed_origin_may_read_the_headers_the_api_answers_with(api: Api) -> None:
    origin = "http://frontend.example"
    response = await api.options("/api/v1/health", headers={"Origin": origin})
    assert response.status == 204
    assert response.headers["Access-Control-Allow-Origin"] == origin
    exposed = {name.strip() for name in response.headers["Access-Control-Expose-Headers"].split(",")}
    assert exposed == {"Retry-After", "X-Next-Offset", "X-Job-Status", NEXT_VERSION_HEADER}


async def test_openapi_lists_every_route(api: Api, app: web.Application) -> None:
    response = await api.get("/api/v1/openapi.json")
    assert response.status == 200
    document = await response.json()
    assert document["openapi"].startswith("3.1")
    registered = {
        (route.resource.canonical, route.method.lower())
        for route in app.router.routes()
        if route.resource is not None and route.method != "HEAD"
    }
    documented = {(path, method) for path, item in document["paths"].items() for method in item}
    assert len(registered) >= 10
    assert documented == registered


# --- authentication ------------------------------------------------------------------------------------------


async def test_missing_bad_and_revoked_tokens_get_401(api: Api, tokens: TokenStore) -> None:
    revoked, record = await tokens.create("carol")
    await tokens.revoke(record.token_id)
    for headers in ({}, {"Authorization": "Basic abc"}, bearer(new_token()), bearer("nonsense"), bearer(revoked)):
        response = await api.get("/api/v1/submissions", headers=headers)
        assert (await error_of(response, 401))["code"] == "unauthorized"
        response = await api.post("/api/v1/submissions", headers=headers, json={"files": [{"path": "a", "size": 1}]})
        assert (await error_of(response, 401))["code"] == "unauthorized"


# --- submission requests that are refused --------------------------------------------------------------------


async def test_malformed_submissions_get_400_naming_the_field(api: Api, alice: str) -> None:
    response = await api.post("/api/v1/submissions", headers=bearer(alice), data=b"{not json")
    assert (await error_of(response, 400))["code"] == "bad_request"

    response = await api.post("/api/v1/submissions", headers=bearer(alice), json={"entrypoint": "main.py"})
    assert "files" in (await error_of(response, 400))["message"]

    files = [{"path": "main.py", "size": 1}, {"path": "config.yaml", "size": 1}, {"path": "../x", "size": 1}]
    response = await api.post("/api/v1/submissions", headers=bearer(alice), json={"files": files})
    assert "files.2.path" in (await error_of(response, 400))["message"]

    files = [{"path": "run.py", "size": 1}, {"path": "config.yaml", "size": 1}]
    response = await api.post("/api/v1/submissions", headers=bearer(alice), json={"files": files})
    assert "main.py" in (await error_of(response, 400))["message"]


async def test_a_file_over_the_limit_gets_413(api: Api, alice: str) -> None:
    files = [{"path": "main.py", "size": 10}, {"path": "config.yaml", "size": MAX_FILE_BYTES + 1}]
    response = await api.post("/api/v1/submissions", headers=bearer(alice), json={"files": files})
    error = await error_of(response, 413)
    assert error["code"] == "payload_too_large" and "config.yaml" in error["message"]


# --- admin ---------------------------------------------------------------------------------------------------


async def test_admin_endpoints_refuse_users(api: Api, alice: str) -> None:
    response = await api.get("/api/v1/admin/tokens", headers=bearer(alice))
    assert (await error_of(response, 403))["code"] == "forbidden"
    response = await api.post("/api/v1/admin/tokens", headers=bearer(alice), json={"user": "mallory", "role": "admin"})
    assert (await error_of(response, 403))["code"] == "forbidden"


async def test_admin_creates_lists_and_revokes_tokens(api: Api) -> None:
    response = await api.post("/api/v1/admin/tokens", headers=bearer(ADMIN_TOKEN), json={"user": "carol"})
    assert response.status == 201
    created = await response.json()
    token = created["token"]
    assert created["user"] == "carol" and created["role"] == "user"
    assert (await api.get("/api/v1/submissions", headers=bearer(token))).status == 200

    response = await api.get("/api/v1/admin/tokens", headers=bearer(ADMIN_TOKEN))
    assert response.status == 200
    text = await response.text()
    assert token not in text and ADMIN_TOKEN not in text
    listed = json.loads(text)["tokens"]
    assert {(t["user"], t["role"]) for t in listed} == {("carol", "user"), ("admin", "admin")}
    assert all("token" not in t for t in listed)

    path = f"/api/v1/admin/tokens/{created['token_id']}/revoke"
    response = await api.post(path, headers=bearer(ADMIN_TOKEN))
    assert response.status == 200 and (await response.json())["revoked"] is True
    await error_of(await api.get("/api/v1/submissions", headers=bearer(token)), 401)
    await error_of(await api.post("/api/v1/admin/tokens/nosuchtoken/revoke", headers=bearer(ADMIN_TOKEN)), 404)


# --- the presigned upload flow -------------------------------------------------------------------------------

FILES = {"main.py": b"print('hello')\n", "config.yaml": b"dataset: toy\nlr: 0.1\n"}


async def create_submission(api: Api, token: str) -> dict[str, Any]:
    files = [{"path": path, "size": len(data)} for path, data in FILES.items()]
    body = {"files": files, "metadata": {"method": "toy"}}
    response = await api.post("/api/v1/submissions", headers=bearer(token), json=body)
    assert response.status == 201, await response.text()
    return dict(await response.json())


async def test_presigned_uploads_land_in_the_store(api: Api, alice: str, s3: S3Client, s3_settings: S3Settings) -> None:
    created = await create_submission(api, alice)
    sid = created["submission_id"]
    assert sorted(u["path"] for u in created["uploads"]) == sorted(FILES)
    manifest = json.loads(created["manifest"]["body"])
    assert (manifest["submission_id"], manifest["user"], manifest["metadata"]) == (sid, "alice", {"method": "toy"})
    assert {f["path"]: f["size"] for f in manifest["files"]} == {p: len(d) for p, d in FILES.items()}

    async with httpx.AsyncClient() as http:
        for upload in created["uploads"]:
            assert upload["method"] == "PUT"
            put = await http.put(upload["url"], content=FILES[upload["path"]], headers=upload["headers"])
            assert put.status_code == 200, put.text
        assert not exists(s3, s3_settings.bucket, keys.manifest_key("alice", sid))
        spec = created["manifest"]
        put = await http.put(spec["url"], content=spec["body"].encode(), headers=spec["headers"])
        assert put.status_code == 200, put.text

    for path, data in FILES.items():
        stored = s3.get_object(Bucket=s3_settings.bucket, Key=f"submissions/alice/{sid}/files/{path}")
        assert stored["Body"].read() == data
    stored = s3.get_object(Bucket=s3_settings.bucket, Key=f"submissions/alice/{sid}/manifest.json")
    assert stored["Body"].read().decode() == created["manifest"]["body"]


async def test_the_store_refuses_a_body_of_another_size(
    api: Api, alice: str, s3: S3Client, s3_settings: S3Settings
) -> None:
    created = await create_submission(api, alice)
    upload = next(u for u in created["uploads"] if u["path"] == "main.py")
    async with httpx.AsyncClient() as http:
        for body in (FILES["main.py"] + b"# more\n", FILES["main.py"][:-1]):
            put = await http.put(upload["url"], content=body)
            assert put.status_code == 403, put.text
    assert not exists(s3, s3_settings.bucket, keys.file_key("alice", created["submission_id"], "main.py"))


async def test_the_store_refuses_a_tampered_signature(
    api: Api, alice: str, s3: S3Client, s3_settings: S3Settings
) -> None:
    created = await create_submission(api, alice)
    upload = next(u for u in created["uploads"] if u["path"] == "main.py")
    parts = urlsplit(upload["url"])
    query = dict(parse_qsl(parts.query))
    signature = query["X-Amz-Signature"]
    query["X-Amz-Signature"] = ("0" if signature[0] != "0" else "1") + signature[1:]
    tampered = urlunsplit(parts._replace(query=urlencode(query)))
    async with httpx.AsyncClient() as http:
        put = await http.put(tampered, content=FILES["main.py"])
    assert put.status_code == 403, put.text
    assert not exists(s3, s3_settings.bucket, keys.file_key("alice", created["submission_id"], "main.py"))


# --- reading jobs: owner only --------------------------------------------------------------------------------


async def test_only_the_owner_and_admins_see_a_job(api: Api, jobs: JobStore, alice: str, bob: str) -> None:
    record = job("alice")
    assert await jobs.create(record)
    path = f"/api/v1/submissions/{record.submission_id}"

    response = await api.get(path, headers=bearer(alice))
    assert response.status == 200
    view = await response.json()
    assert (view["submission_id"], view["user"], view["status"]) == (record.submission_id, "alice", "pending")

    for method, url in (("GET", path), ("GET", f"{path}/logs"), ("POST", f"{path}/cancel")):
        await error_of(await api.request(method, url, headers=bearer(bob)), 404)
    unchanged = await jobs.get("alice", record.submission_id)
    assert unchanged is not None and unchanged.status is JobStatus.PENDING

    response = await api.get(path, headers=bearer(ADMIN_TOKEN))
    assert response.status == 200 and (await response.json())["user"] == "alice"

    async def listed(token: str, query: str = "") -> list[str]:
        response = await api.get(f"/api/v1/submissions{query}", headers=bearer(token))
        assert response.status == 200
        return [s["submission_id"] for s in (await response.json())["submissions"]]

    assert await listed(alice) == [record.submission_id]
    assert await listed(bob) == []
    assert record.submission_id in await listed(ADMIN_TOKEN, "?all=1")


async def test_logs_are_read_from_an_offset(
    api: Api,
    jobs: JobStore,
    alice: str,
    s3: S3Client,
    s3_settings: S3Settings,
) -> None:
    record = job("alice", status=JobStatus.RUNNING)
    await jobs.create(record)
    path = f"/api/v1/submissions/{record.submission_id}/logs"
    response = await api.get(path, headers=bearer(alice))
    assert response.status == 200 and await response.text() == ""
    assert response.headers["X-Next-Offset"] == "0"

    log = "epoch 1: loss 0.5\nepoch 2: loss 0.25 — ✓\n".encode()
    s3.put_object(Bucket=s3_settings.bucket, Key=keys.result_key("alice", record.submission_id, "job.log"), Body=log)

    response = await api.get(path, params={"offset": 0}, headers=bearer(alice))
    assert response.status == 200
    assert await response.read() == log
    assert response.headers["X-Next-Offset"] == str(len(log))
    assert response.headers["X-Job-Status"] == "running"

    middle = log.index(b"epoch 2")
    response = await api.get(path, params={"offset": middle}, headers=bearer(alice))
    assert await response.read() == log[middle:]
    assert response.headers["X-Next-Offset"] == str(len(log))

    response = await api.get(path, params={"offset": len(log)}, headers=bearer(alice))
    assert response.status == 200 and await response.read() == b""
    assert response.headers["X-Next-Offset"] == str(len(log))

    for bad in ("-1", "abc"):
        error = await error_of(await api.get(path, params={"offset": bad}, headers=bearer(alice)), 400)
        assert "offset" in error["message"]


async def test_cancel_once_then_409(api: Api, jobs: JobStore, alice: str) -> None:
    record = job("alice")
    await jobs.create(record)
    path = f"/api/v1/submissions/{record.submission_id}/cancel"
    response = await api.post(path, headers=bearer(alice))
    assert response.status == 200
    assert (await response.json())["status"] == "cancelled"
    stored = await jobs.get("alice", record.submission_id)
    assert stored is not None and stored.status is JobStatus.CANCELLED and stored.finished_at is not None
    assert (await error_of(await api.post(path, headers=bearer(alice)), 409))["code"] == "conflict"
