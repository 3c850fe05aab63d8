"""Running the user's entrypoint: sandboxed, clean environment, capped live log, time limit."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from gpu_runner.sandbox import COMPAT_DIR, Bind, Limits, Sandbox
from gpu_runner.settings import RunnerSettings
from gpu_runner.workspace import Workspace
from leadersboard.models import JobRecord, utcnow

__all__ = ["ExecResult", "JobLaunch", "job_environment", "run_entrypoint", "truncation_marker"]

KILL_GRACE_S = 5.0
READ_CHUNK = 1024 * 1024
TAIL_BYTES = 16 * 1024
DRAIN_AFTER_EXIT_S = 5.0


@dataclass(frozen=True)
class ExecResult:
    exit_code: int | None
    wall_time_s: float
    timed_out: bool = False
    cancelled: bool = False
    log_bytes: int = 0
    """Bytes of the job's output kept in the log."""
    discarded_bytes: int = 0
    """Bytes of output read past the log cap and thrown away."""
    tail: str = ""
    """The end of the job's output, also when it was past the cap (for the failure reason)."""

    @property
    def signal(self) -> int | None:
        """The signal that killed the job, if any (bwrap reports a signalled job as 128 + N)."""
        if self.exit_code is None:
            return None
        if self.exit_code < 0:
            return -self.exit_code
        return self.exit_code - 128 if 128 < self.exit_code <= 128 + 64 else None


@dataclass(frozen=True)
class JobLaunch:
    """How to run one job: interpreter, GPU, limits, sandbox (None: unsandboxed) and extra mounts."""

    python_executable: str
    gpu: str
    timeout_s: float
    max_log_bytes: int
    limits: Limits
    sandbox: Sandbox | None
    datasets: list[Bind] = field(default_factory=list)
    weights_cache: Path | None = None

    @classmethod
    def from_settings(
        cls, settings: RunnerSettings, *, timeout_s: float, sandbox: Sandbox | None, datasets: list[Bind] | None = None
    ) -> JobLaunch:
        return cls(
            python_executable=settings.python_executable,
            gpu=settings.gpu,
            timeout_s=timeout_s,
            max_log_bytes=settings.max_log_bytes,
            limits=Limits.from_settings(settings),
            sandbox=sandbox,
            datasets=datasets or [],
            weights_cache=settings.weights_cache_dir.resolve() if settings.weights_cache_dir else None,
        )


def job_environment(
    workspace: Workspace, *, python_executable: str, gpu: str, weights_cache: Path | None = None
) -> dict[str, str]:
    """Built from nothing: the runner's own environment (with its credentials) never reaches the job."""
    env = {
        "PATH": f"{Path(python_executable).parent}:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(workspace.work),
        "TMPDIR": str(workspace.tmp),
        "LANG": "C.UTF-8",
        "PYTHONUNBUFFERED": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONPATH": str(COMPAT_DIR),
        "MPLBACKEND": "Agg",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "CUDA_VISIBLE_DEVICES": gpu,
        "NO_COLOR": "1",
    }
    if weights_cache is not None:
        env["HF_HOME"] = env["TORCH_HOME"] = str(weights_cache)
    return env


def truncation_marker(limit: int) -> bytes:
    return f"\n[leadersboard] log truncated at {limit} bytes; further output is discarded\n".encode()


async def run_entrypoint(
    workspace: Workspace, record: JobRecord, launch: JobLaunch, cancelled: asyncio.Event
) -> ExecResult:
    argv = [
        launch.python_executable, record.entrypoint,
        "--config", record.config,
        "--output", str(workspace.output),
    ]  # fmt: skip
    if launch.sandbox is not None:
        launch.sandbox.hand_over(workspace.work, workspace.output, workspace.tmp)
        binds = [Bind(d, d, writable=True) for d in (workspace.work, workspace.output, workspace.tmp)]
        if launch.weights_cache is not None:
            binds.append(Bind(launch.weights_cache, launch.weights_cache))
        argv = launch.sandbox.wrap(argv, cwd=workspace.work, binds=[*binds, *launch.datasets], limits=launch.limits)
    elif prlimit := shutil.which("prlimit"):
        argv = [*launch.limits.prlimit_argv(prlimit), *argv]
    env = job_environment(
        workspace, python_executable=launch.python_executable, gpu=launch.gpu, weights_cache=launch.weights_cache
    )
    with workspace.log.open("a") as log_file:  # when the user's code started, for them and for bench/dispatch.py
        how = "sandboxed" if launch.sandbox is not None else "WITHOUT a sandbox"
        log_file.write(
            f"[leadersboard] {utcnow().isoformat(timespec='milliseconds')} starting {record.entrypoint} ({how})\n"
        )
    started = time.monotonic()
    process = await asyncio.create_subprocess_exec(
        *argv,
        cwd=workspace.work,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,  # its own process group, killed as a whole
    )
    assert process.stdout is not None
    capture = _LogCapture(workspace.log, launch.max_log_bytes)
    reader = asyncio.create_task(capture.drain(process.stdout))
    try:
        outcome = await _wait(process, launch.timeout_s, cancelled)
    finally:
        await _kill_group(process)  # also when the runner itself is being cancelled
    # The sandbox's pid namespace is gone with its init, so the pipe closes; unsandboxed, a detached child
    # could keep it open: stop reading after a while.
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.shield(reader), DRAIN_AFTER_EXIT_S)
    reader.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await reader
    capture.close()
    return ExecResult(
        exit_code=process.returncode,
        wall_time_s=time.monotonic() - started,
        timed_out=outcome == "timeout",
        cancelled=outcome == "cancelled",
        log_bytes=capture.kept,
        discarded_bytes=capture.discarded,
        tail=capture.tail_text(),
    )


class _LogCapture:
    """Appends the job's output to the log up to `limit` bytes, then a marker; keeps reading past it."""

    def __init__(self, path: Path, limit: int) -> None:
        self.file = path.open("ab", buffering=0)
        self.limit = limit
        self.kept = 0
        self.discarded = 0
        self.tail: deque[bytes] = deque()
        self.tail_size = 0

    async def drain(self, stream: asyncio.StreamReader) -> None:
        while chunk := await stream.read(READ_CHUNK):
            self._remember(chunk)
            kept = chunk[: max(0, self.limit - self.kept)]
            if kept:
                self.file.write(kept)
                self.kept += len(kept)
            if len(kept) < len(chunk):
                if not self.discarded:
                    self.file.write(truncation_marker(self.limit))
                self.discarded += len(chunk) - len(kept)

    def _remember(self, chunk: bytes) -> None:
        self.tail.append(chunk[-TAIL_BYTES:])
        self.tail_size += len(self.tail[-1])
        while self.tail_size - len(self.tail[0]) >= TAIL_BYTES:
            self.tail_size -= len(self.tail.popleft())

    def tail_text(self) -> str:
        return b"".join(self.tail)[-TAIL_BYTES:].decode(errors="replace")

    def close(self) -> None:
        if self.discarded:
            self.file.write(f"[leadersboard] {self.discarded} more bytes of output were discarded\n".encode())
        self.file.close()


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
    """Terminate, then kill, the job's process group. Sandboxed, bwrap's death (--die-with-parent) takes the
    job's whole pid namespace with it, detached children included."""
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
