"""Issue 11, parts 1-3 at the create request: every body the API takes is strict and bounded, nothing a client
sends gives 500, and every error (the framework's own included) has the `{"error": {"code", "message"}}` body.

Through the real aiohttp app (real nats-server and SeaweedFS), a real `python -m ingest` process for what
aiohttp answers before the app runs (raw bytes over a socket), and the whole local stack for the attack that
used to wedge the dispatcher.
"""

from __future__ import annotations

import json
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ingest.context import MAX_BODY_DEPTH
from leadersboard.client import ApiError
from leadersboard.limits import (
    MAX_DATASET_CHARS,
    MAX_METADATA_BYTES,
    MAX_METADATA_DEPTH,
    MAX_METADATA_KEYS,
    MAX_METADATA_VALUE_CHARS,
    MLFLOW_NAME_RULE,
)
from leadersboard.models.records import JobStatus
from leadersboard.models.submission import MAX_FILES
from leadersboard.tokens import new_token
from tests.api_fixtures import ADMIN_TOKEN, Api, bearer, ingest_process
from tests.stack_fixtures import client_for, write_submission
from tools.stack.services import Seaweed
from tools.stack.up import Stack

pytestmark = pytest.mark.timeout(180)

SUBMISSIONS = "/api/v1/submissions"
HUGE_DATASET = "d" * 560_000  # the issue's: accepted with 201, then the dispatcher redelivered it forever
EDGE_ADMIN = new_token()


def files(**first: Any) -> list[dict[str, Any]]:
    return [{"path": "main.py", "size": 10, **first}, {"path": "config.yaml", "size": 5}]


def create(metadata: Any = None, **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"files": files(), **fields}
    if metadata is not None:
        body["metadata"] = metadata
    return body


def nested(depth: int, leaf: Any = 1) -> Any:
    """Objects nested `depth` levels deep (the outermost counts as 1), built without recursion."""
    value = leaf
    for _ in range(depth):
        value = {"a": value}
    return value


def deep_json(levels: int) -> str:
    """JSON text of `levels` nested lists: too deep for json.dumps to write, so written by hand."""
    return "[" * levels + "]" * levels


async def error_of(response: Any, status: int) -> str:
    """The message of an error answer that must have `status`, Content-Type application/json and the shape."""
    assert response.status == status, await response.text()
    assert response.content_type == "application/json"
    body = await response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}
    assert isinstance(body["error"]["code"], str) and body["error"]["message"]
    return str(body["error"]["message"])


async def accepted(api: Api, token: str) -> None:
    """After an attack, a normal request still gets its 201."""
    body = create({"dataset": "toy", "method": "padim", "description": "a normal one", "x": {"y": [1, 2.5]}})
    response = await api.post(SUBMISSIONS, headers=bearer(token), json=body)
    assert response.status == 201, await response.text()


# --- 3. strict types: nothing is coerced ---------------------------------------------------------------------

COERCED_CREATES = [
    (create(files=files(size="10")), "files.0.size"),
    (create(files=files(size=True)), "files.0.size"),
    (create(files=files(size=10.0)), "files.0.size"),
    (create(files=files(path=7)), "files.0.path"),
    (create(files=files(sha256=1)), "files.0.sha256"),
    (create(files=files(blob="yes")), "files.0.blob"),
    (create(entrypoint=1), "entrypoint"),
    (create(config=None), "config"),
    (create(metadata="padim"), "metadata"),
    ({"files": {"path": "main.py", "size": 1}}, "files"),
]


@pytest.mark.parametrize(("body", "field"), COERCED_CREATES, ids=[f for _, f in COERCED_CREATES])
async def test_a_create_request_of_the_wrong_json_types_gets_400_naming_the_field(
    api: Api, alice: str, body: dict[str, Any], field: str
) -> None:
    response = await api.post(SUBMISSIONS, headers=bearer(alice), json=body)
    assert f"{field}:" in await error_of(response, 400)
    await accepted(api, alice)


COERCED_ADMIN = [
    ("POST", "/api/v1/admin/tokens", {"user": 5}, "user"),
    ("POST", "/api/v1/admin/tokens", {"user": "carol", "expires_in_s": "60"}, "expires_in_s"),
    ("POST", "/api/v1/admin/tokens", {"user": "carol", "expires_in_s": True}, "expires_in_s"),
    ("POST", "/api/v1/admin/tokens", {"user": "carol", "role": 1}, "role"),
    ("PUT", "/api/v1/admin/quotas/default", {"per_hour": "5"}, "per_hour"),
    ("PUT", "/api/v1/admin/quotas/default", {"concurrent": True}, "concurrent"),
    ("PUT", "/api/v1/admin/quotas/default", {"job_timeout_s": 1.5}, "job_timeout_s"),
    ("PUT", "/api/v1/admin/quotas/default", {"job_disk_gib": "2"}, "job_disk_gib"),
    ("PUT", "/api/v1/admin/quotas/users/alice", {"per_hour": "3"}, "per_hour"),
    ("PUT", "/api/v1/admin/quotas/users/alice", {"job_memory_gib": False}, "job_memory_gib"),
]


@pytest.mark.parametrize(
    ("method", "path", "body", "field"), COERCED_ADMIN, ids=[f"{p.split('/')[-1]}-{f}" for _, p, _, f in COERCED_ADMIN]
)
async def test_an_admin_body_of_the_wrong_json_types_gets_400_naming_the_field(
    api: Api, method: str, path: str, body: dict[str, Any], field: str
) -> None:
    response = await api.request(method, path, headers=bearer(ADMIN_TOKEN), json=body)
    assert f"{field}:" in await error_of(response, 400)
    # Nothing was changed, and the right types are still taken: an enum by its value, an integer as a float.
    quotas = await (await api.get("/api/v1/admin/quotas", headers=bearer(ADMIN_TOKEN))).json()
    assert quotas["default"]["per_hour"] == 50 and quotas["users"] == {}
    good = await api.put("/api/v1/admin/quotas/default", headers=bearer(ADMIN_TOKEN), json={"job_disk_gib": 2})
    assert good.status == 200 and (await good.json())["job_disk_gib"] == 2
    good = await api.post("/api/v1/admin/tokens", headers=bearer(ADMIN_TOKEN), json={"user": "carol", "role": "admin"})
    assert good.status == 201 and (await good.json())["role"] == "admin"


# --- 1 and 2. metadata: MLflow's names, and bounds -----------------------------------------------------------


async def test_a_metadata_key_mlflow_refuses_gets_400_naming_the_key_and_the_rule(api: Api, alice: str) -> None:
    response = await api.post(SUBMISSIONS, headers=bearer(alice), json=create({"x<y": 1}))
    message = await error_of(response, 400)
    assert "metadata.x<y:" in message and MLFLOW_NAME_RULE in message
    await accepted(api, alice)


async def test_a_dataset_of_560000_characters_gets_400_naming_it(api: Api, alice: str) -> None:
    response = await api.post(SUBMISSIONS, headers=bearer(alice), json=create({"dataset": HUGE_DATASET}))
    message = await error_of(response, 400)
    assert "metadata.dataset:" in message and f"at most {MAX_DATASET_CHARS}" in message
    assert len(message) < 2000  # named, not echoed
    await accepted(api, alice)


METADATA_OVER_BOUNDS = [
    pytest.param({f"k{i}": i for i in range(MAX_METADATA_KEYS + 1)}, "metadata:", "keys", id="too-many-keys"),
    pytest.param({"x": nested(MAX_METADATA_DEPTH)}, "metadata:", "levels deep", id="too-deep"),
    pytest.param({"note": "n" * (MAX_METADATA_VALUE_CHARS + 1)}, "metadata.note:", "characters", id="long-value"),
    pytest.param(
        {"notes": {"deep": ["n" * (MAX_METADATA_VALUE_CHARS + 1)]}},
        "metadata.notes.deep.0:",
        "characters",
        id="long-nested-value",
    ),
    pytest.param(
        {f"k{i}": "v" * 4000 for i in range(MAX_METADATA_BYTES // 4000 + 1)},
        "metadata:",
        "bytes as compact JSON",
        id="too-many-bytes",
    ),
    pytest.param({"k" * 300: 1}, "metadata.kkk", "characters long", id="long-key"),
    pytest.param({"dataset": 3}, "metadata.dataset:", "string", id="dataset-not-string"),
    pytest.param({"dataset": "../../etc"}, "metadata.dataset:", MLFLOW_NAME_RULE, id="dataset-dotdot"),
    pytest.param({"dataset": "/abs"}, "metadata.dataset:", MLFLOW_NAME_RULE, id="dataset-absolute"),
    pytest.param({"dataset": "a<b"}, "metadata.dataset:", MLFLOW_NAME_RULE, id="dataset-lt"),
    pytest.param({"method": ["padim"]}, "metadata.method:", "string", id="method-not-string"),
    pytest.param({"description": {"text": "x"}}, "metadata.description:", "string", id="description-not-string"),
    pytest.param({"a/../b": 1}, "metadata.a/../b:", MLFLOW_NAME_RULE, id="key-dotdot"),
]


@pytest.mark.parametrize(("metadata", "field", "why"), METADATA_OVER_BOUNDS)
async def test_metadata_over_a_bound_gets_400_naming_the_field(
    api: Api, alice: str, metadata: dict[str, Any], field: str, why: str
) -> None:
    response = await api.post(SUBMISSIONS, headers=bearer(alice), json=create(metadata))
    message = await error_of(response, 400)
    assert field in message and why in message


async def test_metadata_at_every_bound_is_accepted(api: Api, alice: str) -> None:
    metadata: dict[str, Any] = {f"k{i}": i for i in range(MAX_METADATA_KEYS - 4)}
    metadata |= {
        "dataset": "visa/" + "p" * (MAX_DATASET_CHARS - 5),
        "method": "m" * 100,
        "description": "d" * MAX_METADATA_VALUE_CHARS,
        "deep": nested(MAX_METADATA_DEPTH - 1),
    }
    response = await api.post(SUBMISSIONS, headers=bearer(alice), json=create(metadata))
    assert response.status == 201, await response.text()


# --- 3. depth: 400, never 500 --------------------------------------------------------------------------------


@pytest.mark.parametrize("depth", [MAX_BODY_DEPTH + 1, 500])
async def test_metadata_nested_hundreds_of_levels_gets_400(api: Api, alice: str, depth: int) -> None:
    body = '{"files": ' + json.dumps(files()) + ', "metadata": {"x": ' + deep_json(depth) + "}}"
    response = await api.post(SUBMISSIONS, headers=bearer(alice), data=body)
    assert "metadata: nested too deeply" in await error_of(response, 400)
    await accepted(api, alice)


@pytest.mark.parametrize("body", [deep_json(10_000), '{"metadata": {"x": ' + deep_json(10_000) + "}}"])
async def test_a_body_nested_10000_levels_gets_400(api: Api, alice: str, body: str) -> None:
    response = await api.post(SUBMISSIONS, headers=bearer(alice), data=body)
    assert "nested too deeply" in await error_of(response, 400)
    response = await api.put("/api/v1/admin/quotas/default", headers=bearer(ADMIN_TOKEN), data=body)
    assert "nested too deeply" in await error_of(response, 400)
    await accepted(api, alice)


# --- 2. every other field of the create request is bounded ---------------------------------------------------

OTHER_FIELDS = [
    (create(entrypoint="e" * 300), "entrypoint:"),
    (create(entrypoint="../main.py"), "entrypoint:"),
    (create(config="/etc/passwd"), "config:"),
    (create(files=files(size=6 * 1024**4)), "files.0.size:"),
    (create(files=files(size=-1)), "files.0.size:"),
    (create(files=files(path="p" * 300)), "files.0.path:"),
    (create(files=files(sha256="A" * 64)), "files.0.sha256:"),
    ({"files": [{"path": f"f{i}", "size": 1} for i in range(MAX_FILES + 1)]}, "files:"),
    (create(extra="x"), "extra:"),
]


@pytest.mark.parametrize(("body", "field"), OTHER_FIELDS, ids=[f for _, f in OTHER_FIELDS])
async def test_every_field_of_the_create_request_is_bounded(
    api: Api, alice: str, body: dict[str, Any], field: str
) -> None:
    response = await api.post(SUBMISSIONS, headers=bearer(alice), json=body)
    assert field in await error_of(response, 400)


async def test_a_hostile_key_is_named_not_echoed(api: Api, alice: str) -> None:
    response = await api.post(SUBMISSIONS, headers=bearer(alice), json=create(**{"k" * 500_000: 1}))
    assert len(await error_of(response, 400)) < 2000


async def test_a_lone_surrogate_or_bad_utf8_gets_400(api: Api, alice: str) -> None:
    body = '{"files": ' + json.dumps(files()) + ', "metadata": {"x": "\\ud800"}}'
    await error_of(await api.post(SUBMISSIONS, headers=bearer(alice), data=body), 400)
    await error_of(await api.post(SUBMISSIONS, headers=bearer(alice), data=b'{"files": "\xff\xfe"}'), 400)
    body = '{"files": ' + json.dumps(files()) + ', "metadata": {"x": NaN}}'
    assert "metadata.x:" in await error_of(await api.post(SUBMISSIONS, headers=bearer(alice), data=body), 400)


# --- 3. the framework's own errors have the API's body -------------------------------------------------------


async def test_aiohttps_own_404_405_and_413_have_the_error_body(api: Api, alice: str) -> None:
    message = await error_of(await api.get("/api/v1/nothing-here", headers=bearer(alice)), 404)
    assert "/api/v1/nothing-here" in message
    response = await api.delete(SUBMISSIONS, headers=bearer(alice))
    assert "DELETE" in await error_of(response, 405)
    assert set(response.headers["Allow"].split(",")) >= {"GET", "POST"}
    response = await api.post(SUBMISSIONS, headers=bearer(alice), data=b"x" * (1024**2 + 1))
    assert "body:" in await error_of(response, 413)
    await accepted(api, alice)


# --- a real ingest process: what aiohttp answers before the app runs -----------------------------------------


@pytest.fixture(scope="module")
def ingest_port(tmp_path_factory: pytest.TempPathFactory, seaweed: Seaweed) -> Iterator[int]:
    with ingest_process(tmp_path_factory.mktemp("edge"), seaweed, admin_token=EDGE_ADMIN) as (url, _):
        yield int(url.rsplit(":", 1)[1])


def raw_exchange(port: int, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send `request` as raw bytes; the answer's status, headers (lowercase names) and body."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
        conn.sendall(request)
        received = b""
        while chunk := conn.recv(65536):  # aiohttp closes the connection after an error it answers itself
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {name.strip().lower(): value.strip() for name, value in (h.split(":", 1) for h in header_lines)}
    return int(status_line.split()[1]), headers, body


MALFORMED = [
    (b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\nBad Header: 1\r\nConnection: close\r\n\r\n", 400),
    (b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\nX-Ctl: a\x01b\r\nConnection: close\r\n\r\n", 400),
    (b"NOT A REQUEST LINE AT ALL\r\n\r\n", 400),
    (b"GET /api/v1/health HTTP/9.9\r\nHost: x\r\nConnection: close\r\n\r\n", 400),
    (b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\nX-Long: " + b"a" * 70_000 + b"\r\nConnection: close\r\n\r\n", 400),
    (b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\nExpect: sorcery\r\nConnection: close\r\n\r\n", 417),
]


@pytest.mark.parametrize(
    ("request_bytes", "status"), MALFORMED, ids=["space", "ctl", "line", "version", "long", "expect"]
)
def test_a_malformed_request_gets_the_error_body_from_a_real_process(
    ingest_port: int, request_bytes: bytes, status: int
) -> None:
    got, headers, body = raw_exchange(ingest_port, request_bytes)
    assert got == status, body
    assert headers["content-type"].startswith("application/json")
    error = json.loads(body)["error"]
    assert set(error) == {"code", "message"} and error["message"]
    # The process is unharmed.
    assert httpx.get(f"http://127.0.0.1:{ingest_port}/api/v1/health").status_code == 200


def test_the_real_process_answers_404_405_413_and_depth_in_the_error_body(ingest_port: int) -> None:
    url = f"http://127.0.0.1:{ingest_port}"
    for method, path, content, status in [
        ("GET", "/nowhere", b"", 404),
        ("PATCH", "/api/v1/health", b"", 405),
        ("POST", "/api/v1/submissions", b"x" * (1024**2 + 1), 413),
        ("POST", "/api/v1/submissions", deep_json(10_000).encode(), 400),
    ]:
        response = httpx.request(method, url + path, content=content, headers={"Authorization": f"Bearer {EDGE_ADMIN}"})
        assert response.status_code == status, response.text
        assert response.headers["content-type"].startswith("application/json")
        assert set(response.json()["error"]) == {"code", "message"}


# --- the whole local stack: the attacks are refused, and a normal job completes ------------------------------


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed")
@pytest.mark.timeout(600)
def test_the_stack_refuses_a_huge_dataset_and_an_mlflow_refused_key_then_completes_a_job(
    stack: tuple[Stack, dict[str, Any]], tmp_path: Path
) -> None:
    submission = write_submission(
        tmp_path / "normal",
        '(out / "metrics.json").write_text(json.dumps({"params": {}, "metrics": {"image_AUROC": 0.5}}))\n',
    )
    with client_for(stack[1]) as client:
        attacks: list[tuple[dict[str, Any], str]] = [
            ({"dataset": HUGE_DATASET}, "metadata.dataset:"),
            ({"x<y": 1}, "metadata.x<y:"),
        ]
        for metadata, field in attacks:
            with pytest.raises(ApiError) as refused:
                client.submit([submission], metadata=metadata)
            assert refused.value.status == 400 and field in refused.value.message
        sid = client.submit([submission], metadata={"dataset": "toy", "method": "edge"})
        record = client.wait(sid, timeout_s=300)
    assert record.status is JobStatus.COMPLETED, record.error
    assert record.dataset == "toy" and record.metrics["image_AUROC"] == 0.5
