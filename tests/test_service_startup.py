"""Every service starts and stops the same way (leadersboard/service.py), checked on real processes.

Each service, as `python -m <service>` against a real nats-server and SeaweedFS: SIGTERM ends it cleanly
(exit 0, its own last log line, no traceback). A start it must refuse (a setting that does not parse, a
rule across settings, NATS refusing its password) is one line and exit status 2.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from pydantic import SecretStr
from pydantic_settings import BaseSettings

from dispatcher.settings import DispatcherSettings
from frontend.settings import FrontendSettings
from gpu_runner.settings import RunnerSettings
from ingest.settings import IngestSettings
from leadersboard.nats_permissions import DISPATCHER, EVENTS, INGEST, RUNNER, SCORER
from leadersboard.service import REFUSED_EXIT_STATUS
from leadersboard.settings import S3Settings, settings_env
from scorer.settings import ScorerSettings
from tools.bridge.settings import BridgeSettings
from tools.stack.procs import ManagedProcess, free_port, http_ready
from tools.stack.services import NatsServer, Seaweed

ROOT = Path(__file__).resolve().parents[1]
START_TIMEOUT_S = 90.0
"""How long a service may take to start: seconds (the frontend imports Gradio)."""


@dataclass(frozen=True)
class Started:
    settings: BaseSettings
    ready: Callable[[ManagedProcess], bool]


def logged(line: str) -> Callable[[ManagedProcess], bool]:
    return lambda process: line in process.log_path.read_text()


def serving(url: str) -> Callable[[ManagedProcess], bool]:
    return lambda _: http_ready(url)()


def dispatcher(nats: NatsServer, s3: S3Settings, _: Seaweed, __: Path) -> Started:
    settings = DispatcherSettings(**nats.settings(DISPATCHER).model_dump(), **s3.model_dump())
    return Started(settings, logged("dispatcher consuming"))


def runner(nats: NatsServer, s3: S3Settings, _: Seaweed, tmp_path: Path) -> Started:
    settings = RunnerSettings(
        **nats.settings(RUNNER).model_dump(), **s3.model_dump(), work_dir=tmp_path / "runner",
        bwrap_path="/nonexistent/bwrap", allow_unsandboxed=True,  # no job runs: the sandbox is not the point
    )  # fmt: skip
    return Started(settings, logged("waiting for jobs"))


def ingest(nats: NatsServer, s3: S3Settings, _: Seaweed, __: Path) -> Started:
    settings = IngestSettings(**nats.settings(INGEST).model_dump(), **s3.model_dump(), port=free_port())
    return Started(settings, serving(f"http://127.0.0.1:{settings.port}/api/v1/health"))


def frontend(_: NatsServer, __: S3Settings, ___: Seaweed, ____: Path) -> Started:
    settings = FrontendSettings(port=free_port())
    return Started(settings, serving(f"http://127.0.0.1:{settings.port}/frontend/health"))


def scorer(nats: NatsServer, s3: S3Settings, _: Seaweed, tmp_path: Path) -> Started:
    settings = ScorerSettings(**nats.settings(SCORER).model_dump(), **s3.model_dump(), work_dir=tmp_path / "scorer")
    return Started(settings, logged("scorer consuming"))


def bridge(nats: NatsServer, s3: S3Settings, seaweed: Seaweed, tmp_path: Path) -> Started:
    settings = BridgeSettings(
        **nats.settings(EVENTS).model_dump(), **s3.model_dump(), filer_address=seaweed.filer_address,
        seaweed_security_dir=seaweed.security.directory, checkpoint_path=tmp_path / "checkpoint",
    )  # fmt: skip
    return Started(settings, logged("starting filer.meta.tail"))


@pytest.mark.parametrize(
    ("module", "logger", "start"),
    [
        ("dispatcher", "dispatcher", dispatcher),
        ("gpu_runner", "gpu_runner", runner),
        ("ingest", "ingest", ingest),
        ("frontend", "frontend", frontend),
        ("scorer", "scorer", scorer),
        ("tools.bridge", "bridge", bridge),
    ],
)
def test_sigterm_stops_the_service_cleanly(
    module: str,
    logger: str,
    start: Callable[[NatsServer, S3Settings, Seaweed, Path], Started],
    nats_server: NatsServer,
    s3_settings: S3Settings,
    seaweed: Seaweed,
    tmp_path: Path,
) -> None:
    started = start(nats_server, s3_settings, seaweed, tmp_path)
    env = {**settings_env(started.settings), "PYTHONUNBUFFERED": "1"}
    process = ManagedProcess(module, [sys.executable, "-m", module], tmp_path / f"{module}.log", env=env, cwd=ROOT)
    process.ready = lambda: started.ready(process)
    try:
        process.start().wait_ready(START_TIMEOUT_S)
    finally:
        process.stop()  # SIGTERM, then SIGKILL only if it is still running after the grace period
    log = process.log_path.read_text()
    assert process.returncode == 0, log
    assert f"{logger} INFO SIGTERM received: stopping" in log
    assert log.rstrip().endswith(f"{logger} INFO {logger} stopped"), log
    assert "Traceback" not in log


@pytest.mark.parametrize(
    ("module", "variable", "value", "line"),
    [
        ("ingest", "LB_INGEST_PORT", "many", "LB_INGEST_PORT: Input should be a valid integer"),
        ("dispatcher", "LB_DISPATCHER_FETCH_BATCH", "many", "LB_DISPATCHER_FETCH_BATCH: Input should be a valid"),
        ("gpu_runner", "LB_RUNNER_MAX_ATTEMPTS", "many", "LB_RUNNER_MAX_ATTEMPTS: Input should be a valid integer"),
        ("frontend", "LB_FRONTEND_PORT", "many", "LB_FRONTEND_PORT: Input should be a valid integer"),
        ("scorer", "LB_SCORER_MAX_DELIVERIES", "many", "LB_SCORER_MAX_DELIVERIES: Input should be a valid integer"),
        ("tools.bridge", "LB_BRIDGE_RESTART_BACKOFF_S", "many", "LB_BRIDGE_RESTART_BACKOFF_S: Input should be a"),
        # A rule across settings names them itself.
        ("ingest", "LB_INGEST_MLFLOW_PROXY_PORT", "5010", "mlflow_admin_password: required with mlflow_proxy_port"),
    ],
)
def test_a_bad_setting_is_one_line_and_exit_2(module: str, variable: str, value: str, line: str) -> None:
    env = {"PATH": os.environ["PATH"], variable: value}
    done = subprocess.run([sys.executable, "-m", module], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == REFUSED_EXIT_STATUS, done.stderr
    [only] = done.stderr.splitlines()
    assert f"ERROR refusing to start: invalid settings: {line}" in only
    assert variable == "LB_INGEST_MLFLOW_PROXY_PORT" or value not in only, "values are left out: they may be secrets"


def test_nats_refusing_the_password_is_one_line_and_exit_2(nats_server: NatsServer, s3_settings: S3Settings) -> None:
    wrong = nats_server.settings(DISPATCHER).model_copy(update={"nats_password": SecretStr("not-the-password")})
    settings = DispatcherSettings(**wrong.model_dump(), **s3_settings.model_dump())
    done = subprocess.run(
        [sys.executable, "-m", "dispatcher"], env=settings_env(settings), cwd=ROOT, capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip
    assert done.returncode == REFUSED_EXIT_STATUS, done.stderr
    assert "Traceback" not in done.stderr
    refused = [line for line in done.stderr.splitlines() if "refusing to start" in line]
    assert len(refused) == 1 and f"NATS at {nats_server.url} refused user 'dispatcher'" in refused[0], done.stderr
