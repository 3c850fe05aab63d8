"""Per-job memory and disk limits (issue 11, part 8), for real: the job's cgroup and its size-limited volume.

The unit-level tests run jobs through `run_entrypoint` (the runner's own code path) in the real sandbox, with
the workspace opened by `open_workspace` (the runner's own disk limit). RLIMIT_DATA is set high (4 GiB per
process) so that what stops the jobs below is the per-job limit, as on a runner with its default settings:
on the code before this part, every one of these jobs ran to its end. The last test goes through the whole
local stack: an admin's per-user override applies to the next job, without restarting anything.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from gpu_runner.cgroups import CgroupHost, host_cgroups
from gpu_runner.diagnosis import limit_reason
from gpu_runner.disk import GIB, disk_method, open_workspace
from gpu_runner.execute import ExecResult, JobLaunch, run_entrypoint
from gpu_runner.sandbox import check_sandbox
from leadersboard.client import Client
from leadersboard.models.base import utcnow
from leadersboard.models.records import JobRecord, JobStatus
from tests.sandbox_fixtures import runner_settings
from tests.stack_fixtures import client_for, write_submission
from tools.stack.up import Stack

pytestmark = [
    pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed"),
    pytest.mark.skipif(not isinstance(host_cgroups(), CgroupHost), reason="no writable cgroup memory controller"),
    pytest.mark.timeout(300),
]

MIB = 1024**2
HOLD_MEMORY = """
import multiprocessing as mp, sys
def hold(ready, size):
    block = b"\\x01" * size  # written, so really resident
    ready.release()
    mp.Event().wait()
if __name__ == "__main__":
    ready = mp.Semaphore(0)
    holders = [mp.Process(target=hold, args=(ready, {size})) for _ in range(2)]
    for p in holders:
        p.start()
    held = 0
    while held < 2 and all(p.is_alive() for p in holders):
        held += ready.acquire(timeout=0.2)
    print("both hold their memory" if held == 2 else f"a holder died: {{[p.exitcode for p in holders]}}", flush=True)
    for p in holders:
        p.kill()
        p.join()
    sys.exit(0 if held == 2 else 1)
"""
WRITE_DISK = """
import os, sys
path = os.path.join({where}, "big.bin")
written = 0
try:
    with open(path, "wb") as out:
        while written < {size}:
            out.write(b"\\x01" * (4 * 1024 * 1024))
            written += 4 * 1024 * 1024
except OSError as exc:
    print("write refused after", written, "bytes:", exc, flush=True)
    raise
print("wrote", written, "bytes", flush=True)
"""


@dataclass
class Limited:
    result: ExecResult
    log: str
    used_bytes: int
    """The workspace's work, output and tmp dirs after the job (what reached the disk)."""


def run_limited(data_root: Path, body: str, *, memory_gib: float, disk_gib: float, **overrides: Any) -> Limited:
    settings = runner_settings(data_root, job_memory_bytes=4 * GIB, **overrides)
    sandbox = check_sandbox(settings)
    assert sandbox is not None
    root = settings.work_dir.resolve() / f"job-{os.urandom(4).hex()}"
    workspace, disk = open_workspace(settings, root, int(disk_gib * GIB))
    try:
        (workspace.work / "main.py").write_text(textwrap.dedent(body))
        (workspace.work / "config.yaml").write_text("seed: 0\n")
        record = JobRecord(
            submission_id="s1", user="u", entrypoint="main.py", config="config.yaml", created_at=utcnow()
        )
        launch = JobLaunch.from_settings(settings, timeout_s=120, sandbox=sandbox, memory_gib=memory_gib, disk=disk)
        assert launch.cgroups is not None
        result = asyncio.run(run_entrypoint(workspace, record, launch, asyncio.Event()))
        used = sum(_usage(d) for d in (workspace.work, workspace.output, workspace.tmp))
        return Limited(result, workspace.log.read_text(errors="replace"), used)
    finally:
        disk.release(keep=False)
        workspace.remove()


def reason_of(result: ExecResult) -> str:
    assert result.over_limit is not None
    return limit_reason(result.over_limit, result.exit_code, result.signal, result.tail)


def _usage(top: Path) -> int:
    done = subprocess.run(["du", "-s", "-B1", str(top)], capture_output=True, text=True, check=True)
    return int(done.stdout.split()[0])


def test_two_processes_together_over_the_job_memory_limit_fail_the_job(data_root: Path) -> None:
    ran = run_limited(data_root, HOLD_MEMORY.format(size=GIB), memory_gib=1.5, disk_gib=1)
    assert "a holder died: " in ran.log and "-9" in ran.log, ran.log  # the kernel killed one of them
    assert ran.result.over_limit == "memory limit of 1.5 GiB reached", ran.log
    reason = reason_of(ran.result)
    assert reason.startswith("memory limit of 1.5 GiB reached: the job's processes together"), reason
    assert "a holder died" in reason  # the end of the log follows


def test_files_in_the_private_tmp_count_against_the_memory_limit(data_root: Path) -> None:
    body = 'open("/tmp/big.bin", "wb").write(b"\\x01" * 700 * 1024 * 1024)\nprint("wrote /tmp/big.bin")\n'
    ran = run_limited(data_root, body, memory_gib=0.5, disk_gib=1)
    assert "wrote /tmp/big.bin" not in ran.log
    assert ran.result.over_limit == "memory limit of 0.5 GiB reached", ran.log


@pytest.mark.parametrize("where", ["work", "output", "tmpdir"])
def test_a_job_writing_past_its_disk_limit_fails_and_the_disk_holds_no_more(data_root: Path, where: str) -> None:
    if disk_method(runner_settings(data_root))[0] != "loop":
        pytest.skip("the loop volume needs a root runner with loop devices")
    directory = {"work": "os.getcwd()", "output": "sys.argv[-1]", "tmpdir": 'os.environ["TMPDIR"]'}[where]
    ran = run_limited(data_root, WRITE_DISK.format(where=directory, size=GIB), memory_gib=1, disk_gib=0.2)
    assert "write refused after" in ran.log and "No space left on device" in ran.log, ran.log
    assert ran.result.over_limit == "disk limit of 0.2 GiB reached", ran.log
    assert reason_of(ran.result).startswith("disk limit of 0.2 GiB reached: the working, output and TMPDIR")
    # The loop volume refuses the first byte past the limit: no overshoot (docs/sandbox.md).
    assert 0.19 * GIB <= ran.used_bytes <= 0.2 * GIB + MIB, ran.used_bytes


def test_the_watch_method_kills_a_job_writing_past_its_disk_limit(data_root: Path) -> None:
    body = WRITE_DISK.format(where="sys.argv[-1]", size=20 * GIB)  # far past the limit unless stopped
    ran = run_limited(data_root, body, memory_gib=1, disk_gib=0.2, job_disk_method="watch", job_disk_poll_s=0.2)
    assert "wrote" not in ran.log.replace("write refused", ""), ran.log
    assert ran.result.over_limit == "disk limit of 0.2 GiB reached", ran.log
    assert ran.used_bytes < 20 * GIB
    print(f"watch overshoot: {(ran.used_bytes - 0.2 * GIB) / MIB:.0f} MiB")  # for docs/sandbox.md


def test_a_job_within_its_limits_completes(data_root: Path) -> None:
    body = HOLD_MEMORY.format(size=256 * MIB) + "\n" + WRITE_DISK.format(where="sys.argv[-1]", size=64 * MIB)
    body = body.replace("    sys.exit(0 if held == 2 else 1)\n", "    assert held == 2\n")
    ran = run_limited(data_root, body, memory_gib=1.5, disk_gib=0.2)
    assert ran.result.exit_code == 0, ran.log
    assert "both hold their memory" in ran.log and f"wrote {64 * MIB} bytes" in ran.log
    assert ran.result.over_limit is None


# Through the whole local stack: `leadersboard admin quota set --user ... --disk-gib --memory-gib`.

CLI = str(Path(sys.executable).parent / "leadersboard")


def admin(info: dict[str, Any], home: Path, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEADERSBOARD_")}
    env |= {"XDG_CONFIG_HOME": str(home / "config"), "XDG_CACHE_HOME": str(home / "cache"), "COLUMNS": "200"}
    env |= {"LEADERSBOARD_URL": info["urls"]["ingest"], "LEADERSBOARD_TOKEN": info["admin_token"]}
    done = subprocess.run([CLI, "admin", *args], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"stdout: {done.stdout}\nstderr: {done.stderr}"
    return done.stderr + done.stdout


def submit_and_wait(client: Client, root: Path) -> JobRecord:
    sid = client.submit([root])
    return client.wait(sid, timeout_s=180)


def test_a_users_limits_set_by_an_admin_apply_to_the_next_job_without_a_restart(
    stack: tuple[Stack, dict[str, Any]], tmp_path: Path
) -> None:
    _, info = stack
    told = admin(info, tmp_path, "quota", "set", "--user", "demo", "--disk-gib", "0.2", "--memory-gib", "0.75")
    assert "disk 0.2 GiB, memory 0.75 GiB" in told, told
    shown = admin(info, tmp_path, "quota", "show", "--user", "demo")
    assert "0.2 GiB" in shown and "0.75 GiB" in shown
    writes = "import os, sys\n" + WRITE_DISK.format(where="str(out)", size=GIB)
    holds = HOLD_MEMORY.format(size=512 * MIB).replace('if __name__ == "__main__":', "if True:")
    fine = 'import json\n(out / "metrics.json").write_text(json.dumps({"metrics": {"image_AUROC": 0.5}}))\n'
    try:
        with client_for(info) as demo:
            on_disk = submit_and_wait(demo, write_submission(tmp_path / "disk", writes))
            assert on_disk.status is JobStatus.FAILED
            assert (on_disk.error or "").startswith("disk limit of 0.2 GiB reached"), on_disk.error
            in_memory = submit_and_wait(demo, write_submission(tmp_path / "memory", holds))
            assert in_memory.status is JobStatus.FAILED
            assert (in_memory.error or "").startswith("memory limit of 0.75 GiB reached"), in_memory.error
            normal = submit_and_wait(demo, write_submission(tmp_path / "normal", fine))
            assert normal.status is JobStatus.COMPLETED, normal.error
    finally:
        admin(info, tmp_path, "quota", "reset", "--user", "demo")
