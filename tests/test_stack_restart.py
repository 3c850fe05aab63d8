"""`leadersboard up` twice on one data directory: jobs, tokens and MLflow runs survive the restart."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from leadersboard.models.records import JobStatus
from tests.stack_fixtures import client_for, mlflow_admin_url, running_stack, write_submission
from tools.stack.procs import StartupError, tcp_ready
from tools.stack.up import Stack, StackPorts

METRICS = '(out / "metrics.json").write_text(\'{"params": {}, "metrics": {"image_AUROC": 0.5}}\')'


@pytest.mark.slow
def test_second_start_keeps_jobs_tokens_and_runs(tmp_path: Path) -> None:
    data_dir, ports = tmp_path / "data", StackPorts.free()
    with running_stack(data_dir, ports) as (_, info):
        with client_for(info, "admin_token") as admin:
            extra_token = admin.create_token("carol")["token"]
        with client_for(info) as demo:
            before = demo.wait(demo.submit([write_submission(tmp_path / "a", METRICS)]), timeout_s=120)
        assert before.status is JobStatus.COMPLETED

    with running_stack(data_dir, ports) as (stack, again):
        assert again["demo_token"] == info["demo_token"]
        with client_for(again) as demo:
            assert demo.get(before.submission_id).status is JobStatus.COMPLETED
            after = demo.wait(demo.submit([write_submission(tmp_path / "b", METRICS)]), timeout_s=120)
            assert after.status is JobStatus.COMPLETED
            # The bridge resumed from its checkpoint: the first manifest did not start a second job.
            assert [r.attempts for r in demo.jobs()] == [1, 1]
        with client_for({**again, "carol": extra_token}, "carol") as carol:
            assert carol.jobs() == []
        assert MlflowClient(mlflow_admin_url(again)).get_run(before.mlflow_run_id or "").info.status == "FINISHED"
        assert (data_dir / "stack.json").stat().st_mode & 0o077 == 0
        assert stack.process("runner").alive


def test_startup_failure_names_the_process_and_stops_the_rest(tmp_path: Path) -> None:
    ports = StackPorts.free()
    stack = Stack(tmp_path, ports=ports, with_frontend=False)
    with socket.socket() as busy:  # the S3 port is taken: SeaweedFS cannot start
        busy.bind(("127.0.0.1", ports.s3))
        busy.listen()
        with pytest.raises(StartupError, match="seaweedfs"):
            stack.start()
    assert stack.processes == []
    assert not tcp_ready("127.0.0.1", ports.nats)(), "nats-server was left running"
