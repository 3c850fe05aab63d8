"""Poison jobs through the whole real stack: a refusal ends the job at once, an outage is retried a bounded
number of times, an outcome too large for a record is stored cut, a damaged zip is named; each time the
runner goes on and the next normal job completes.

One stack for the module. The runner's MLflow client does not retry (so an outage is seen at once), a job is
handed back at most twice, half a second apart, and a terminal record is capped at 32 KiB (so a valid
metrics.json can outgrow it: the edge bounds keep real records far below the 256 KiB default).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import struct
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient

from gpu_runner.job import JobOutcome
from gpu_runner.results import fit_record
from gpu_runner.service import Runner
from gpu_runner.settings import RunnerSettings
from leadersboard import nats_io
from leadersboard.client import Client
from leadersboard.faults import classify
from leadersboard.jobs import JobStore
from leadersboard.limits import MAX_PARAM_VALUE_CHARS, MLFLOW_NAME_RULE
from leadersboard.limits import MAX_RECORD_BYTES as MAX_RECORD_BYTES_DEFAULT
from leadersboard.models.records import JobRecord, JobStatus
from tests.stack_fixtures import mlflow_admin_url, running_stack, write_submission
from tools.stack.services import NatsServer
from tools.stack.up import Stack

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed"),
]

MAX_RECORD_BYTES = 32 * 1024
RUNNER = {
    "mlflow_http_max_retries": 0,
    "mlflow_http_timeout_s": 10,
    "max_hand_backs": 2,
    "hand_back_delay_s": 0.5,
    "max_record_bytes": MAX_RECORD_BYTES,
}
RAN = "MAIN.PY RAN"


# Not the shared stack (tests/stack_fixtures.py): runners with no MLflow retries and quick hand-backs (RUNNER).
@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, dict[str, Any]]]:
    with running_stack(tmp_path_factory.mktemp("poison"), overrides={"runner": RUNNER}) as started:
        yield started


def writes_metrics(metrics: dict[str, Any], params: dict[str, Any] | None = None) -> str:
    """A main.py body that says it ran, then writes this metrics.json."""
    document = json.dumps({"params": params or {}, "metrics": metrics})
    return f"print({RAN!r})\n(out / 'metrics.json').write_text({document!r})\n"


def run(demo: Client, submission: Path, timeout_s: float = 120, **metadata: Any) -> tuple[JobRecord, str]:
    sid = demo.submit([submission], metadata=metadata or None)
    record = demo.wait(sid, timeout_s=timeout_s, poll_s=0.3)
    return record, demo.logs(sid)[0]


def a_normal_job_completes(demo: Client, tmp_path: Path) -> None:
    record, _ = run(demo, write_submission(tmp_path / "normal", writes_metrics({"image_AUROC": 0.9})))
    assert record.status is JobStatus.COMPLETED, record.error


@pytest.mark.parametrize(
    ("kind", "name"),
    [("metric", "image AUROC (%)"), ("metric", "f1<best>"), ("param", "x<y")],
)
def test_a_name_mlflow_refuses_fails_the_job_at_once(demo: Client, tmp_path: Path, kind: str, name: str) -> None:
    body = writes_metrics({name: 0.5}) if kind == "metric" else writes_metrics({"ok": 0.5}, {name: 1})
    record, log = run(demo, write_submission(tmp_path / "bad", body))
    assert record.status is JobStatus.FAILED
    assert record.error == f"metrics.json: {kind} {name!r} is not a valid name: {MLFLOW_NAME_RULE}"
    assert (record.attempts, record.hand_backs) == (1, 0)
    assert log.count(RAN) == 1, "main.py ran more than once"
    a_normal_job_completes(demo, tmp_path)


def test_too_many_params_fail_with_the_count_and_the_limit(demo: Client, tmp_path: Path) -> None:
    params = {f"param_{i}": "v" * 600 for i in range(1000)}  # 600 KB: under the 1 MiB metrics.json limit
    record, log = run(demo, write_submission(tmp_path / "many", writes_metrics({"ok": 1.0}, params)))
    assert record.status is JobStatus.FAILED
    assert record.error == "metrics.json has 1000 params; at most 100 are allowed"
    assert (record.attempts, record.hand_backs, log.count(RAN)) == (1, 0, 1)
    a_normal_job_completes(demo, tmp_path)


def test_an_outcome_too_large_for_a_record_is_stored_cut_and_logged_whole(
    stack: tuple[Stack, dict[str, Any]], demo: Client, tmp_path: Path
) -> None:
    params = {f"param_{i}": f"{i}:" + "v" * 2000 for i in range(100)}
    metrics = {f"metric_{i}_{'m' * 120}": i / 200 for i in range(200)}
    body = writes_metrics(metrics, params)
    record, log = run(demo, write_submission(tmp_path / "big", body), description="d" * 5000)
    assert record.status is JobStatus.COMPLETED
    assert record.error is not None and f"[the job record was cut to fit {MAX_RECORD_BYTES} bytes" in record.error
    assert len(record.model_dump_json()) <= MAX_RECORD_BYTES
    assert record.metrics == {name: value for name, value in metrics.items()}, "what ranks was kept"
    assert f"100 param values cut to {MAX_PARAM_VALUE_CHARS} characters" in log
    # MLflow has the whole outcome: every param (in batches of 100 at most), every metric.
    run_data = MlflowClient(mlflow_admin_url(stack[1])).get_run(record.mlflow_run_id or "").data
    assert run_data.params == {k: v[:MAX_PARAM_VALUE_CHARS] for k, v in params.items()}
    assert set(metrics) <= set(run_data.metrics)
    a_normal_job_completes(demo, tmp_path)


def test_a_damaged_dataset_zip_is_named_and_main_py_never_runs(demo: Client, tmp_path: Path) -> None:
    submission = write_submission(tmp_path / "zip", writes_metrics({"ok": 1.0}))
    with zipfile.ZipFile(submission / "pcb1.zip", "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("pcb1/Data/Images/Normal/a.txt", b"x" * 4000)
    data = bytearray((submission / "pcb1.zip").read_bytes())
    struct.pack_into("<II", data, data.find(b"PK\x01\x02") + 20, 10**6, 10**6)  # claims 1 MB, holds 4 KB
    (submission / "pcb1.zip").write_bytes(data)
    record, log = run(demo, submission)
    assert record.status is JobStatus.FAILED
    assert record.error is not None
    assert record.error.startswith(
        "dataset zip pcb1.zip is damaged: entry 'pcb1/Data/Images/Normal/a.txt': "
        "the file ends before the 1000000 bytes it declares"
    )
    assert RAN not in log
    a_normal_job_completes(demo, tmp_path)


def test_what_mlflow_refuses_is_permanent_and_an_unreachable_mlflow_is_an_outage(
    stack: tuple[Stack, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    client = MlflowClient(mlflow_admin_url(stack[1]))
    run_id = client.create_run(client.create_experiment("refusals")).info.run_id
    with pytest.raises(Exception) as refused:
        client.log_batch(run_id, metrics=[Metric("image AUROC (%)", 0.5, 0, 0)])
    fault = classify(refused.value)
    assert fault is not None and not fault.transient
    assert fault.reason.startswith("MLflow refused the request (400 INVALID_PARAMETER_VALUE")
    with pytest.raises(Exception) as refused_again:
        client.create_experiment("refusals")
    fault = classify(refused_again.value)
    assert fault is not None and not fault.transient and "RESOURCE_ALREADY_EXISTS" in fault.reason

    stack[0].process("mlflow").stop()
    try:
        with pytest.raises(Exception) as unreachable:
            client.get_run(run_id)
        fault = classify(unreachable.value)
        assert fault is not None and fault.transient and fault.reason.startswith("MLflow unavailable")
    finally:
        stack[0].restart("mlflow").wait_ready(120)


def test_a_job_handed_back_too_often_fails_with_the_cause(
    stack: tuple[Stack, dict[str, Any]], demo: Client, tmp_path: Path
) -> None:
    stack[0].process("mlflow").stop()
    try:
        record, log = run(demo, write_submission(tmp_path / "outage", writes_metrics({"ok": 1.0})), timeout_s=180)
    finally:
        stack[0].restart("mlflow").wait_ready(120)
    assert record.status is JobStatus.FAILED
    assert record.error is not None and record.error.startswith("handed back 2 times: MLflow unavailable")
    assert record.hand_backs == 2
    assert record.attempts == 1, "hand-backs do not count against the job's attempts"
    assert RAN in log
    a_normal_job_completes(demo, tmp_path)


async def test_an_outcome_nats_refuses_ends_the_job_instead_of_retrying(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    """MaxPayloadError is a refusal: the runner stores a small failed record at once, and is free again."""
    settings = RunnerSettings(
        **nats_server.settings().model_dump(), work_dir=tmp_path, max_record_bytes=8 * 1024**2, outcome_persist_s=600
    )
    nc = await nats_io.connect(settings, name="test")
    try:
        js = nc.jetstream()
        await nats_io.ensure_topology(js, settings)
        jobs = JobStore(await js.key_value(settings.jobs_kv_bucket))
        now = datetime.now(UTC)
        record = JobRecord(
            submission_id="s1", user="alice", entrypoint="main.py", config="config.yaml", created_at=now,
            status=JobStatus.RUNNING, runner=settings.runner_id, attempts=1,
        )  # fmt: skip
        assert await jobs.create(record)
        runner = Runner(settings, jobs, s3=None, stop=asyncio.Event())  # type: ignore[arg-type]
        huge = JobOutcome(JobStatus.FAILED, "x" * (2 * 1024**2))  # over the server's 1 MiB max_payload
        stored = await asyncio.wait_for(runner._record_outcome(record, huge), 60)
    finally:
        await nc.drain()
    assert stored is not None and stored.status is JobStatus.FAILED
    assert stored.error is not None
    assert stored.error.startswith("the job's outcome could not be stored (NATS refused the message as too large")


def test_a_record_from_before_the_edge_bounds_is_cut_to_fit_metrics_kept() -> None:
    """The issue's record: a 600 KB description (accepted before ingest bounded metadata), 1,000 long params."""
    record = JobRecord(
        submission_id="s1", user="alice", entrypoint="main.py", config="config.yaml", created_at=datetime.now(UTC),
        metadata={"description": "d" * 600_000, "dataset": "pcb1", "method": "padim"},
        params={f"p{i}": "v" * 500 for i in range(1000)}, metrics={f"m{i}": i / 10 for i in range(200)},
        error="exit code 1; last lines of the log:\n" + "e" * 100_000,
    )  # fmt: skip
    fitted = fit_record(record, MAX_RECORD_BYTES_DEFAULT)
    assert len(fitted.model_dump_json().encode()) <= MAX_RECORD_BYTES_DEFAULT
    assert fitted.metrics == record.metrics
    assert fitted.metadata["dataset"] == "pcb1" and fitted.metadata["method"] == "padim"
    assert fitted.error is not None and fitted.error.startswith("exit code 1; last lines of the log:\n")
    assert f"[the job record was cut to fit {MAX_RECORD_BYTES_DEFAULT} bytes: " in fitted.error
    assert fit_record(fitted, MAX_RECORD_BYTES_DEFAULT) is fitted, "a record that fits is stored as it is"
