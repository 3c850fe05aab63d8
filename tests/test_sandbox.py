"""The job sandbox for real: bubblewrap, setpriv, prlimit and the runner's capture, without any mock.

Jobs run through `run_entrypoint` (the runner's own code path) in a work root under /var/tmp, so that hiding
the runner's directories is really exercised (pytest's tmp_path is under /tmp, which every job gets private).
The dataset cache, checksums and metrics checks are in test_runner_datasets.py.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from gpu_runner.diagnosis import failure_reason
from gpu_runner.sandbox import Limits, SandboxUnavailable, check_sandbox, resolve_sandbox
from gpu_runner.weights import make_readable
from tests.sandbox_fixtures import JOB_UID, processes_with, run_job, runner_settings

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed")


def test_the_job_runs_as_nobody_without_network(data_root: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as listening:  # a real service on the host's loopback
        port = listening.getsockname()[1]
        ran = run_job(
            data_root,
            f"""
            import os, socket
            print("uid", os.getuid(), "gid", os.getgid(), "groups", os.getgroups())
            for host, port in (("127.0.0.1", {port}), ("1.1.1.1", 443)):
                try:
                    socket.create_connection((host, port), timeout=3)
                    print("CONNECTED", host)
                except OSError as exc:
                    print("no connection to", host, exc)
            try:
                socket.getaddrinfo("pypi.org", 443)
                print("RESOLVED")
            except OSError as exc:
                print("no name resolution", exc)
            """,
        )
    assert ran.result.exit_code == 0, ran.log
    assert f"uid {JOB_UID} gid {JOB_UID} groups []" in ran.log
    assert "no connection to 127.0.0.1 [Errno 111] Connection refused" in ran.log
    assert "no connection to 1.1.1.1 [Errno 101] Network is unreachable" in ran.log
    assert "no name resolution" in ran.log and "CONNECTED" not in ran.log and "RESOLVED" not in ran.log


def test_the_host_is_read_only_and_the_runner_data_is_hidden(data_root: Path) -> None:
    ran = run_job(
        data_root,
        f"""
        import os, sys
        root = {str(data_root)!r}
        for path in ("/etc/leadersboard-evil", "/usr/evil", root + "/evil", root + "/runner/evil",
                     os.path.expanduser("~root") + "/evil", {str(Path.home())!r} + "/evil"):
            try:
                open(path, "w").write("x")
                print("WROTE", path)
            except OSError as exc:
                print("refused", path, exc.strerror)
        for path in (root + "/secrets.json", root + "/runner/0/other-job/work/private.txt"):
            print("exists" if os.path.exists(path) else "hidden", path)
        print("home of the runner:", sorted(os.listdir({str(Path.home())!r})))
        print("run:", os.listdir("/run"))
        """,
    )
    assert ran.result.exit_code == 0, ran.log
    assert "WROTE" not in ran.log
    assert "refused /etc/leadersboard-evil Read-only file system" in ran.log
    assert f"hidden {data_root}/secrets.json" in ran.log
    assert f"hidden {data_root}/runner/0/other-job/work/private.txt" in ran.log
    assert "run: []" in ran.log
    assert not (data_root / "evil").exists() and not (data_root / "runner" / "evil").exists()


def test_the_job_writes_only_its_work_output_and_temporary_dirs(data_root: Path) -> None:
    host_file = Path("/tmp") / f"lb-host-{os.urandom(4).hex()}"
    host_file.write_text("on the host")
    try:
        ran = run_job(
            data_root,
            f"""
            import os, sys, tempfile
            output = sys.argv[sys.argv.index("--output") + 1]
            for path in ("in-work.txt", output + "/out.txt", tempfile.gettempdir() + "/t.txt", "/tmp/t.txt",
                         "/dev/shm/s.txt"):
                open(path, "w").write("ok")
                print("wrote", path)
            print("host /tmp file visible:", os.path.exists({str(host_file)!r}))
            print("TMPDIR", os.environ["TMPDIR"])
            """,
        )
    finally:
        host_file.unlink()
    assert ran.result.exit_code == 0, ran.log
    assert ran.log.count("wrote ") == 5
    assert "host /tmp file visible: False" in ran.log
    assert (ran.workspace.output / "out.txt").read_text() == "ok"
    assert f"TMPDIR {ran.workspace.tmp}" in ran.log


def test_resource_limits_are_set_on_the_job(data_root: Path) -> None:
    ran = run_job(data_root, 'print(open("/proc/self/limits").read())', job_max_file_bytes=5 * 1024**2)
    limits = {line[:26].strip(): line[26:].split()[:2] for line in ran.log.splitlines()[1:] if line.strip()}
    assert limits["Max processes"] == ["64", "64"]
    assert limits["Max open files"] == ["8192", "8192"]
    assert limits["Max data size"] == [str(1024**3)] * 2
    assert limits["Max file size"] == [str(5 * 1024**2)] * 2
    assert limits["Max core file size"] == ["0", "0"]
    assert limits["Max address space"] == ["unlimited", "unlimited"]  # CUDA reserves huge address ranges


def test_a_fork_bomb_is_stopped_by_the_process_limit(data_root: Path) -> None:
    ran = run_job(
        data_root,
        """
        import os, time
        started = 0
        while True:
            try:
                pid = os.fork()
            except BlockingIOError:
                print("fork refused after", started, flush=True)
                raise
            if pid == 0:  # every child forks on, forever
                while True:
                    try:
                        os.fork()
                    except OSError:
                        time.sleep(0.01)
            started += 1
        """,
    )
    assert ran.result.exit_code == 1
    assert "fork refused after" in ran.log
    reason = failure_reason(ran.result.exit_code, ran.result.signal, ran.result.tail, Limits(1, 64, 8192, 1))
    assert reason.startswith("process limit: the job could not start another process or thread (the limit is 64")
    assert processes_with(str(ran.workspace.output)) == []  # in every fork's command line


def test_a_memory_hog_hits_the_memory_limit(data_root: Path) -> None:
    ran = run_job(data_root, "hog = []\nwhile True:\n    hog.append(bytearray(64 * 1024 * 1024))\n")
    assert ran.result.exit_code == 1
    limits = Limits(1024**3, 64, 8192, 1)
    reason = failure_reason(ran.result.exit_code, ran.result.signal, ran.result.tail, limits)
    assert reason.startswith("memory limit: the job ran out of memory (the limit is 1 GiB per process); exit code 1")
    assert "MemoryError" in reason


def test_a_too_large_file_hits_the_file_size_limit(data_root: Path) -> None:
    ran = run_job(data_root, 'open("big.bin", "wb").write(b"x" * 3 * 1024 * 1024)', job_max_file_bytes=1024**2)
    limits = Limits(0, 64, 8192, 1024**2)
    reason = failure_reason(ran.result.exit_code, ran.result.signal, ran.result.tail, limits)
    assert reason.startswith("file size limit: the job tried to write a file larger than 1 MiB; exit code 1")
    assert (ran.workspace.work / "big.bin").stat().st_size == 1024**2


def test_detached_processes_die_with_the_job(data_root: Path) -> None:
    token = f"lb-detached-{os.urandom(4).hex()}"
    ran = run_job(
        data_root,
        f"""
        import os, subprocess, sys
        sleeper = [sys.executable, "-c", "import time; time.sleep(600)", {token!r}]
        subprocess.Popen(sleeper, start_new_session=True)                          # setsid
        subprocess.Popen(["nohup", *sleeper], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if os.fork() == 0:                                                         # double fork
            os.setsid()
            if os.fork() == 0:
                os.execv(sys.executable, sleeper)
            os._exit(0)
        print("main.py exits", flush=True)
        """,
    )
    assert ran.result.exit_code == 0
    assert "main.py exits" in ran.log
    assert processes_with(token) == []


def test_the_time_limit_kills_the_whole_process_tree(data_root: Path) -> None:
    token = f"lb-spinner-{os.urandom(4).hex()}"
    ran = run_job(
        data_root,
        f"""
        import subprocess, sys
        subprocess.Popen([sys.executable, "-c", "while True: pass", {token!r}], start_new_session=True)
        print("spinning", flush=True)
        while True:
            pass
        """,
        timeout_s=3.0,
    )
    assert ran.result.timed_out
    assert 3.0 <= ran.result.wall_time_s < 10.0
    assert "spinning" in ran.log
    assert processes_with(token) == []


def test_a_log_flood_is_capped_with_a_marker_and_drained(data_root: Path) -> None:
    ran = run_job(
        data_root,
        """
        import sys
        block = (b"x" * 1023 + b"\\n") * 1024
        for _ in range(256):  # 256 MiB
            sys.stdout.buffer.write(block)
        sys.stdout.buffer.write(b"the very last line\\n")
        """,
    )
    assert ran.result.exit_code == 0
    marker = "[leadersboard] log truncated at 65536 bytes"
    output_starts = ran.log.index("xxxx")  # after the runner's own `starting main.py` line
    assert ran.log.index(marker) == output_starts + 65536 + 1  # right where it was cut (after a newline)
    assert ran.result.log_bytes == 65536
    assert ran.result.discarded_bytes == 256 * 1024**2 + len("the very last line\n") - 65536
    assert ran.workspace.log.stat().st_size < 70_000
    assert ran.result.tail.endswith("the very last line\n")


def test_the_weights_cache_is_mounted_read_only(data_root: Path) -> None:
    ran = run_job(
        data_root,
        """
        import os
        print("HF_HOME", os.environ["HF_HOME"], "TORCH_HOME", os.environ["TORCH_HOME"])
        print("marker:", open(os.environ["HF_HOME"] + "/marker.txt").read())
        try:
            open(os.environ["HF_HOME"] + "/new.bin", "w")
        except OSError as exc:
            print("cannot write the cache:", exc.strerror)
        print("CUDA_VISIBLE_DEVICES", os.environ["CUDA_VISIBLE_DEVICES"])
        """,
    )
    weights = data_root / "weights"
    assert f"HF_HOME {weights} TORCH_HOME {weights}" in ran.log
    assert "marker: provisioned weights" in ran.log
    assert "cannot write the cache: Read-only file system" in ran.log
    assert "CUDA_VISIBLE_DEVICES 0" in ran.log


def test_pretrained_weights_load_offline_from_a_provisioned_cache(data_root: Path) -> None:
    """A weights cache in the Hugging Face hub layout that `python -m gpu_runner.weights` fills (with random
    weights here: there is no network), read-only in the job: timm's `pretrained=True` loads from it."""
    weights = data_root / "hub-weights"
    snapshot = weights / "hub/models--timm--resnet18.a1_in1k/snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True, exist_ok=True)
    (weights / "hub/models--timm--resnet18.a1_in1k/refs").mkdir(exist_ok=True)
    (weights / "hub/models--timm--resnet18.a1_in1k/refs/main").write_text("0" * 40)
    subprocess.run(
        [sys.executable, "-c", "import sys, timm; from safetensors.torch import save_file; "
         "save_file(timm.create_model('resnet18').state_dict(), sys.argv[1])", str(snapshot / "model.safetensors")],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    make_readable(weights)  # as `python -m gpu_runner.weights` leaves it
    ran = run_job(
        data_root,
        """
        import timm
        model = timm.create_model("resnet18", pretrained=True)
        print("pretrained resnet18 loaded:", sum(p.numel() for p in model.parameters()), "parameters")
        """,
        weights_cache_dir=weights,
    )
    assert ran.result.exit_code == 0, ran.log
    assert "pretrained resnet18 loaded: 11689512 parameters" in ran.log


def test_the_guides_anomalib_trainers_import_resolves_in_the_job(data_root: Path) -> None:
    ran = run_job(
        data_root,
        """
        from anomalib.trainers import get_trainer
        import anomalib.trainers
        print("shim:", get_trainer.__module__, anomalib.trainers.__name__)
        """,
    )
    assert ran.result.exit_code == 0, ran.log
    assert "shim: anomalib.trainers anomalib.trainers" in ran.log


def test_the_runner_refuses_to_start_without_bwrap(data_root: Path) -> None:
    missing = runner_settings(data_root, bwrap_path="/nonexistent/bwrap")
    with pytest.raises(SandboxUnavailable, match="bwrap not found: jobs cannot be sandboxed"):
        check_sandbox(missing)
    assert resolve_sandbox(missing.model_copy(update={"allow_unsandboxed": True})) is None
    env = {"PATH": os.environ["PATH"], "LB_RUNNER_BWRAP_PATH": "/nonexistent/bwrap",
           "LB_RUNNER_WORK_DIR": str(data_root / "runner" / "0")}  # fmt: skip
    done = subprocess.run([sys.executable, "-m", "gpu_runner"], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "refusing to start: bwrap not found" in done.stderr
