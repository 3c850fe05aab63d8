from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from leadersboard.settings import NatsSettings, S3Settings

__all__ = ["RunnerSettings"]


def _default_runner_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class RunnerSettings(NatsSettings, S3Settings):
    model_config = SettingsConfigDict(env_prefix="LB_RUNNER_")

    runner_id: str = Field(default_factory=_default_runner_id)
    consumer_name: str = "runners"
    work_dir: Path = Path(".leadersboard/runner")
    python_executable: str = sys.executable
    gpu: str = ""
    """The GPU this runner owns (CUDA_VISIBLE_DEVICES for its jobs); empty on a CPU-only host."""
    job_timeout_s: float = 3600.0
    ack_wait_s: float = 60.0
    log_flush_interval_s: float = 2.0
    max_metrics_bytes: int = 1024 * 1024
    max_output_bytes: int = 512 * 1024**2
    max_attempts: int = 2
    heartbeat_interval_s: float = 2.0
    shutdown_grace_s: float = 30.0
    """On SIGTERM, a job still running after this long is stopped and handed back to the queue."""
    heartbeat_stale_s: float = 15.0
    """A running job whose heartbeat is older than this may be taken over when its message comes back."""
    fetch_timeout_s: float = 1.0
    keep_workdirs: bool = False
    mlflow_tracking_uri: str = "http://127.0.0.1:5010"
    mlflow_public_url: str = "http://127.0.0.1:5010"
    burst: bool = False
    """Exit once the work queue is empty (for tests and one-off runs)."""
