from __future__ import annotations

import os
import socket
import sys
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from leadersboard.limits import MAX_RECORD_BYTES
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
    max_predictions_bytes: int = 1024**3
    """A benchmark job's `predictions/` (uploaded whole, not cut by max_output_bytes); more fails the job."""
    max_attempts: int = 2
    max_hand_backs: int = 3
    """A job handed back this many times (outages, shutdowns) fails at the next one instead, with the cause."""
    hand_back_delay_s: float = 5.0
    """A job handed back is offered to the runners again after this long."""
    outcome_persist_s: float = 600.0
    """How long a finished job's outcome is retried through a NATS outage before the runner gives up."""
    max_record_bytes: int = MAX_RECORD_BYTES
    """A terminal job record larger than this is stored cut, with a note (NATS refuses over max_payload)."""
    mlflow_http_max_retries: int = 4
    mlflow_http_backoff_factor: int = 1
    """MLflow's client retries a failed request this often, waiting 1, 2, 4... times this (s) in between."""
    mlflow_http_timeout_s: int = 60
    heartbeat_interval_s: float = 2.0
    shutdown_grace_s: float = 30.0
    """On SIGTERM, a job still running after this long is stopped and handed back to the queue."""
    heartbeat_stale_s: float = 15.0
    """A running job whose heartbeat is older than this may be taken over when its message comes back."""
    fetch_timeout_s: float = 1.0
    keep_workdirs: bool = False
    mlflow_tracking_uri: str = "http://127.0.0.1:5010"
    mlflow_public_url: str = "http://127.0.0.1:5010"
    web_public_url: str = "http://127.0.0.1:8501"
    """The web page as users reach it: each MLflow run's description links to its submission there."""
    api_public_url: str = "http://127.0.0.1:8000"
    """The HTTP API as users reach it (without /api/v1): each MLflow run links to its submission's record."""
    mlflow_username: str = "runner"
    """The runner's MLflow account (MLflow runs with basic auth; see leadersboard/mlflow_auth.py)."""
    mlflow_password: SecretStr | None = None
    burst: bool = False
    """Exit once the work queue is empty (for tests and one-off runs)."""

    # The job sandbox (gpu_runner/sandbox.py, docs/sandbox.md).
    allow_unsandboxed: bool = False
    """Run jobs without bubblewrap when `bwrap` is missing (development only: no isolation at all)."""
    bwrap_path: str = "bwrap"
    job_uid: int = 65534
    """The unprivileged uid jobs run as when the runner is root (give each runner of a host its own)."""
    job_gid: int = 65534
    job_memory_bytes: int = 16 * 1024**3
    """RLIMIT_DATA of every job process (heap and anonymous memory, not the address space: CUDA works); 0: none.
    A per-process backstop: `job_memory_gib` bounds the job as a whole."""
    job_max_processes: int = 1024
    """RLIMIT_NPROC: processes and threads of the job uid at once."""
    job_max_open_files: int = 8192
    job_max_file_bytes: int = 64 * 1024**3
    """RLIMIT_FSIZE: the largest file a job may write."""
    job_tmpfs_bytes: int = 1024**3
    """Size of the job's private /tmp and /dev/shm (memory-backed); TMPDIR points to the disk instead."""
    job_memory_gib: float = Field(default=16.0, gt=0)
    """Memory of the job's whole process tree (its cgroup; /tmp and /dev/shm count too); a user's quota
    `job_memory_gib` overrides it per job (gpu_runner/cgroups.py)."""
    job_disk_gib: float = Field(default=50.0, gt=0)
    """Disk of the job's working, output and TMPDIR directories together; a user's quota `job_disk_gib`
    overrides it per job (gpu_runner/disk.py)."""
    job_disk_method: Literal["auto", "loop", "watch"] = "auto"
    """`loop`: a size-limited volume per job (root); `watch`: poll usage and kill; `auto`: loop if possible."""
    job_disk_poll_s: float = Field(default=0.5, gt=0)
    """How often the `watch` method sums a job's usage (the overshoot is the write rate times this)."""
    sandbox_hide: list[str] = Field(default_factory=list)
    """More host directories to hide from jobs (the runner's home, /run and its data dirs always are)."""
    max_log_bytes: int = 8 * 1024**2
    """The job's log is cut here (with a marker); the rest of its output is read and discarded."""
    weights_cache_dir: Path | None = None
    """Read-only model weights (HF_HOME and TORCH_HOME of every job); fill it with `python -m gpu_runner.weights`."""
    dataset_cache_dir: Path | None = None
    """Where uploaded zips are extracted once per content hash; default `<work_dir>/../dataset-cache`."""
    max_zip_total_bytes: int = 20 * 1024**3
    """A zip expanding to more than this (all its files together) is refused."""
    max_zip_ratio: float = 200.0
    """A zip expanding to more than this many times its compressed size is refused (zip bombs)."""
