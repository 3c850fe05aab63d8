"""A submission end to end through every real process: ingest, SeaweedFS, bridge, NATS, dispatcher, runner, MLflow."""

from __future__ import annotations

import json
import os
import subprocess
import zipfile
from pathlib import Path
from typing import Any

import httpx
import pytest
from mlflow.tracking import MlflowClient

from leadersboard.client import ApiError, Client
from leadersboard.models.records import JobStatus
from leadersboard.s3 import make_client
from tests.board_fixtures import wait_on_self_reported_board
from tests.stack_fixtures import client_for, mlflow_admin_url, write_submission
from tools.stack.up import Stack

WRITE_METRICS = """
(out / "metrics.json").write_text(json.dumps({"params": {"dataset": "toy", "lr": 0.1},
                                              "metrics": {"image_AUROC": 0.75, "image_F1Score": 0.5}}))
(out / "extra.txt").write_text("an output file")
"""


def test_completed_job_has_metrics_results_log_and_mlflow_run(
    stack: tuple[Stack, dict[str, Any]], demo: Client, tmp_path: Path
) -> None:
    the_stack, info = stack
    submission = write_submission(tmp_path / "ok", WRITE_METRICS)
    sid = demo.submit([submission], metadata={"method": "toy", "description": "a toy model"})
    record = demo.wait(sid, timeout_s=120)

    assert record.status is JobStatus.COMPLETED, record.error
    assert record.metrics == {"image_AUROC": 0.75, "image_F1Score": 0.5}
    assert record.params == {"dataset": "toy", "lr": "0.1"}
    assert record.dataset == "toy"
    assert record.exit_code == 0

    log_text, _, status = demo.logs(sid)
    assert "config says dataset: toy" in log_text
    assert status == "completed"

    s3 = make_client(the_stack.s3)
    listed = s3.list_objects_v2(Bucket=the_stack.s3.bucket, Prefix=f"results/demo/{sid}/")
    names = {obj["Key"].removeprefix(f"results/demo/{sid}/") for obj in listed.get("Contents", [])}
    assert {"metrics.json", "job.log", "output/extra.txt"} <= names

    mlflow = MlflowClient(mlflow_admin_url(info))
    run = mlflow.get_run(record.mlflow_run_id or "")
    assert run.data.metrics["image_AUROC"] == 0.75
    assert run.data.metrics["wall_time_s"] > 0
    assert run.data.params["lr"] == "0.1"
    assert run.data.tags["submission_id"] == sid
    assert run.data.tags["user"] == "demo"
    assert run.data.tags["method"] == "toy"
    assert run.data.tags["description"] == "a toy model"
    assert mlflow.get_experiment(run.info.experiment_id).name == "toy"
    artifacts = {a.path for a in mlflow.list_artifacts(run.info.run_id)}
    assert {"metrics.json", "job.log"} <= artifacts


def test_nonzero_exit_fails_with_code_and_log_tail(demo: Client, tmp_path: Path) -> None:
    submission = write_submission(tmp_path / "crash", 'print("about to fail"); raise SystemExit(3)')
    record = demo.wait(demo.submit([submission]), timeout_s=120)
    assert record.status is JobStatus.FAILED
    assert record.exit_code == 3
    assert record.error is not None and "exit code 3" in record.error and "about to fail" in record.error
    assert record.mlflow_run_id is not None  # failed jobs are tracked too


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("pass", "wrote no metrics.json"),
        ('(out / "metrics.json").write_text("not json")', "metrics.json is malformed"),
        ('(out / "metrics.json").write_text(\'{"metrics": {"auroc": "high"}}\')', "not a number"),
    ],
)
def test_missing_or_malformed_metrics_fail_with_reason(demo: Client, tmp_path: Path, body: str, reason: str) -> None:
    record = demo.wait(demo.submit([write_submission(tmp_path / "bad", body)]), timeout_s=120)
    assert record.status is JobStatus.FAILED
    assert record.error is not None and reason in record.error


def test_incomplete_upload_fails_with_the_missing_file(demo: Client, tmp_path: Path) -> None:
    submission = write_submission(tmp_path / "partial", WRITE_METRICS)
    files = {"main.py": submission / "main.py", "config.yaml": submission / "config.yaml"}
    created = demo.create_submission(files)
    uploads = {u.path: u for u in created.uploads}
    httpx.put(uploads["main.py"].url, content=files["main.py"].read_bytes()).raise_for_status()
    httpx.put(created.manifest.url, content=(created.manifest.body or "").encode()).raise_for_status()
    record = demo.wait(created.submission_id, timeout_s=60)
    assert record.status is JobStatus.FAILED
    assert record.error == "upload incomplete: config.yaml was never uploaded"


def test_job_sees_no_platform_secret(stack: tuple[Stack, dict[str, Any]], demo: Client, tmp_path: Path) -> None:
    the_stack, info = stack
    body = 'import os; print("\\n".join(f"{k}={v}" for k, v in os.environ.items())); ' + WRITE_METRICS.strip()
    sid = demo.submit([write_submission(tmp_path / "env", body)])
    assert demo.wait(sid, timeout_s=120).status is JobStatus.COMPLETED
    log_text, _, _ = demo.logs(sid)
    assert "PATH=" in log_text
    mlflow_runner_password = the_stack.secrets.mlflow["runner_password"]  # the runner logs runs with it
    runner_s3_keys = the_stack.secrets.s3_keys["runner"]  # the runner's own S3 identity
    for secret in (the_stack.secrets.s3_secret_key, the_stack.secrets.s3_access_key, info["admin_token"],
                   mlflow_runner_password, *runner_s3_keys):  # fmt: skip
        assert secret not in log_text
    assert "LB_" not in log_text and "MLFLOW_TRACKING" not in log_text


def test_only_the_owner_sees_a_job(stack: tuple[Stack, dict[str, Any]], demo: Client, tmp_path: Path) -> None:
    _, info = stack
    sid = demo.submit([write_submission(tmp_path / "mine", WRITE_METRICS)])
    demo.wait(sid, timeout_s=120)
    with client_for(info, "admin_token") as admin:
        other_token = admin.create_token("mallory")["token"]
        assert admin.get(sid).user == "demo"
    with Client(info["urls"]["ingest"], other_token) as mallory:
        for call in (lambda: mallory.get(sid), lambda: mallory.logs(sid), lambda: mallory.cancel(sid)):
            with pytest.raises(ApiError) as caught:
                call()
            assert caught.value.status == 404
        assert sid not in {r.submission_id for r in mallory.jobs()}


def test_curl_recipe_from_the_readme(stack: tuple[Stack, dict[str, Any]], tmp_path: Path) -> None:
    """The README's curl-only recipe, run as written with bash, curl and jq."""
    _, info = stack
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    recipe = readme.split("### With curl alone", 1)[1].split("```bash\n", 1)[1].split("```", 1)[0]
    workdir = write_submission(tmp_path / "curl", WRITE_METRICS)
    with zipfile.ZipFile(workdir / "pcb1.zip", "w") as archive:
        archive.writestr("pcb1/readme.txt", "a tiny dataset")
    env = {**os.environ, "LEADERSBOARD_URL": info["urls"]["ingest"], "LEADERSBOARD_TOKEN": info["demo_token"]}
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", recipe], cwd=workdir, env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    created = json.loads((workdir / "created.json").read_text())
    with client_for(info) as demo:
        record = demo.wait(created["submission_id"], timeout_s=120)
    assert record.status is JobStatus.COMPLETED
    assert {f.path for f in record.files} == {"main.py", "config.yaml", "pcb1.zip"}
    shown = json.loads(_curl(f"{info['urls']['api']}/submissions/{record.submission_id}",
                             "-H", f"Authorization: Bearer {info['demo_token']}"))  # fmt: skip
    assert shown["status"] == "completed" and shown["metrics"]["image_AUROC"] == 0.75


def _curl(*args: str) -> str:
    done = subprocess.run(["curl", "-sS", "--fail-with-body", *args], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.mark.slow
def test_padim_example_completes_with_auroc_in_mlflow(
    stack: tuple[Stack, dict[str, Any]], demo: Client, tmp_path: Path
) -> None:
    """examples/padim as a user submits it: real anomalib on a generated VisA-layout pcb1.zip, on the CPU."""
    from examples.padim.make_dataset import make_dataset_zip

    example = Path(__file__).parents[1] / "examples" / "padim"
    submission = tmp_path / "padim"
    submission.mkdir()
    for name in ("main.py", "config.yaml"):
        (submission / name).write_bytes((example / name).read_bytes())
    make_dataset_zip(submission / "pcb1.zip")
    sid = demo.submit([submission], metadata={"method": "padim", "description": "ResNet18 PaDiM"})
    record = demo.wait(sid, timeout_s=600)

    assert record.status is JobStatus.COMPLETED, record.error
    assert 0.9 <= record.metrics["image_AUROC"] <= 1.0
    assert "image_F1Score" in record.metrics
    run = MlflowClient(mlflow_admin_url(stack[1])).get_run(record.mlflow_run_id or "")
    assert run.data.metrics["image_AUROC"] == record.metrics["image_AUROC"]
    assert run.data.tags["method"] == "padim"
    wait_on_self_reported_board(demo, sid, dataset=record.dataset)


def test_no_secret_in_any_service_log(stack: tuple[Stack, dict[str, Any]], demo: Client, tmp_path: Path) -> None:
    """After the jobs above (and one refused token), no log line of any process holds a secret."""
    the_stack, info = stack
    with Client(info["urls"]["ingest"], info["demo_token"] + "x") as wrong, pytest.raises(ApiError):
        wrong.jobs()
    secrets_ = {
        "S3 secret key": the_stack.secrets.s3_secret_key,
        "admin token": info["admin_token"],
        "user token": info["demo_token"],
        "manifest secret": the_stack.secrets.manifest_secret,
        "MLflow admin password": the_stack.secrets.mlflow["admin_password"],
        "MLflow runner password": the_stack.secrets.mlflow["runner_password"],
        "MLflow scorer password": the_stack.secrets.mlflow["scorer_password"],
        **{f"{service}'s S3 secret key": keys[1] for service, keys in the_stack.secrets.s3_keys.items()},
    }
    logs = sorted(the_stack.logs.glob("*.log"))
    assert {p.stem for p in logs} >= {"ingest", "dispatcher", "runner", "bridge", "mlflow", "seaweedfs", "nats-server"}
    for log in logs:
        text = log.read_text(errors="replace")
        for what, secret in secrets_.items():
            assert secret not in text, f"{what} in {log.name}"
