"""A stack stopped while a job runs leaves nothing of that job behind: `Stack.stop` sweeps each runner's work_dir
with the runner's own start-up sweep (gpu_runner/leftovers.py) once the runners are gone, so no loop mount,
image or workspace stays under the data directory (here: pytest's temporary directories)."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest

from gpu_runner.disk import disk_method, loop_devices, volumes_dir
from tests.stack_fixtures import client_for, running_stack, write_submission

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

REMOVED = "removed a leftover of an earlier run: "
# Longer than the stack's stop grace (tools/stack/procs.py STOP_GRACE_S): the stop kills the runner mid-job, as
# a Ctrl-C that does not wait or a test's teardown does, instead of letting it hand the job back and clean up.
RUNNER = {"shutdown_grace_s": 120}


def mount_points_under(root: Path) -> list[str]:
    """The mount points at or below `root` in this process's mount table."""
    points = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
    return [point for point in points if Path(point).is_relative_to(root)]


def wait_for_text(path: Path, text: str, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while not (path.exists() and text in path.read_text(errors="replace")):
        assert time.monotonic() < deadline, f"{path} never said {text!r}"
        time.sleep(0.2)


def test_a_stack_stopped_mid_job_leaves_no_mount_behind(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with running_stack(tmp_path / "stack", overrides={"runner": RUNNER}) as (stack, info), client_for(info) as demo:
        sid = demo.submit([write_submission(tmp_path / "job", "import time\ntime.sleep(600)")])
        runner = stack.runner_settings[0]
        workspace, image = runner.work_dir / sid, volumes_dir(runner) / f"{sid}.img"
        wait_for_text(workspace / "job.log", "config says")  # main.py runs, in its workspace
        loop = disk_method(runner)[0] == "loop"
        if loop:
            assert mount_points_under(stack.data_dir) == [str(workspace)]
        with caplog.at_level(logging.INFO, logger="gpu_runner"):
            stack.stop()

    assert mount_points_under(stack.data_dir) == []
    assert not workspace.exists()
    assert f"{REMOVED}{workspace}" in caplog.messages
    if loop:
        assert f"{REMOVED}the mount of {workspace}" in caplog.messages
        assert not image.exists() and loop_devices(image) == []
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text
