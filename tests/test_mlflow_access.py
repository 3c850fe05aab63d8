"""MLflow behind ingest's authenticating proxy, through the real local stack (issue 11, part 5).

Before: MLflow's port answered anyone. `GET :5010/get-artifact?...` returned another user's job log, run search
listed every user's runs and `runs/set-tag` changed another user's run, all without credentials.
Now: users sign in with their user name and an API token, read every run's leaderboard facts and
`metrics.json`, read the job log and outputs of their own runs only, and write nothing.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from mlflow.tracking import MlflowClient
from multidict import MultiDict

from ingest.mlflow_policy import Kind, classify, visible_to_others
from leadersboard.client import Client
from leadersboard.models.records import JobRecord, JobStatus
from tests.stack_fixtures import mlflow_admin_url, running_stack, write_submission
from tools.stack.up import MLFLOW_SECRETS, Secrets, Stack

ALICE_JOB = """
print("alice's private log line")
(out / "metrics.json").write_text(json.dumps({"metrics": {"image_AUROC": 0.9}}))
(out / "secret.txt").write_text("alice's output")
"""
SEARCH = "/api/2.0/mlflow/runs/search"
SET_TAG = "/api/2.0/mlflow/runs/set-tag"


@dataclass
class World:
    stack: Stack
    info: dict[str, Any]
    tokens: dict[str, str]
    run: JobRecord
    experiment_id: str

    @property
    def public(self) -> str:
        return str(self.info["urls"]["mlflow"])

    def auth(self, user: str) -> tuple[str, str]:
        return (user, self.tokens[user])

    def get(self, route: str, user: str | None = None, **params: str) -> httpx.Response:
        return httpx.get(self.public + route, params=params, auth=self.auth(user) if user else None, timeout=30)

    def post(self, path: str, body: dict[str, Any], user: str | None = None) -> httpx.Response:
        return httpx.post(self.public + path, json=body, auth=self.auth(user) if user else None, timeout=30)

    def artifact(self, path: str, user: str | None) -> httpx.Response:
        return self.get("/get-artifact", user, run_uuid=self.run_id, path=path)

    @property
    def run_id(self) -> str:
        return self.run.mlflow_run_id or ""


def submit(info: dict[str, Any], token: str, root: Path, body: str) -> JobRecord:
    with Client(info["urls"]["ingest"], token) as client:
        sid = client.submit([write_submission(root, body)])
        return client.wait(sid, timeout_s=180)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    # No token cache: the revocation test sees the revocation on its next request.
    overrides = {"ingest": {"mlflow_token_cache_s": 0}}
    with running_stack(tmp_path_factory.mktemp("stack"), overrides=overrides) as (stack, info):
        tokens = {"admin": info["admin_token"]}
        with Client(info["urls"]["ingest"], info["admin_token"]) as admin:
            for user in ("alice", "bob", "carol"):
                tokens[user] = admin.create_token(user)["token"]
        record = submit(info, tokens["alice"], tmp_path_factory.mktemp("alice"), ALICE_JOB)
        assert record.status is JobStatus.COMPLETED, record.error
        experiment_id = (record.mlflow_run_url or "").split("/#/experiments/")[1].split("/")[0]
        yield World(stack, info, tokens, record, experiment_id)


def test_anonymous_requests_get_401_and_a_sign_in_prompt(world: World) -> None:
    for response in (
        world.artifact("job.log", None),
        world.post(SEARCH, {"experiment_ids": [world.experiment_id]}),
        world.post(SET_TAG, {"run_id": world.run_id, "key": "user", "value": "mallory"}),
        world.get("/"),
    ):
        assert response.status_code == 401, response.text
        assert response.headers["WWW-Authenticate"] == 'Basic realm="LeadersBoard MLflow"'
        assert response.json()["error"]["code"] == "unauthorized"


def test_mlflow_itself_refuses_anonymous_clients(world: World) -> None:
    internal = world.stack.mlflow_internal_url
    assert httpx.get(f"{internal}/api/2.0/mlflow/experiments/search", timeout=30).status_code == 401
    get_artifact = httpx.get(f"{internal}/get-artifact", params={"run_uuid": world.run_id, "path": "job.log"})
    assert get_artifact.status_code == 401
    assert (
        httpx.post(f"{internal}{SET_TAG}", json={"run_id": world.run_id, "key": "k", "value": "v"}).status_code == 401
    )


def test_a_user_reads_everyones_facts_and_metrics_but_not_their_logs(world: World) -> None:
    found = world.post(SEARCH, {"experiment_ids": [world.experiment_id]}, "bob")
    assert found.status_code == 200
    runs = {r["info"]["run_id"]: r for r in found.json()["runs"]}
    assert {"key": "user", "value": "alice"} in runs[world.run_id]["data"]["tags"]
    assert world.get("/api/2.0/mlflow/runs/get", "bob", run_id=world.run_id).status_code == 200

    metrics = world.artifact("metrics.json", "bob")
    assert metrics.status_code == 200 and '"image_AUROC": 0.9' in metrics.text
    for path in ("job.log", "output/secret.txt"):
        refused = world.artifact(path, "bob")
        assert refused.status_code == 403, path
        assert "alice" not in refused.text
    listed = world.get("/ajax-api/2.0/mlflow/artifacts/list", "bob", run_id=world.run_id)
    assert [f["path"] for f in listed.json()["files"]] == ["metrics.json"]
    assert (
        world.get("/ajax-api/2.0/mlflow/artifacts/list", "bob", run_id=world.run_id, path="output").status_code == 403
    )


def test_other_artifact_routes_are_guarded_too(world: World) -> None:
    base = f"{world.experiment_id}/{world.run_id}/artifacts"
    for prefix in ("/api/2.0/mlflow-artifacts/artifacts", "/ajax-api/2.0/mlflow-artifacts/artifacts"):
        assert world.get(f"{prefix}/{base}/job.log", "bob").status_code == 403
        assert world.get(f"{prefix}/{base}/metrics.json", "bob").status_code == 200
        listing = world.get(prefix, "bob", path=base)  # someone else's run: only what everyone may read
        assert [f["path"] for f in listing.json()["files"]] == ["metrics.json"]
        assert world.get(prefix, "bob", path=base + "/output").status_code == 403
        assert world.get(prefix, "bob", path=world.experiment_id).status_code == 403  # the experiment's runs
    assert world.get("/ajax-api/2.0/mlflow-artifacts/presigned/" + base + "/job.log", "bob").status_code == 403
    # Repeated parameters: MLflow and the proxy could read different copies.
    twice = httpx.get(
        world.public + "/get-artifact",
        params=[("run_uuid", world.run_id), ("path", "metrics.json"), ("path", "job.log")],
        auth=world.auth("bob"),
    )
    assert twice.status_code == 403
    graphql = '{ mlflowListArtifacts(input: {runId: "RUN"}) { files { path } } }'.replace("RUN", world.run_id)
    assert world.post("/graphql", {"query": graphql}, "bob").status_code == 403
    get_run = '{ mlflowGetRun(input: {runId: "RUN"}) { run { info { status } } } }'.replace("RUN", world.run_id)
    assert world.post("/graphql", {"query": get_run}, "bob").json()["data"]["mlflowGetRun"]["run"]["info"]["status"]


def test_users_write_nothing_in_mlflow(world: World) -> None:
    for user in ("bob", "alice"):  # the owner too: runs are the platform's record
        assert world.post(SET_TAG, {"run_id": world.run_id, "key": "user", "value": user}, user).status_code == 403
        assert world.post("/api/2.0/mlflow/runs/delete", {"run_id": world.run_id}, user).status_code == 403
        assert world.post("/ajax-api/2.0/mlflow/experiments/create", {"name": "mine"}, user).status_code == 403
        assert (
            world.post("/api/2.0/mlflow/users/create", {"username": user, "password": "x" * 16}, user).status_code
            == 403
        )
        put = httpx.put(
            f"{world.public}/api/2.0/mlflow-artifacts/artifacts/{world.experiment_id}/{world.run_id}/artifacts/job.log",
            content=b"forged",
            auth=world.auth(user),
        )
        assert put.status_code == 403
    run = MlflowClient(mlflow_admin_url(world.info)).get_run(world.run_id)
    assert run.data.tags["user"] == "alice"
    assert run.info.lifecycle_stage == "active"


def test_the_owner_reads_their_own_log_and_outputs(world: World) -> None:
    log = world.artifact("job.log", "alice")
    assert log.status_code == 200 and "alice's private log line" in log.text
    assert world.artifact("output/secret.txt", "alice").text == "alice's output"
    listed = world.get("/ajax-api/2.0/mlflow/artifacts/list", "alice", run_id=world.run_id)
    assert {"job.log", "metrics.json", "output"} <= {f["path"] for f in listed.json()["files"]}


def test_an_admin_token_may_do_everything(world: World) -> None:
    assert "alice's private log line" in world.artifact("job.log", "admin").text
    tagged = world.post(SET_TAG, {"run_id": world.run_id, "key": "reviewed", "value": "yes"}, "admin")
    assert tagged.status_code == 200
    assert MlflowClient(mlflow_admin_url(world.info)).get_run(world.run_id).data.tags["reviewed"] == "yes"


def test_a_token_works_only_with_its_own_user_name_and_until_revoked(world: World) -> None:
    bobs_token = world.tokens["bob"]
    as_alice = httpx.get(world.public + "/get-artifact", params={"run_uuid": world.run_id, "path": "job.log"},
                         auth=("alice", bobs_token))  # fmt: skip
    assert as_alice.status_code == 401

    assert world.post(SEARCH, {"experiment_ids": [world.experiment_id]}, "carol").status_code == 200
    with Client(world.info["urls"]["ingest"], world.info["admin_token"]) as admin:
        carols = next(t for t in admin.list_tokens() if t["user"] == "carol")
        admin.revoke_token(carols["token_id"])
    assert world.post(SEARCH, {"experiment_ids": [world.experiment_id]}, "carol").status_code == 401


def test_only_the_runners_account_passes_with_its_own_mlflow_password(world: World) -> None:
    password = world.stack.secrets.mlflow["runner_password"]
    search = {"experiment_ids": [world.experiment_id]}
    assert httpx.post(world.public + SEARCH, json=search, auth=("runner", password)).status_code == 200
    assert httpx.post(world.public + SEARCH, json=search, auth=("runner", "wrong-password-0000")).status_code == 401
    # The admin's MLflow password is no way in through the public port.
    admin_password = world.stack.secrets.mlflow["admin_password"]
    assert httpx.post(world.public + SEARCH, json=search, auth=("admin", admin_password)).status_code == 401


def test_a_normal_job_still_completes_and_is_logged(world: World, tmp_path: Path) -> None:
    body = 'print("hello")\n(out / "metrics.json").write_text(json.dumps({"metrics": {"image_AUROC": 0.5}}))'
    record = submit(world.info, world.tokens["bob"], tmp_path / "bob", body)
    assert record.status is JobStatus.COMPLETED, record.error
    run = MlflowClient(mlflow_admin_url(world.info)).get_run(record.mlflow_run_id or "")
    assert run.data.tags["user"] == "bob" and run.info.status == "FINISHED"
    assert world.artifact("job.log", "bob").status_code == 403  # still alice's run in `world`
    own = httpx.get(world.public + "/get-artifact", params={"run_uuid": run.info.run_id, "path": "job.log"},
                    auth=world.auth("bob"))  # fmt: skip
    assert own.status_code == 200 and "hello" in own.text


def test_a_remote_runner_logs_a_run_with_a_large_artifact_through_the_public_port(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """GPU hosts reach MLflow only through the proxy: the runner account's uploads stream through it whole."""
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "runner")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", world.stack.secrets.mlflow["runner_password"])
    payload = tmp_path / "weights.bin"
    payload.write_bytes(bytes(range(256)) * (12 * 1024))  # 3 MiB
    remote = MlflowClient(world.public)
    run = remote.create_run(world.experiment_id, tags={"user": "alice"})
    remote.log_artifact(run.info.run_id, str(payload), "output")
    remote.set_terminated(run.info.run_id)
    monkeypatch.delenv("MLFLOW_TRACKING_USERNAME")
    monkeypatch.delenv("MLFLOW_TRACKING_PASSWORD")
    where = {"run_uuid": run.info.run_id, "path": "output/weights.bin"}
    fetched = httpx.get(world.public + "/get-artifact", params=where, auth=world.auth("alice"), timeout=60)
    assert fetched.status_code == 200 and fetched.content == payload.read_bytes()


# --- the policy itself, route by route (no stack needed) ---------------------------------------------

RUN = "0123456789abcdef0123456789abcdef"


@pytest.mark.parametrize(
    ("method", "path", "query", "kind"),
    [
        ("GET", "/", {}, Kind.ALLOW),
        ("GET", "/static-files/static/js/main.js", {}, Kind.ALLOW),
        ("GET", "/ajax-api/2.0/mlflow/experiments/search", {}, Kind.ALLOW),
        ("GET", "/api/2.0/mlflow/runs/get", {"run_id": RUN}, Kind.ALLOW),
        ("GET", "/ajax-api/2.0/mlflow/metrics/get-history-bulk-interval", {}, Kind.ALLOW),
        ("POST", "/ajax-api/2.0/mlflow/runs/search", {}, Kind.ALLOW),
        ("POST", "/ajax-api/2.0/mlflow/experiments/search", {}, Kind.ALLOW),
        ("POST", "/ajax-api/2.0mlflow/experiments/search-datasets", {}, Kind.ALLOW),  # MLflow's own typo route
        ("POST", "/ajax-api/3.0/mlflow/traces/search", {}, Kind.ALLOW),
        ("POST", "/graphql", {}, Kind.GRAPHQL),
        ("GET", "/get-artifact", {"run_uuid": RUN, "path": "job.log"}, Kind.ARTIFACT),
        ("GET", "/ajax-api/2.0/mlflow/artifacts/list", {"run_id": RUN}, Kind.ARTIFACT_LIST),
        ("GET", f"/api/2.0/mlflow-artifacts/artifacts/1/{RUN}/artifacts/job.log", {}, Kind.ARTIFACT),
        ("GET", f"/ajax-api/2.0/mlflow-artifacts/presigned/1/{RUN}/artifacts/job.log", {}, Kind.ARTIFACT),
        ("GET", "/api/2.0/mlflow-artifacts/artifacts", {"path": f"1/{RUN}/artifacts"}, Kind.ARTIFACT_LIST),
        # Every write, and what only admins may see.
        ("POST", "/api/2.0/mlflow/runs/set-tag", {}, Kind.DENY),
        ("POST", "/ajax-api/2.0/mlflow/runs/update", {}, Kind.DENY),
        ("POST", "/ajax-api/2.0/mlflow/runs/log-batch", {}, Kind.DENY),
        ("POST", "/api/2.0/mlflow/experiments/create", {}, Kind.DENY),
        ("POST", "/ajax-api/2.0/mlflow/runs/delete", {}, Kind.DENY),
        ("PATCH", "/api/2.0/mlflow/users/update-password", {}, Kind.DENY),
        ("GET", "/api/2.0/mlflow/users/get", {"username": "runner"}, Kind.DENY),
        ("GET", "/api/2.0/mlflow/experiments/permissions/get", {}, Kind.DENY),
        ("GET", "/ajax-api/3.0/mlflow/gateway/secrets/list", {}, Kind.DENY),
        ("GET", "/ajax-api/2.0/mlflow/webhooks", {}, Kind.DENY),
        ("GET", "/signup", {}, Kind.DENY),
        ("PUT", f"/api/2.0/mlflow-artifacts/artifacts/1/{RUN}/artifacts/job.log", {}, Kind.DENY),
        ("DELETE", f"/api/2.0/mlflow-artifacts/artifacts/1/{RUN}/artifacts/job.log", {}, Kind.DENY),
        ("POST", f"/api/2.0/mlflow-artifacts/mpu/create/1/{RUN}/artifacts/x", {}, Kind.DENY),
        ("POST", "/ajax-api/2.0/mlflow/artifacts/presigned-download-url", {}, Kind.DENY),
        ("GET", "/model-versions/get-artifact", {}, Kind.DENY),
        ("GET", "/ajax-api/2.0/mlflow/logged-models/m-1/artifacts/files", {}, Kind.DENY),
        ("GET", "/ajax-api/3.0/mlflow/get-trace-artifact", {}, Kind.DENY),
        ("GET", "/api/2.0/mlflow-artifacts/artifacts", {"path": "1"}, Kind.DENY),
        ("GET", "/get-artifact", {"run_uuid": "../x", "path": "job.log"}, Kind.DENY),
        ("GET", "/api/2.0/mlflow/runs/get/../../users/list", {}, Kind.DENY),
    ],
)
def test_the_policy_allows_reads_and_refuses_writes(method: str, path: str, query: dict[str, str], kind: Kind) -> None:
    assert classify(method, path, MultiDict(query)).kind is kind


def test_only_metrics_json_of_anothers_run_is_visible() -> None:
    assert visible_to_others(classify("GET", "/get-artifact", MultiDict(run_uuid=RUN, path="metrics.json")))
    for path in ("job.log", "output/metrics.json", "./metrics.json", "metrics.json/"):
        assert not visible_to_others(classify("GET", "/get-artifact", MultiDict(run_uuid=RUN, path=path))), path


def test_a_data_dir_from_before_gets_mlflow_passwords_once(tmp_path: Path) -> None:
    old = {"s3_access_key": "a", "s3_secret_key": "b", "admin_token": "c", "demo_token": "d", "manifest_secret": "e"}
    path = tmp_path / "secrets.json"
    path.write_text(json.dumps(old))
    first = Secrets.load_or_create(path)
    assert set(first.mlflow) == set(MLFLOW_SECRETS) and all(len(v) >= 12 for v in first.mlflow.values())
    assert path.stat().st_mode & 0o777 == 0o600
    assert Secrets.load_or_create(path).mlflow == first.mlflow
