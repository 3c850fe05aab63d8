"""`leadersboard up` (what `make up` runs) looks after its services: a killed service is restarted and reported
while the others keep serving, one that keeps crashing is given up on and the stack stays up, and
`leadersboard status` lists them all."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from leadersboard.models.records import JobStatus
from leadersboard.models.stack_status import ServiceState, ServiceStatus, StackStatus
from tests.stack_fixtures import client_for, write_submission
from tools.stack.procs import tcp_ready
from tools.stack.settings import StackSettings
from tools.stack.supervise import status_file
from tools.stack.up import StackPorts

CLI = str(Path(sys.executable).parent / "leadersboard")
METRICS = '(out / "metrics.json").write_text(\'{"params": {}, "metrics": {"image_AUROC": 0.5}}\')'
SERVICES = {"nats-server", "seaweedfs", "mlflow", "bridge", "ingest", "dispatcher", "runner", "scorer", "frontend"}


def wait_for(condition: Callable[[], Any], what: str, timeout_s: float = 120) -> Any:
    deadline = time.monotonic() + timeout_s
    while not (found := condition()):
        assert time.monotonic() < deadline, f"never saw {what}"
        time.sleep(0.2)
    return found


def service(data_dir: Path, name: str) -> ServiceStatus:
    status = StackStatus.model_validate_json(status_file(data_dir).read_text())
    return next(s for s in status.services if s.name == name)


def restarted(data_dir: Path, name: str, restarts: int) -> ServiceStatus | None:
    """The service once it runs again after its `restarts`-th restart."""
    now = service(data_dir, name)
    return now if now.restarts == restarts and now.state is ServiceState.RUNNING else None


@pytest.mark.slow
def test_a_killed_service_comes_back_a_crashing_one_is_reported_and_the_stack_keeps_serving(tmp_path: Path) -> None:
    ports = StackPorts.free()
    settings = StackSettings(
        data_dir=tmp_path / "lb", **{f"{k}_port": v for k, v in vars(ports).items()}, restart_give_up_after=2
    )
    env = {**os.environ, **{f"LB_STACK_{k.upper()}": str(v) for k, v in settings.model_dump().items()}}
    env["COLUMNS"] = "200"
    data_dir = settings.data_dir
    up = subprocess.Popen([CLI, "up"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for(lambda: (data_dir / "stack.json").exists() or up.poll() is not None, "stack.json", 300)
        assert up.poll() is None, up.stdout.read() if up.stdout else ""
        info = json.loads((data_dir / "stack.json").read_text())

        killed = service(data_dir, "runner").pid
        os.kill(killed, signal.SIGKILL)
        runner = wait_for(lambda: restarted(data_dir, "runner", 1), "the runner restarted")
        assert runner.pid != killed and runner.last_exit == "signal 9 (SIGKILL)"
        with client_for(info) as demo:  # the new runner takes jobs; ingest, dispatcher, bridge served throughout
            job = demo.wait(demo.submit([write_submission(tmp_path / "job", METRICS)]), timeout_s=180)
        assert job.status is JobStatus.COMPLETED

        for crash in (1, 2, 3):  # the scorer keeps crashing within its first minute: given up on after 2 restarts
            os.kill(service(data_dir, "scorer").pid, signal.SIGKILL)
            if crash < 3:
                wait_for(lambda n=crash: restarted(data_dir, "scorer", n), f"scorer restart {crash}")  # type: ignore[misc]
        wait_for(lambda: service(data_dir, "scorer").state is ServiceState.FAILED, "the scorer given up on")
        assert httpx.get(f"{info['urls']['api']}/health").json()["status"] == "ok"

        status = subprocess.run([CLI, "status", "--json"], env=env, capture_output=True, text=True, timeout=60)
        rows = {row["name"]: row for row in json.loads(status.stdout)}
        assert status.returncode == 1, status.stderr  # a service failed
        assert set(rows) == SERVICES
        assert (rows["runner"]["pid"], rows["runner"]["restarts"]) == (runner.pid, 1)
        assert (rows["scorer"]["state"], rows["scorer"]["restarts"], rows["scorer"]["health"]) == ("failed", 2, "down")
        for name in ("nats-server", "seaweedfs", "mlflow", "ingest", "frontend"):  # the ones with a port to probe
            assert rows[name]["health"] == "ok", rows[name]
        assert all(row["uptime_s"] > 0 for name, row in rows.items() if name != "scorer")
        table = subprocess.run([CLI, "status"], env=env, capture_output=True, text=True, timeout=60).stdout
        assert all(name in table for name in SERVICES) and str(runner.pid) in table
    finally:
        up.send_signal(signal.SIGINT)
        output, _ = up.communicate(timeout=120)
    assert up.returncode == 0, output
    assert "runner exited with signal 9 (SIGKILL)" in output and "restarting it in 1 s (restart 1)" in output
    assert f"Last lines of {data_dir.resolve() / 'logs' / 'runner.log'}" in output
    assert "scorer exited with signal 9 (SIGKILL)" in output and "no longer restarted" in output
    assert not status_file(data_dir).exists()
    for port in vars(ports).values():
        assert not tcp_ready("127.0.0.1", port)(), f"port {port} still open after Ctrl-C"
