"""At start: remove what the jobs of an earlier run of this runner left when it died mid-job (kill -9, power loss).

What one job makes, and so what a crash can leave (gpu_runner/job.py, disk.py, execute.py, cgroups.py):

- its workspace `<work_dir>/<submission_id>/`, with the `loop` disk method a mounted ext4 volume;
- that volume's image `<work_dir>/.volumes/<submission_id>.img` and the loop device behind the mount (`mount -o
  loop` frees it at the unmount; one still attached after it is detached here);
- its memory cgroup `leadersboard-job-<owner>-<id>` (<owner>: cgroups.owner_tag of the work_dir) with whatever an
  unsandboxed job left running in it (a sandboxed job dies with the runner: bwrap --die-with-parent);
- and, at any start, the sandbox probe's `<work_dir>/.probe-*` (gpu_runner/sandbox.py).

Only this runner's own: everything is looked up below its work_dir or by its owner tag, and only when no other
live runner uses that work_dir: every runner holds `<work_dir>/.lock` shared for its life, the sweep needs it
exclusive. With `keep_workdirs` the files stay (unmounted) for a look. A leftover that cannot be removed is a
warning naming it and the error: the runner starts all the same. The crashed job's record is not touched here:
the redelivery rules hand it back or fail it (gpu_runner/service.py, leadersboard/liveness.py).
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from gpu_runner.cgroups import CgroupHost, host_cgroups, owned_groups, owner_tag, remove_group
from gpu_runner.disk import detach_loop, loop_devices, unmount, volumes_dir
from gpu_runner.job import SUBMITTED_CONFIG
from gpu_runner.settings import RunnerSettings
from gpu_runner.workspace import Workspace
from leadersboard.keys import is_submission_id

__all__ = ["LOCK_NAME", "Mounts", "Sweep", "SystemMounts", "is_workspace", "owned_work_dir", "remove_leftovers"]

log = logging.getLogger("gpu_runner")
LOCK_NAME = ".lock"
PROBE_PATTERN = ".probe-*"


class Mounts(Protocol):
    """The privileged part: the mount table and loop devices (a fake in unit tests)."""

    def mounted(self, path: Path) -> bool: ...

    def unmount(self, path: Path) -> None: ...

    def loop_devices(self, image: Path) -> list[str]:
        """The loop devices still backed by `image`."""

    def detach(self, device: str) -> None: ...


class SystemMounts:
    def mounted(self, path: Path) -> bool:
        return os.path.ismount(path)

    def unmount(self, path: Path) -> None:
        unmount(path)

    def loop_devices(self, image: Path) -> list[str]:
        return loop_devices(image)

    def detach(self, device: str) -> None:
        detach_loop(device)


@dataclass
class Sweep:
    removed: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    """`<what>: <error>` for every leftover that could not be removed."""

    def done(self, what: str) -> None:
        log.info("removed a leftover of an earlier run: %s", what)
        self.removed.append(what)

    def fail(self, what: str, exc: BaseException) -> None:
        reason = f"{what}: {exc}"
        log.warning("could not remove a leftover of an earlier run, %s; starting all the same", reason)
        self.failed.append(reason)


@contextmanager
def owned_work_dir(settings: RunnerSettings, mounts: Mounts | None = None) -> Iterator[Sweep | None]:
    """For the runner's life: the work_dir marked in use (shared lock); first, if no other live runner uses
    it, its leftovers removed (the Sweep; None when another runner holds the lock)."""
    settings.work_dir.mkdir(parents=True, exist_ok=True)
    with (settings.work_dir.resolve() / LOCK_NAME).open("a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.warning(
                "another live runner uses the work_dir %s: leftovers of crashed jobs are not swept "
                "(give each runner its own LB_RUNNER_WORK_DIR)",
                settings.work_dir.resolve(),
            )
            fcntl.flock(lock, fcntl.LOCK_SH)
            yield None
            return
        sweep = remove_leftovers(settings, mounts or SystemMounts())
        fcntl.flock(lock, fcntl.LOCK_SH)
        yield sweep


def remove_leftovers(settings: RunnerSettings, mounts: Mounts) -> Sweep:
    """Unmount, detach and delete everything crashed jobs of this runner left (see the module's doc).
    Call it only while holding the work_dir's lock exclusively (owned_work_dir does)."""
    sweep = Sweep()
    work_root = settings.work_dir.resolve()
    try:
        images = {image.stem: image for image in sorted(volumes_dir(settings).glob("*.img"))}
        workspaces = {p.name for p in work_root.iterdir() if is_workspace(p)}
    except OSError as exc:
        sweep.fail(f"the jobs' files under {work_root}", exc)
        return sweep
    for name in sorted({*images, *workspaces}):
        root = work_root / name
        if not _unmounted(root, mounts, sweep):
            continue  # deleting below a live mount would empty the volume, not free it
        if name in images:
            if not _detached(images[name], mounts, sweep):
                continue
            _delete(images[name], sweep, keep=settings.keep_workdirs)
        if is_workspace(root):  # the directory under the volume's mount point (or the watch method's)
            _delete(root, sweep, keep=settings.keep_workdirs)
    for probe in sorted(work_root.glob(PROBE_PATTERN)):
        _delete(probe, sweep, keep=False)
    host = host_cgroups()
    if isinstance(host, CgroupHost):
        _remove_groups(host, owner_tag(settings.work_dir), sweep)
    if sweep.removed or sweep.failed:
        log.info(
            "leftovers of an earlier run: %d removed, %d kept (keep_workdirs), %d could not be removed",
            len(sweep.removed), len(sweep.kept), len(sweep.failed),
        )  # fmt: skip
    return sweep


def is_workspace(path: Path) -> bool:
    """A job's workspace (gpu_runner/workspace.py) and nothing else: the work_dir may hold more (a badly chosen
    LB_RUNNER_WORK_DIR: a home directory), and a directory is removed only when it looks like one."""
    if not is_submission_id(path.name) or path.is_symlink() or not path.is_dir():
        return False
    layout = Workspace(path)
    known = {p.name for p in (layout.work, layout.output, layout.tmp, layout.log)} | {SUBMITTED_CONFIG, "lost+found"}
    try:
        return layout.work.is_dir() and set(os.listdir(path)) <= known
    except OSError:
        return False


def _unmounted(root: Path, mounts: Mounts, sweep: Sweep) -> bool:
    if not mounts.mounted(root):
        return True
    try:
        mounts.unmount(root)
    except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
        sweep.fail(f"the mount of {root}", exc)
        return False
    sweep.done(f"the mount of {root}")
    return True


def _detached(image: Path, mounts: Mounts, sweep: Sweep) -> bool:
    try:
        for device in mounts.loop_devices(image):
            mounts.detach(device)
            sweep.done(f"the loop device {device} of {image}")
    except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
        sweep.fail(f"the loop device of {image}", exc)
        return False
    return True


def _delete(path: Path, sweep: Sweep, *, keep: bool) -> None:
    if keep:  # every finished job's files stay too: counted, not listed
        sweep.kept.append(str(path))
        return
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
    except OSError as exc:
        sweep.fail(str(path), exc)
        return
    sweep.done(str(path))


def _remove_groups(host: CgroupHost, owner: str, sweep: Sweep) -> None:
    try:
        groups = owned_groups(host, owner)
    except OSError as exc:
        sweep.fail(f"the job cgroups under {host.parent}", exc)
        return
    for group in groups:
        try:
            if not remove_group(group):
                raise OSError("still busy after its processes were killed")
        except OSError as exc:
            sweep.fail(f"the cgroup {group}", exc)
            continue
        sweep.done(f"the cgroup {group}")
