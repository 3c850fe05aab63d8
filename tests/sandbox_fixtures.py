"""The runner's real sandbox for tests: a fake `leadersboard up` data dir outside /tmp, and one job run
through `run_entrypoint` (the runner's own code path), without any mock."""

from __future__ import annotations

import asyncio
import io
import os
import shutil
import tempfile
import textwrap
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from gpu_runner.execute import ExecResult, JobLaunch, run_entrypoint
from gpu_runner.sandbox import Limits, check_sandbox
from gpu_runner.settings import RunnerSettings
from gpu_runner.workspace import Workspace
from leadersboard.models.base import utcnow
from leadersboard.models.records import JobRecord

__all__ = ["JOB_UID", "Ran", "data_root", "make_zip", "processes_with", "run_job", "runner_settings"]

JOB_UID = 65534


@dataclass
class Ran:
    result: ExecResult
    log: str
    workspace: Workspace


@pytest.fixture(scope="module")
def data_root() -> Iterator[Path]:
    """A fake `leadersboard up` data dir outside /tmp: <root>/secrets.json, <root>/runner/0 (the work root)."""
    root = Path(tempfile.mkdtemp(prefix="lb-sandbox-test-", dir="/var/tmp"))
    (root / "secrets.json").write_text('{"s3_secret_key": "top-secret"}')
    (root / "runner" / "0" / "other-job" / "work").mkdir(parents=True)
    (root / "runner" / "0" / "other-job" / "work" / "private.txt").write_text("another user's file")
    (root / "weights").mkdir()
    (root / "weights" / "marker.txt").write_text("provisioned weights")
    yield root
    shutil.rmtree(root, ignore_errors=True)


def runner_settings(data_root: Path, **overrides: Any) -> RunnerSettings:
    options: dict[str, Any] = {
        "work_dir": data_root / "runner" / "0",
        "job_max_processes": 64,
        "job_memory_bytes": 1024**3,
        "max_log_bytes": 64 * 1024,
        "job_timeout_s": 20.0,
        "weights_cache_dir": data_root / "weights",
        "keep_workdirs": False,
    }
    return RunnerSettings(**(options | overrides))


def run_job(data_root: Path, body: str, *, timeout_s: float = 20.0, **overrides: Any) -> Ran:
    settings = runner_settings(data_root, **overrides)
    sandbox = check_sandbox(settings)
    assert sandbox is not None
    workspace = Workspace(settings.work_dir / f"job-{os.urandom(4).hex()}").create()
    (workspace.work / "main.py").write_text(textwrap.dedent(body))
    (workspace.work / "config.yaml").write_text("seed: 0\n")
    record = JobRecord(submission_id="s1", user="u", entrypoint="main.py", config="config.yaml", created_at=utcnow())
    launch = JobLaunch(
        python_executable=settings.python_executable,
        gpu="0",
        timeout_s=timeout_s,
        max_log_bytes=settings.max_log_bytes,
        limits=Limits.from_settings(settings),
        sandbox=sandbox,
        weights_cache=settings.weights_cache_dir,
    )
    result = asyncio.run(run_entrypoint(workspace, record, launch, asyncio.Event()))
    ran = Ran(result, workspace.log.read_text(errors="replace"), workspace)
    return ran


def make_zip(path: Path, entries: dict[str, bytes]) -> Path:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries.items():
            zf.writestr(zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0)), data)
    path.write_bytes(buffer.getvalue())
    return path


def processes_with(token: str) -> list[int]:
    """Host pids whose command line holds `token` (processes a job left behind, if any)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and token.encode() in (proc / "cmdline").read_bytes():
                found.append(int(proc.name))
        except OSError:
            continue
    return found
