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

    # The job sandbox (gpu_runner/sandbox.py, docs/sandbox.md).
    allow_unsandboxed: bool = False
    """Run jobs without bubblewrap when `bwrap` is missing (development only: no isolation at all)."""
    bwrap_path: str = "bwrap"
    job_uid: int = 65534
    """The unprivileged uid jobs run as when the runner is root (give each runner of a host its own)."""
    job_gid: int = 65534
    job_memory_bytes: int = 16 * 1024**3
    """RLIMIT_DATA of every job process (heap and anonymous memory, not the address space: CUDA works); 0: none."""
    job_max_processes: int = 1024
    """RLIMIT_NPROC: processes and threads of the job uid at once."""
    job_max_open_files: int = 8192
    job_max_file_bytes: int = 64 * 1024**3
    """RLIMIT_FSIZE: the largest file a job may write."""
    job_tmpfs_bytes: int = 1024**3
    """Size of the job's private /tmp and /dev/shm (memory-backed); TMPDIR points to the disk instead."""
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
