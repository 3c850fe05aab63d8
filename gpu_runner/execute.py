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

from gpu_runner.cgroups import CgroupHost, JobCgroup, host_cgroups, owner_tag
from gpu_runner.disk import JobDisk, disk_method
from gpu_runner.sandbox import COMPAT_DIR, Bind, Limits, Sandbox
from gpu_runner.settings import RunnerSettings
from gpu_runner.workspace import Workspace
from leadersboard.models.base import utcnow
from leadersboard.models.records import JobRecord

__all__ = [
    "ExecResult",
    "JobLaunch",
    "host_limits",
    "job_environment",
    "run_entrypoint",
    "truncation_marker",
]

KILL_GRACE_S = 5.0
READ_CHUNK = 1024 * 1024
TAIL_BYTES = 16 * 1024
DRAIN_AFTER_EXIT_S = 5.0
GIB = 1024**3


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
    over_limit: str | None = None
    """`memory limit of M GiB reached` or `disk limit of N GiB reached` when the job went over one."""

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
    memory_bytes: int = 0
    """The whole job's memory (its cgroup); 0 or no `cgroups`: only the per-process RLIMIT_DATA."""
    cgroups: CgroupHost | None = None
    cgroup_owner: str = "unowned"
    """Marks the job's group as this runner's (cgroups.owner_tag), for the sweep after a crash."""
    disk: JobDisk | None = None
    """The job's disk limit on its workspace (None: only the per-file RLIMIT_FSIZE)."""

    @classmethod
    def from_settings(
        cls,
        settings: RunnerSettings,
        *,
        timeout_s: float,
        sandbox: Sandbox | None,
        datasets: list[Bind] | None = None,
        memory_gib: float | None = None,
        disk: JobDisk | None = None,
    ) -> JobLaunch:
        cgroups = host_cgroups()
        return cls(
            python_executable=settings.python_executable,
            gpu=settings.gpu,
            timeout_s=timeout_s,
            max_log_bytes=settings.max_log_bytes,
            limits=Limits.from_settings(settings),
            sandbox=sandbox,
            datasets=datasets or [],
            weights_cache=settings.weights_cache_dir.resolve() if settings.weights_cache_dir else None,
            memory_bytes=int((memory_gib or settings.job_memory_gib) * GIB),
            cgroups=cgroups if isinstance(cgroups, CgroupHost) else None,
            cgroup_owner=owner_tag(settings.work_dir),
            disk=disk,
        )


def host_limits(settings: RunnerSettings) -> tuple[list[str], list[str]]:
    """(what the host lets the runner enforce, what it cannot): logged at start, loudly for the second."""
    enforced, missing = [], []
    cgroups = host_cgroups()
    if isinstance(cgroups, CgroupHost):
        enforced.append(f"job memory: {cgroups.describe()} (default {settings.job_memory_gib:g} GiB per job)")
    else:
        missing.append(
            f"job memory is NOT limited per job: {cgroups.reason}; only RLIMIT_DATA applies, per process "
            f"({settings.job_memory_bytes / GIB:g} GiB): run the runner as root with a writable cgroup "
            "memory controller (v1) or a delegated cgroup v2 subtree"
        )
    method, why = disk_method(settings)
    line = f"job disk: {method}: {why} (default {settings.job_disk_gib:g} GiB per job)"
    (enforced if method == "loop" else missing).append(line)
    return enforced, missing


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
    group = None
    if launch.cgroups is not None and launch.memory_bytes > 0:
        group = JobCgroup(launch.cgroups, launch.memory_bytes, owner=launch.cgroup_owner).create()
        argv = group.join_argv(argv)  # in the group before prlimit, bwrap or main.py run
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
    disk_full = asyncio.Event()
    watcher = asyncio.create_task(launch.disk.watch(disk_full) if launch.disk else disk_full.wait())
    try:
        outcome = await _wait(process, launch.timeout_s, cancelled, disk_full)
    finally:
        watcher.cancel()
        await _kill_group(process)  # also when the runner itself is being cancelled
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
        memory_kills = group.oom_kills() if group is not None else 0
        if group is not None:
            await asyncio.to_thread(group.remove)
    # The sandbox's pid namespace is gone with its init, so the pipe closes; unsandboxed, a detached child
    # could keep it open: stop reading after a while.
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.shield(reader), DRAIN_AFTER_EXIT_S)
    reader.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await reader
    capture.close()
    over_limit = None
    if memory_kills:  # one process killed may leave the job limping on: it went over all the same
        over_limit = f"memory limit of {launch.memory_bytes / GIB:g} GiB reached"
    elif launch.disk is not None and (outcome == "disk" or await asyncio.to_thread(launch.disk.over)):
        over_limit = f"disk limit of {launch.disk.limit_bytes / GIB:g} GiB reached"
    return ExecResult(
        exit_code=process.returncode,
        wall_time_s=time.monotonic() - started,
        timed_out=outcome == "timeout",
        cancelled=outcome == "cancelled",
        log_bytes=capture.kept,
        discarded_bytes=capture.discarded,
        tail=capture.tail_text(),
        over_limit=over_limit,
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


async def _wait(
    process: asyncio.subprocess.Process, timeout_s: float, cancelled: asyncio.Event, disk_full: asyncio.Event
) -> str:
    exited = asyncio.ensure_future(process.wait())
    cancel_wait = asyncio.ensure_future(cancelled.wait())
    disk_wait = asyncio.ensure_future(disk_full.wait())
    done, _ = await asyncio.wait(
        {exited, cancel_wait, disk_wait}, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED
    )
    cancel_wait.cancel()
    disk_wait.cancel()
    if exited in done:
        return "exited"
    exited.cancel()
    if cancel_wait in done:
        return "cancelled"
    return "disk" if disk_wait in done else "timeout"


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
