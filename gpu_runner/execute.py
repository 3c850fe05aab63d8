"""Running the user's entrypoint as a child process: clean environment, captured log, time limit."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from gpu_runner.workspace import Workspace
from leadersboard.models import JobRecord

__all__ = ["ExecResult", "job_environment", "run_entrypoint"]

KILL_GRACE_S = 5.0


@dataclass(frozen=True)
class ExecResult:
    exit_code: int | None
    wall_time_s: float
    timed_out: bool = False
    cancelled: bool = False


def job_environment(workspace: Workspace, *, python_executable: str, gpu: str) -> dict[str, str]:
    """Built from nothing: the runner's own environment (with its credentials) never reaches the job."""
    tmp = workspace.root / "tmp"
    tmp.mkdir(exist_ok=True)
    return {
        "PATH": f"{Path(python_executable).parent}:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(workspace.work),
        "TMPDIR": str(tmp),
        "LANG": "C.UTF-8",
        "PYTHONUNBUFFERED": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        "MPLBACKEND": "Agg",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "CUDA_VISIBLE_DEVICES": gpu,
        "NO_COLOR": "1",
    }


async def run_entrypoint(
    workspace: Workspace,
    record: JobRecord,
    *,
    python_executable: str,
    gpu: str,
    timeout_s: float,
    cancelled: asyncio.Event,
) -> ExecResult:
    argv = [
        python_executable, record.entrypoint,
        "--config", record.config,
        "--output", str(workspace.output),
    ]  # fmt: skip
    started = time.monotonic()
    with workspace.log.open("ab") as log:
        process = await asyncio.create_subprocess_exec(
            *argv,
            cwd=workspace.work,
            env=job_environment(workspace, python_executable=python_executable, gpu=gpu),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,  # its own process group, killed as a whole
        )
        outcome = await _wait(process, timeout_s, cancelled)
    await _kill_group(process)
    wall = time.monotonic() - started
    return ExecResult(
        exit_code=process.returncode,
        wall_time_s=wall,
        timed_out=outcome == "timeout",
        cancelled=outcome == "cancelled",
    )


async def _wait(process: asyncio.subprocess.Process, timeout_s: float, cancelled: asyncio.Event) -> str:
    exited = asyncio.ensure_future(process.wait())
    cancel_wait = asyncio.ensure_future(cancelled.wait())
    done, _ = await asyncio.wait({exited, cancel_wait}, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
    cancel_wait.cancel()
    if exited in done:
        return "exited"
    exited.cancel()
    return "cancelled" if cancel_wait in done else "timeout"


async def _kill_group(process: asyncio.subprocess.Process) -> None:
    """Terminate, then kill, everything in the job's process group, including detached children."""
    for sig, grace_s in ((signal.SIGTERM, KILL_GRACE_S), (signal.SIGKILL, None)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            break
        if grace_s is None:
            break
        try:
            await asyncio.wait_for(process.wait(), grace_s)
        except TimeoutError:
            continue
    await process.wait()
