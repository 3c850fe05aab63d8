"""A runner killed mid-job leaves the job's disk behind; its next start removes it (gpu_runner/leftovers.py).

The leftovers are made as a job makes them: `open_workspace` (a mounted loop volume and its image where the
host allows the `loop` method: root with loop devices, as here; the `watch` method's plain directory otherwise),
a job cgroup (`JobCgroup`) with a detached process in it, the sandbox probe's directory. Then a real runner
(`python -m gpu_runner`) starts on the same work_dir, while a second runner's job on the same host, with its
own work_dir, stays untouched. A failing unmount and loop detach are unit-tested with a fake `Mounts`: a real
`umount -l` does not fail on a busy volume. tests/test_scheduling_stack.py kills runners mid-job (SIGKILL) on a
running stack and checks the restart removes what the killed job left.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from gpu_runner.cgroups import CgroupHost, JobCgroup, host_cgroups, owner_tag, remove_group
from gpu_runner.disk import disk_method, loop_devices, open_workspace, unmount, volumes_dir
from gpu_runner.leftovers import owned_work_dir, remove_leftovers
from gpu_runner.settings import RunnerSettings
from gpu_runner.workspace import Workspace
from leadersboard.keys import new_submission_id
from leadersboard.nats_permissions import RUNNER
from leadersboard.settings import S3Settings, settings_env
from tools.stack.procs import ManagedProcess
from tools.stack.services import NatsServer

pytestmark = pytest.mark.timeout(300)

ROOT = Path(__file__).resolve().parents[1]
LIMIT_BYTES = 64 * 1024**2
START_TIMEOUT_S = 90.0
REMOVED = "removed a leftover of an earlier run: "


@dataclass
class Job:
    """What one job of a runner left: its workspace (maybe a mounted volume), image, cgroup and process."""

    workspace: Workspace
    image: Path | None
    group: Path | None
    pid: int | None


@dataclass
class FakeMounts:
    """Mounted paths and loop devices by image; `broken` makes unmount/detach fail as a busy tool would."""

    mounted_paths: set[Path] = field(default_factory=set)
    devices: dict[Path, list[str]] = field(default_factory=dict)
    broken: bool = False

    def mounted(self, path: Path) -> bool:
        return path in self.mounted_paths

    def unmount(self, path: Path) -> None:
        if self.broken:
            raise RuntimeError(f"umount {path} failed: target is busy")
        self.mounted_paths.discard(path)

    def loop_devices(self, image: Path) -> list[str]:
        return list(self.devices.get(image, []))

    def detach(self, device: str) -> None:
        if self.broken:
            raise RuntimeError(f"losetup -d {device} failed: device busy")
        self.devices = {image: [d for d in found if d != device] for image, found in self.devices.items()}


def runner_settings(work_dir: Path, **more: Any) -> RunnerSettings:
    return RunnerSettings(work_dir=work_dir, bwrap_path="/nonexistent/bwrap", allow_unsandboxed=True, **more)


def leave_job(settings: RunnerSettings) -> Job:
    """Start a job's disk, cgroup and a detached process the way the runner does, and never release them."""
    root = settings.work_dir.resolve() / new_submission_id()
    workspace, disk = open_workspace(settings, root, LIMIT_BYTES)
    (workspace.work / "main.py").write_text("print('hello')\n")
    workspace.log.write_text("[leadersboard] starting main.py\n")
    image = volumes_dir(settings) / f"{root.name}.img" if disk.method == "loop" else None
    host = host_cgroups()
    if not isinstance(host, CgroupHost):
        return Job(workspace, image, None, None)
    group = JobCgroup(host, LIMIT_BYTES, owner=owner_tag(settings.work_dir)).create()
    # An unsandboxed job's child that outlives the job: orphaned, as when the runner is killed.
    detach = "sleep 600 </dev/null >/dev/null 2>&1 & echo $!"
    started = subprocess.run(group.join_argv(["/bin/sh", "-c", detach]), capture_output=True, text=True, check=True)
    return Job(workspace, image, group.path, int(started.stdout))


def running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def clean_up(job: Job) -> None:
    if job.group is not None:
        remove_group(job.group)  # kills its process first
    with contextlib.suppress(RuntimeError):
        unmount(job.workspace.root)


@pytest.fixture
def jobs() -> Iterator[list[Job]]:
    left: list[Job] = []
    yield left
    for job in left:
        clean_up(job)


def test_a_restarted_runner_removes_its_crashed_jobs_and_leaves_another_runners_job(
    nats_server: NatsServer, s3_settings: S3Settings, tmp_path: Path, jobs: list[Job]
) -> None:
    connection = {**nats_server.settings(RUNNER).model_dump(), **s3_settings.model_dump()}
    ours = runner_settings(tmp_path / "runner" / "0", **connection)
    theirs = runner_settings(tmp_path / "runner" / "1", **connection)
    jobs.append(mine := leave_job(ours))
    jobs.append(other := leave_job(theirs))
    probe = ours.work_dir / ".probe-k1ll3d"
    (probe / "scratch").mkdir(parents=True)
    unrelated = ours.work_dir / "notesdirectory"  # a submission id's shape, not a workspace's
    (unrelated / "notes.txt").parent.mkdir()
    (unrelated / "notes.txt").write_text("not the runner's\n")

    log = start_and_stop(ours, tmp_path / "runner-0.log")

    assert f"{REMOVED}{mine.workspace.root}\n" in log, log
    assert f"{REMOVED}{probe}\n" in log
    assert not mine.workspace.root.exists() and not probe.exists()
    assert unrelated.joinpath("notes.txt").exists()
    assert other.workspace.log.exists()  # the other runner's job is still there, its volume still mounted
    if disk_method(ours)[0] == "loop":
        assert mine.image is not None and other.image is not None
        assert f"{REMOVED}the mount of {mine.workspace.root}\n" in log
        assert not mine.image.exists() and loop_devices(mine.image) == []
        assert other.image.exists() and os.path.ismount(other.workspace.root)
    if mine.group is not None and other.group is not None and mine.pid is not None and other.pid is not None:
        assert f"{REMOVED}the cgroup {mine.group}\n" in log
        assert not mine.group.exists() and not running(mine.pid)
        assert other.group.exists() and running(other.pid)
    assert "could not remove" not in log and "Traceback" not in log


def start_and_stop(settings: RunnerSettings, log_path: Path) -> str:
    env = {**settings_env(settings), "PYTHONUNBUFFERED": "1"}
    process = ManagedProcess("gpu_runner", [sys.executable, "-m", "gpu_runner"], log_path, env=env, cwd=ROOT)
    deadline = time.monotonic() + START_TIMEOUT_S
    try:
        process.start()
        while "waiting for jobs" not in log_path.read_text():  # the sweep comes before
            assert process.alive and time.monotonic() < deadline, process.log_tail()
            time.sleep(0.1)
    finally:
        process.stop()
    return log_path.read_text()


def test_a_leftover_that_cannot_be_unmounted_is_a_warning_and_the_rest_still_goes(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = runner_settings(tmp_path / "runner", job_disk_method="watch")
    stuck, gone = (Workspace(settings.work_dir / new_submission_id()).create() for _ in range(2))
    image = volumes_dir(settings) / f"{stuck.root.name}.img"
    image.parent.mkdir()
    image.write_bytes(b"\0" * 4096)
    mounts = FakeMounts(mounted_paths={stuck.root}, devices={image: ["/dev/loop7"]}, broken=True)

    with caplog.at_level(logging.INFO, logger="gpu_runner"):
        sweep = remove_leftovers(settings, mounts)

    assert sweep.failed == [f"the mount of {stuck.root}: umount {stuck.root} failed: target is busy"]
    assert f"could not remove a leftover of an earlier run, {sweep.failed[0]}; starting all the same" in caplog.text
    assert stuck.work.exists() and image.exists()  # nothing deleted under a volume still mounted
    assert sweep.removed == [str(gone.root)] and not gone.root.exists()


def test_a_loop_device_that_cannot_be_detached_keeps_its_image(tmp_path: Path) -> None:
    settings = runner_settings(tmp_path / "runner", job_disk_method="watch")
    image = volumes_dir(settings) / f"{new_submission_id()}.img"
    image.parent.mkdir(parents=True)
    image.write_bytes(b"\0" * 4096)
    mounts = FakeMounts(devices={image: ["/dev/loop7"]}, broken=True)

    sweep = remove_leftovers(settings, mounts)

    assert sweep.failed == [f"the loop device of {image}: losetup -d /dev/loop7 failed: device busy"]
    assert image.exists()
    mounts.broken = False
    assert remove_leftovers(settings, mounts).removed == [f"the loop device /dev/loop7 of {image}", str(image)]
    assert not image.exists()


def test_keep_workdirs_unmounts_but_keeps_the_files(tmp_path: Path) -> None:
    settings = runner_settings(tmp_path / "runner", job_disk_method="watch", keep_workdirs=True)
    workspace = Workspace(settings.work_dir / new_submission_id()).create()
    mounts = FakeMounts(mounted_paths={workspace.root})

    sweep = remove_leftovers(settings, mounts)

    assert sweep.removed == [f"the mount of {workspace.root}"] and sweep.kept == [str(workspace.root)]
    assert workspace.work.exists() and not mounts.mounted(workspace.root)


def test_a_second_runner_on_the_same_work_dir_sweeps_nothing(tmp_path: Path) -> None:
    settings = runner_settings(tmp_path / "runner", job_disk_method="watch")
    with owned_work_dir(settings, FakeMounts()) as first:
        assert first is not None
        live = Workspace(settings.work_dir / new_submission_id()).create()  # the first runner's job
        with owned_work_dir(settings, FakeMounts()) as second:
            assert second is None
        assert live.work.exists()
    with owned_work_dir(settings, FakeMounts()) as after:  # the first runner gone: its job is a leftover
        assert after is not None and after.removed == [str(live.root)]
