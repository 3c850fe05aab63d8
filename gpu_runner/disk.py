"""A disk limit on a job's working and output directories (its whole workspace), one of two ways.

- `loop` (a root runner with mkfs.ext4 and loop devices): the workspace is a fresh ext4 file system in a
  sparse image file, mounted at the workspace root for the job's lifetime. Its reserved blocks are set so that
  the job's uid sees exactly the limit free: a write past it fails with ENOSPC, no overshoot at all. The
  runner (root) may still write the job's log into the reserve.
- `watch` (anywhere else): the workspace's usage is summed every `job_disk_poll_s` and the job's process tree
  is killed when it is over the limit; the overshoot is at most the write rate times the interval (plus the
  time one sum takes).

The job's private /tmp and /dev/shm are tmpfs: they count against its memory limit, not this one.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from gpu_runner.settings import RunnerSettings
from gpu_runner.workspace import Workspace

__all__ = [
    "JobDisk",
    "LoopVolume",
    "WatchedDirs",
    "detach_loop",
    "disk_method",
    "is_disk_full_error",
    "loop_devices",
    "open_workspace",
    "unmount",
    "volumes_dir",
]

log = logging.getLogger("gpu_runner")
GIB = 1024**3
BLOCK_BYTES = 4096
BYTES_PER_INODE = 64 * 1024
METADATA_SHARE = 0.06
"""ext4 metadata (inode tables, bitmaps) of an image with an inode per 64 KiB, measured: about 2 %."""
FULL_MARGIN_BYTES = 4 * 1024**2
"""Free space (for the job) under which the loop volume counts as full."""
TOOL_TIMEOUT_S = 60.0


class JobDisk(Protocol):
    method: str
    limit_bytes: int

    def over(self) -> bool:
        """True once the job has used its whole limit."""

    async def watch(self, exceeded: asyncio.Event) -> None:
        """Set `exceeded` while the job runs if it goes over (returns at once when the kernel enforces it)."""

    def release(self, *, keep: bool) -> None:
        """After the job and its results: free the volume (`keep`: leave the files for debugging)."""


def disk_method(settings: RunnerSettings) -> tuple[str, str]:
    """(`loop` or `watch`, why): the best method this host allows."""
    if settings.job_disk_method == "watch":
        return "watch", "chosen in the settings"
    missing = [tool for tool in ("mkfs.ext4", "mount", "umount") if shutil.which(tool) is None]
    if os.geteuid() != 0:
        reason = "the runner is not root (mounting needs it)"
    elif missing:
        reason = f"{', '.join(missing)} not found"
    elif not Path("/dev/loop-control").exists():
        reason = "no loop devices (/dev/loop-control)"
    else:
        return "loop", "a size-limited ext4 volume per job (ENOSPC at the limit)"
    if settings.job_disk_method == "loop":
        raise RuntimeError(f"job_disk_method is loop but {reason}")
    return "watch", f"{reason}: usage polled every {settings.job_disk_poll_s:g} s"


def is_disk_full_error(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


def open_workspace(settings: RunnerSettings, root: Path, limit_bytes: int) -> tuple[Workspace, JobDisk]:
    """A fresh workspace at `root` whose working, output and temporary dirs hold at most `limit_bytes`."""
    unmount(root)  # left by a runner that crashed mid-job
    workspace = Workspace(root).create()
    method, _ = disk_method(settings)
    if method == "watch":
        return workspace, WatchedDirs(workspace, limit_bytes, settings.job_disk_poll_s)
    image = volumes_dir(settings) / f"{root.name}.img"
    return workspace, LoopVolume.mount(workspace, image, limit_bytes, settings.max_log_bytes)


def volumes_dir(settings: RunnerSettings) -> Path:
    """Where the `loop` method keeps each job's image, `<submission_id>.img` (gpu_runner/leftovers.py sweeps it)."""
    return settings.work_dir.resolve() / ".volumes"


@dataclass
class LoopVolume:
    method = "loop"
    workspace: Workspace
    image: Path
    limit_bytes: int

    @classmethod
    def mount(cls, workspace: Workspace, image: Path, limit_bytes: int, log_bytes: int) -> LoopVolume:
        image.parent.mkdir(parents=True, exist_ok=True)
        reserve = log_bytes + 16 * 1024**2  # the runner's own writes: the job's log and notes
        size = int(limit_bytes * (1 + METADATA_SHARE)) + reserve + 32 * 1024**2
        with image.open("wb") as sparse:
            sparse.truncate(size)
        _run("mkfs.ext4", "-q", "-F", "-O", "^has_journal", "-m", "0", "-b", str(BLOCK_BYTES),
             "-i", str(BYTES_PER_INODE), "-E", "nodiscard", str(image))  # fmt: skip
        free_blocks, kernel_reserve = _free_blocks(image)
        reserved = max(0, free_blocks - kernel_reserve - limit_bytes // BLOCK_BYTES)
        _run("tune2fs", "-r", str(reserved), str(image))
        _run("mount", "-o", "loop,nosuid,nodev", str(image), str(workspace.root))
        volume = cls(workspace, image, limit_bytes)
        _make_dirs(workspace)
        return volume

    def available_bytes(self) -> int:
        """Free space as an unprivileged job sees it."""
        stats = os.statvfs(self.workspace.root)
        return stats.f_bavail * stats.f_frsize

    def over(self) -> bool:
        return self.available_bytes() < min(FULL_MARGIN_BYTES, self.limit_bytes // 100 + BLOCK_BYTES * 4)

    async def watch(self, exceeded: asyncio.Event) -> None:
        return  # the kernel enforces it

    def release(self, *, keep: bool) -> None:
        unmount(self.workspace.root)
        if keep:
            log.info("kept the job's volume %s (mount -o loop to look inside)", self.image)
            return
        self.image.unlink(missing_ok=True)


@dataclass
class WatchedDirs:
    method = "watch"
    workspace: Workspace
    limit_bytes: int
    interval_s: float

    def used_bytes(self) -> int:
        return sum(_usage(d) for d in (self.workspace.work, self.workspace.output, self.workspace.tmp))

    def over(self) -> bool:
        return self.used_bytes() > self.limit_bytes

    async def watch(self, exceeded: asyncio.Event) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            if await asyncio.to_thread(self.over):
                exceeded.set()
                return

    def release(self, *, keep: bool) -> None:
        return


def _make_dirs(workspace: Workspace) -> None:
    for directory in (workspace.work, workspace.output, workspace.tmp):
        directory.mkdir(exist_ok=True)
    with contextlib.suppress(OSError):
        shutil.rmtree(workspace.root / "lost+found")


def _usage(top: Path) -> int:
    """Bytes allocated below `top` (sparse files count what they really hold), links not followed."""
    total = 0
    for directory, dirnames, filenames in os.walk(top):
        for name in (*dirnames, *filenames):
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(directory, name)).st_blocks * 512
    return total


def _free_blocks(image: Path) -> tuple[int, int]:
    """(free blocks, blocks ext4 keeps back from everyone for delayed allocation: 2 %, at most 4096)."""
    fields = {}
    for line in _run("dumpe2fs", "-h", str(image)).splitlines():
        name, _, value = line.partition(":")
        fields[name] = value.strip()
    try:
        return int(fields["Free blocks"]), min(int(fields["Block count"]) // 50, 4096)
    except (KeyError, ValueError) as exc:
        raise RuntimeError(f"dumpe2fs did not report the block counts of {image}") from exc


def unmount(root: Path) -> None:
    while os.path.ismount(root):  # a crashed runner may have left one (or, in theory, several)
        done = subprocess.run(["umount", "-l", str(root)], capture_output=True, text=True, timeout=TOOL_TIMEOUT_S)
        if done.returncode != 0:
            raise RuntimeError(f"umount {root} failed: {done.stderr.strip()}")


def loop_devices(image: Path) -> list[str]:
    """The loop devices still backed by `image` (`mount -o loop` frees its own at the unmount)."""
    if shutil.which("losetup") is None:  # no loop devices without it either
        return []
    # Lines like `/dev/loop3: []: (/path/to/image)`.
    return [line.split(":", 1)[0] for line in _run("losetup", "-j", str(image)).splitlines() if line.strip()]


def detach_loop(device: str) -> None:
    _run("losetup", "-d", device)


def _run(*argv: str) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=TOOL_TIMEOUT_S)
    if done.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    return done.stdout
