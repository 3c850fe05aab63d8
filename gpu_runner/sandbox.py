"""The job sandbox: bubblewrap namespaces, a read-only host, an unprivileged uid and resource limits.

A job's command line becomes (docs/sandbox.md explains each part and what did not work):

    prlimit --nproc=N --nofile=N --fsize=N --data=N --core=0 --
      bwrap --ro-bind / / --dev /dev --proc /proc
            --unshare-net --unshare-pid --unshare-ipc --unshare-uts --unshare-cgroup-try
            --die-with-parent --new-session
            --size S --tmpfs /tmp --size S --tmpfs /dev/shm
            --tmpfs HIDDEN ...            the runner's home, /run, the runner's and the stack's data dirs
            --ro-bind EXPOSED EXPOSED ... the job's Python and the compat dir when they sit in a hidden dir
            --bind WORK WORK --bind OUTPUT OUTPUT --bind TMPDIR TMPDIR
            --ro-bind DATASET WORK/NAME   each top-level entry of a cached dataset
            --chdir WORK --
      setpriv --reuid U --regid G --clear-groups --no-new-privs --inh-caps=-all --bounding-set=-all --
      python main.py --config config.yaml --output OUTPUT

The uid switch happens inside the sandbox with setpriv (when the runner is root): RLIMIT_NPROC is not
enforced for root, nor for a uid that bwrap's user namespace maps back to root (`--unshare-user --uid`).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from gpu_runner.settings import RunnerSettings

__all__ = [
    "COMPAT_DIR",
    "Bind",
    "Limits",
    "Sandbox",
    "SandboxUnavailable",
    "check_sandbox",
    "dataset_cache_root",
    "resolve_sandbox",
]

COMPAT_DIR = Path(__file__).resolve().parent / "compat"
"""Put on every job's PYTHONPATH: `sitecustomize` there provides the guide's `anomalib.trainers`."""

STACK_MARKERS = ("secrets.json", "stack.json")
"""A directory holding one of these is a `leadersboard up` data directory: always hidden from jobs."""

PRIVATE_TMPFS = (Path("/tmp"), Path("/dev/shm"))
PROBE_TIMEOUT_S = 60.0


class SandboxUnavailable(Exception):
    """bwrap (or a helper) is missing or does not work here; the message says what to do."""


@dataclass(frozen=True)
class Limits:
    """Per-process resource limits (setrlimit through `prlimit`), inherited by everything the job starts."""

    memory_bytes: int
    max_processes: int
    max_open_files: int
    max_file_bytes: int

    @classmethod
    def from_settings(cls, settings: RunnerSettings) -> Limits:
        return cls(
            memory_bytes=settings.job_memory_bytes,
            max_processes=settings.job_max_processes,
            max_open_files=settings.job_max_open_files,
            max_file_bytes=settings.job_max_file_bytes,
        )

    def prlimit_argv(self, prlimit: str) -> list[str]:
        argv = [
            prlimit,
            f"--nproc={self.max_processes}",
            f"--nofile={self.max_open_files}",
            f"--fsize={self.max_file_bytes}",
            "--core=0",
        ]
        if self.memory_bytes > 0:
            argv.append(f"--data={self.memory_bytes}")
        return [*argv, "--"]


@dataclass(frozen=True)
class Bind:
    """A host path made visible in the sandbox at `target` (read-only unless `writable`)."""

    source: Path
    target: Path
    writable: bool = False


@dataclass(frozen=True)
class Sandbox:
    bwrap: str
    prlimit: str
    setpriv: str | None
    """Set when the runner is root: the job then switches to `uid`/`gid` inside the sandbox."""
    uid: int
    gid: int
    tmpfs_bytes: int
    hidden: tuple[Path, ...] = ()
    exposed: tuple[Path, ...] = ()
    devices: tuple[Path, ...] = field(default_factory=tuple)

    @classmethod
    def from_settings(cls, settings: RunnerSettings, *, bwrap: str, prlimit: str, setpriv: str | None) -> Sandbox:
        hidden = _hidden_dirs(settings)
        exposed = [*_python_dirs(settings.python_executable), COMPAT_DIR]
        if settings.weights_cache_dir is not None:
            exposed.append(settings.weights_cache_dir.resolve())
        return cls(
            bwrap=bwrap,
            prlimit=prlimit,
            setpriv=setpriv,
            uid=settings.job_uid if setpriv else os.getuid(),
            gid=settings.job_gid if setpriv else os.getgid(),
            tmpfs_bytes=settings.job_tmpfs_bytes,
            hidden=tuple(hidden),
            exposed=tuple(p for p in exposed if _inside_any(p, (*hidden, *PRIVATE_TMPFS)) and p.exists()),
            devices=tuple(sorted(Path("/dev").glob("nvidia*"))),
        )

    def wrap(self, argv: Sequence[str], *, cwd: Path, binds: Iterable[Bind], limits: Limits) -> list[str]:
        """The full command line running `argv` in the sandbox, in `cwd`, with `binds` mounted."""
        command = [*limits.prlimit_argv(self.prlimit), self.bwrap]
        command += ["--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]
        command += ["--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"]
        if self.setpriv is None:
            command.append("--unshare-user")  # unprivileged bwrap needs a user namespace for its mounts
        command += ["--die-with-parent", "--new-session"]
        for device in self.devices:
            command += ["--dev-bind", str(device), str(device)]
        for private in PRIVATE_TMPFS:
            command += ["--perms", "1777", "--size", str(self.tmpfs_bytes), "--tmpfs", str(private)]
        for hidden in self.hidden:
            command += ["--tmpfs", str(hidden)]
        binds = list(binds)
        targets = [*self.exposed, *(bind.target for bind in binds)]
        for directory in _mount_point_parents(targets, (*self.hidden, *PRIVATE_TMPFS)):
            command += ["--perms", "0755", "--dir", str(directory)]  # bwrap would make them 0700
        for exposed in self.exposed:
            command += ["--ro-bind", str(exposed), str(exposed)]
        for bind in binds:
            command += ["--bind" if bind.writable else "--ro-bind", str(bind.source), str(bind.target)]
        command += ["--chdir", str(cwd), "--"]
        if self.setpriv is not None:
            command += [
                self.setpriv, f"--reuid={self.uid}", f"--regid={self.gid}", "--clear-groups",
                "--no-new-privs", "--inh-caps=-all", "--bounding-set=-all", "--",
            ]  # fmt: skip
        return [*command, *argv]

    def hand_over(self, *paths: Path) -> None:
        """Give the job's uid the directories it may write (everything below them included)."""
        if self.setpriv is None:
            return
        for top in paths:
            os.chown(top, self.uid, self.gid)
            for directory, dirnames, filenames in os.walk(top):
                for name in (*dirnames, *filenames):
                    os.chown(os.path.join(directory, name), self.uid, self.gid, follow_symlinks=False)


def dataset_cache_root(settings: RunnerSettings) -> Path:
    return (settings.dataset_cache_dir or settings.work_dir.resolve().parent / "dataset-cache").resolve()


def resolve_sandbox(settings: RunnerSettings) -> Sandbox | None:
    """The sandbox to run jobs in; None when bwrap is missing and `allow_unsandboxed` is set."""
    bwrap = shutil.which(settings.bwrap_path)
    prlimit = shutil.which("prlimit")
    setpriv = shutil.which("setpriv")
    as_root = os.geteuid() == 0
    missing = [name for name, found in (("bwrap", bwrap), ("prlimit", prlimit)) if not found]
    if as_root and not setpriv:
        missing.append("setpriv")
    if not missing and bwrap and prlimit:
        return Sandbox.from_settings(settings, bwrap=bwrap, prlimit=prlimit, setpriv=setpriv if as_root else None)
    if settings.allow_unsandboxed:
        return None
    raise SandboxUnavailable(
        f"{', '.join(missing)} not found: jobs cannot be sandboxed. Install bubblewrap and util-linux "
        "(scripts/install-system-deps.sh does it as root), or, on a development machine only, "
        "set LB_RUNNER_ALLOW_UNSANDBOXED=true to run jobs without any isolation."
    )


def check_sandbox(settings: RunnerSettings) -> Sandbox | None:
    """Resolve the sandbox and run a trivial job in it; raises SandboxUnavailable with the reason."""
    if settings.weights_cache_dir is not None and not settings.weights_cache_dir.is_dir():
        raise SandboxUnavailable(f"the weights cache {settings.weights_cache_dir} is not a directory")
    settings.work_dir.mkdir(parents=True, exist_ok=True)
    dataset_cache_root(settings).mkdir(parents=True, exist_ok=True)
    sandbox = resolve_sandbox(settings)
    if sandbox is None:
        return None
    with tempfile.TemporaryDirectory(prefix=".probe-", dir=settings.work_dir) as scratch:
        work = Path(scratch)
        sandbox.hand_over(work)
        code = "import os, socket, sys; print('sandbox ok', os.getuid(), sys.version_info[:2])"
        argv = sandbox.wrap(
            [settings.python_executable, "-c", code],
            cwd=work,
            binds=[Bind(work, work, writable=True)],
            limits=Limits.from_settings(settings),
        )
        try:
            done = subprocess.run(
                argv, env={"PATH": "/usr/bin:/bin"}, capture_output=True, text=True, timeout=PROBE_TIMEOUT_S
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise SandboxUnavailable(f"the sandbox probe could not run: {exc}") from exc
    if done.returncode != 0 or "sandbox ok" not in done.stdout:
        raise SandboxUnavailable(
            f"the sandbox probe failed (exit code {done.returncode}): {(done.stderr or done.stdout).strip()[-2000:]}"
        )
    return sandbox


def _python_dirs(python_executable: str) -> list[Path]:
    """The job interpreter's installation: its virtualenv (if any) and the base Python it points to."""
    executable = Path(python_executable)
    if not executable.is_absolute():
        executable = Path(shutil.which(python_executable) or sys.executable)
    prefixes = [executable.parent.parent.absolute(), executable.resolve().parent.parent]
    return list(dict.fromkeys(p for p in prefixes if p != Path("/")))


def _hidden_dirs(settings: RunnerSettings) -> list[Path]:
    """Host directories jobs must not see: the runner's home, /run, every job's dir, the stack's data dir."""
    work_root = settings.work_dir.resolve()
    candidates = [Path.home(), Path("/run"), work_root.parent, dataset_cache_root(settings)]
    candidates += [d for d in work_root.parents if any((d / marker).exists() for marker in STACK_MARKERS)]
    candidates += [Path(p).resolve() for p in settings.sandbox_hide]
    unique = sorted({p.resolve() for p in candidates if p.is_dir() and p != Path("/")}, key=lambda p: len(p.parts))
    hidden: list[Path] = []
    for path in unique:
        if not _inside_any(path, (*hidden, *PRIVATE_TMPFS)):  # already covered
            hidden.append(path)
    return hidden


def _mount_point_parents(targets: Iterable[Path], tmpfs_roots: Sequence[Path]) -> list[Path]:
    """The directories between a tmpfs and the mount points below it, shallowest first."""
    parents: set[Path] = set()
    for target in targets:
        for root in tmpfs_roots:
            if target.is_relative_to(root) and target != root:
                parents.update(p for p in target.parents if p.is_relative_to(root) and p != root)
    return sorted(parents, key=lambda p: len(p.parts))


def _inside_any(path: Path, roots: Iterable[Path]) -> bool:
    return any(path == root or path.is_relative_to(root) for root in roots)
