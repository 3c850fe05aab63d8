"""A memory limit on a job's whole process tree: one fresh cgroup per job (v2 where the host has it, v1 otherwise).

RLIMIT_DATA (gpu_runner/sandbox.py) bounds each process; two processes of one job could each take that much.
The job's cgroup bounds them together. The job joins its group before anything of it runs: the command line
starts with a tiny shell that writes its own pid into the group's `cgroup.procs` and then execs prlimit, bwrap
and main.py, so every process the job ever makes is born inside the group (no window between spawn and join).

- v2 (a delegated subtree): `memory.max`, `memory.swap.max` 0, `memory.oom.group` 1 (a kill takes the whole
  job), and `memory.events`' `oom_kill` tells a memory kill.
- v1 (this development machine): `memory.limit_in_bytes` (and `memory.memsw.limit_in_bytes` when swap
  accounting exists), and `oom_kill` in `memory.oom_control` tells a memory kill (the kernel kills the largest
  process of the group; the runner then counts the whole job as over its limit).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import os
import signal
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "CgroupHost",
    "JobCgroup",
    "Unavailable",
    "host_cgroups",
    "owned_groups",
    "owner_tag",
    "probe_cgroups",
    "remove_group",
]

log = logging.getLogger("gpu_runner")
JOIN_SCRIPT = 'echo $$ > "$0" && exec "$@"'
"""`sh -c JOIN_SCRIPT PROCS argv...`: join the group, then become the job (same pid)."""
GROUP_PREFIX = "leadersboard-job-"
REMOVE_TRIES = 50


@dataclass(frozen=True)
class CgroupHost:
    """Where this runner creates its jobs' groups."""

    version: int
    parent: Path

    def describe(self) -> str:
        return f"cgroup v{self.version} under {self.parent}"


@dataclass(frozen=True)
class Unavailable:
    reason: str


def probe_cgroups(proc_self: Path = Path("/proc/self")) -> CgroupHost | Unavailable:
    """The host's memory controller this process may create child groups in, or why there is none."""
    try:
        mounts = (proc_self / "mountinfo").read_text().splitlines()
        memberships = (proc_self / "cgroup").read_text().splitlines()
    except OSError as exc:
        return Unavailable(f"cannot read /proc: {exc}")
    v1_mount, v2_mount = _mounts(mounts)
    own_v1 = own_v2 = None
    for line in memberships:
        hierarchy, controllers, path = line.split(":", 2)
        if hierarchy == "0" and not controllers:
            own_v2 = path
        elif "memory" in controllers.split(","):
            own_v1 = path
    reasons: list[str] = []
    if v2_mount is not None and own_v2 is not None:
        mount_point, root = v2_mount
        found = _try_v2(_inside(mount_point, root, own_v2))
        if isinstance(found, CgroupHost):
            return found
        reasons.append(found.reason)
    if v1_mount is not None and own_v1 is not None:
        mount_point, root = v1_mount
        found = _try_v1(_inside(mount_point, root, own_v1))
        if isinstance(found, CgroupHost):
            return found
        reasons.append(found.reason)
    return Unavailable("; ".join(reasons) or "no cgroup memory controller is mounted")


def _mounts(lines: list[str]) -> tuple[tuple[Path, str] | None, tuple[Path, str] | None]:
    """(v1 memory mount, v2 mount): each as (mount point, the hierarchy path it shows)."""
    v1 = v2 = None
    for line in lines:
        fields, _, tail = line.partition(" - ")
        parts, after = fields.split(), tail.split()
        if len(parts) < 5 or len(after) < 3:
            continue
        root, mount_point, fstype, options = parts[3], Path(parts[4]), after[0], after[2]
        if fstype == "cgroup2" and (mount_point / "cgroup.controllers").exists():
            controllers = (mount_point / "cgroup.controllers").read_text().split()
            if "memory" in controllers and v2 is None:
                v2 = (mount_point, root)
        elif fstype == "cgroup" and "memory" in options.split(",") and v1 is None:
            v1 = (mount_point, root)
    return v1, v2


def _inside(mount_point: Path, root: str, own: str) -> Path:
    relative = own[len(root) :] if own.startswith(root) and root != "/" else own
    return mount_point / relative.lstrip("/")


def _try_v1(own: Path) -> CgroupHost | Unavailable:
    parent = own / "leadersboard"
    try:
        parent.mkdir(exist_ok=True)
        probe = parent / f"probe-{uuid.uuid4().hex[:8]}"
        probe.mkdir()
        try:
            (probe / "memory.limit_in_bytes").write_text(str(64 * 1024**2))
        finally:
            probe.rmdir()
    except OSError as exc:
        return Unavailable(f"cgroup v1 memory controller at {own} is not writable ({exc.strerror})")
    return CgroupHost(1, parent)


def _try_v2(own: Path) -> CgroupHost | Unavailable:
    """A delegated subtree: move this process into a leaf, then let children have the memory controller."""
    try:
        if "memory" not in (own / "cgroup.subtree_control").read_text().split():
            leaf = own / "leadersboard-runner"
            leaf.mkdir(exist_ok=True)
            (leaf / "cgroup.procs").write_text(str(os.getpid()))  # "no internal processes" rule
            (own / "cgroup.subtree_control").write_text("+memory")
        parent = own / "leadersboard"
        parent.mkdir(exist_ok=True)
        if "memory" not in (parent / "cgroup.subtree_control").read_text().split():
            (parent / "cgroup.subtree_control").write_text("+memory")
    except OSError as exc:
        return Unavailable(f"cgroup v2 at {own} is not delegated to this runner ({exc.strerror})")
    return CgroupHost(2, parent)


def owner_tag(work_dir: Path) -> str:
    """The runner's mark in its jobs' group names: several runners of a host share the parent group, and a
    restarted runner removes only the groups of its own crashed jobs (gpu_runner/leftovers.py)."""
    return hashlib.sha256(str(work_dir.resolve()).encode()).hexdigest()[:12]


def owned_groups(host: CgroupHost, owner: str) -> list[Path]:
    return sorted(host.parent.glob(f"{GROUP_PREFIX}{owner}-*"))


class JobCgroup:
    """One job's group: created with its limit before the job starts, removed after it."""

    def __init__(self, host: CgroupHost, limit_bytes: int, *, owner: str) -> None:
        self.host = host
        self.limit_bytes = limit_bytes
        self.path = host.parent / f"{GROUP_PREFIX}{owner}-{uuid.uuid4().hex[:12]}"

    def create(self) -> JobCgroup:
        self.path.mkdir()
        if self.host.version == 2:
            (self.path / "memory.max").write_text(str(self.limit_bytes))
            for name, value in (("memory.swap.max", "0"), ("memory.oom.group", "1")):
                with contextlib.suppress(OSError):  # absent without swap accounting / on old kernels
                    (self.path / name).write_text(value)
        else:
            (self.path / "memory.limit_in_bytes").write_text(str(self.limit_bytes))
            with contextlib.suppress(OSError):  # memsw exists only with swap accounting
                (self.path / "memory.memsw.limit_in_bytes").write_text(str(self.limit_bytes))
        return self

    def join_argv(self, argv: list[str]) -> list[str]:
        return ["/bin/sh", "-c", JOIN_SCRIPT, str(self.path / "cgroup.procs"), *argv]

    def oom_kills(self) -> int:
        """How many processes of the job the kernel killed for going over the group's limit."""
        name = "memory.events" if self.host.version == 2 else "memory.oom_control"
        try:
            lines = (self.path / name).read_text().splitlines()
        except OSError:
            return 0
        counts = dict(line.split(maxsplit=1) for line in lines if " " in line)
        if "oom_kill" in counts:
            return int(counts["oom_kill"])
        return int(counts.get("oom", "0")) if self.host.version == 2 else 0

    def peak_bytes(self) -> int | None:
        name = "memory.peak" if self.host.version == 2 else "memory.max_usage_in_bytes"
        try:
            return int((self.path / name).read_text())
        except (OSError, ValueError):
            return None

    def remove(self) -> None:
        if not remove_group(self.path):
            log.warning("could not remove the job cgroup %s", self.path)


def remove_group(path: Path) -> bool:
    """Kill whatever is left in a job's group (an unsandboxed job's detached children), then delete it."""
    for _ in range(REMOVE_TRIES):
        try:
            pids = [int(p) for p in (path / "cgroup.procs").read_text().split()]
        except FileNotFoundError:
            return True
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        try:
            path.rmdir()
            return True
        except OSError:  # busy until the killed processes are reaped
            time.sleep(0.1)
    return False


@functools.cache
def host_cgroups() -> CgroupHost | Unavailable:
    """The probe, once per process (a v2 probe moves the runner into a leaf group)."""
    return probe_cgroups()
