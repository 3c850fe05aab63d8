"""Hostile submissions through the whole real stack (ingest, SeaweedFS, bridge, NATS, dispatcher, sandboxed
runner, MLflow): each one ends `failed` with a precise reason (or `completed` where it did no harm), nothing
escapes, and the one runner goes on serving the next job.

One stack for the module; the runner's limits are lowered so that every attack is quick to run into them.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import stat
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from leadersboard.client import ApiError, Client
from leadersboard.models.records import JobRecord, JobStatus
from leadersboard.s3 import make_client
from tests.sandbox_fixtures import processes_with
from tests.stack_fixtures import client_for, running_stack, write_submission
from tools.stack.up import Stack

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed"),
]

TIMEOUT_S = 10
MAX_LOG = 1024 * 1024
RUNNER = {
    "job_timeout_s": TIMEOUT_S,
    "job_max_processes": 64,
    "job_memory_bytes": 1024**3,
    "max_log_bytes": MAX_LOG,
    "max_zip_total_bytes": 4 * 1024**2,
}
WRITE_METRICS = '(out / "metrics.json").write_text(json.dumps({"params": {}, "metrics": {"score": 1.0}}))\n'
ALLOWED_ENV = {
    "PATH", "HOME", "TMPDIR", "LANG", "PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE", "PYTHONPATH", "MPLBACKEND",
    "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HUB_DISABLE_TELEMETRY", "CUDA_VISIBLE_DEVICES", "NO_COLOR",
    "PWD", "LC_CTYPE",
}  # fmt: skip


# Not the shared stack (tests/stack_fixtures.py): runners with this module's tight job limits (RUNNER).
@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, dict[str, Any]]]:
    with running_stack(tmp_path_factory.mktemp("hostile"), overrides={"runner": RUNNER}) as started:
        yield started


def run(demo: Client, submission: Path, timeout_s: float = 120) -> tuple[JobRecord, str]:
    sid = demo.submit([submission])
    record = demo.wait(sid, timeout_s=timeout_s)
    log, _, _ = demo.logs(sid)
    return record, log


def prologue(body: str) -> str:
    """A main.py body (run after the guide's arguments are parsed), with the usual imports."""
    return "import json, os, socket, subprocess, sys, time\n" + body


def harmless(body: str) -> str:
    """`body`, then a valid metrics.json: the job completes if the body did not fail."""
    return prologue(body) + WRITE_METRICS


def test_the_environment_holds_no_platform_secret(
    stack: tuple[Stack, dict[str, Any]], demo: Client, tmp_path: Path
) -> None:
    the_stack, info = stack
    body = harmless(f"""
print("ENV", json.dumps(dict(os.environ)))
print("PIDS", sorted(int(p) for p in os.listdir("/proc") if p.isdigit()))
for path in ({str(the_stack.data_dir / "secrets.json")!r}, {str(the_stack.data_dir / "stack.json")!r}):
    print("secret file", "VISIBLE" if os.path.exists(path) else "hidden")
""")
    record, log = run(demo, write_submission(tmp_path / "env", body))
    assert record.status is JobStatus.COMPLETED, record.error
    env = json.loads(log.split("ENV ", 1)[1].splitlines()[0])
    assert set(env) <= ALLOWED_ENV
    for secret in (the_stack.secrets.s3_secret_key, the_stack.secrets.s3_access_key, info["admin_token"],
                   info["demo_token"], the_stack.secrets.manifest_secret,
                   *the_stack.secrets.s3_keys["runner"]):  # fmt: skip
        assert secret not in log
    assert max(json.loads(log.split("PIDS ", 1)[1].splitlines()[0])) < 10  # its own pid namespace
    assert log.count("secret file hidden") == 2


def test_nats_the_store_mlflow_and_the_internet_are_unreachable(
    stack: tuple[Stack, dict[str, Any]], demo: Client, tmp_path: Path
) -> None:
    ports = stack[0].ports
    targets = {"nats": ports.nats, "s3": ports.s3, "mlflow": ports.mlflow, "ingest": ports.ingest}
    body = harmless(f"""
for name, port in {targets!r}.items():
    try:
        socket.create_connection(("127.0.0.1", port), timeout=3)
        print("REACHED", name)
    except OSError as exc:
        print("unreachable", name, exc)
try:
    socket.create_connection(("93.184.215.14", 80), timeout=3)
    print("REACHED the internet")
except OSError as exc:
    print("unreachable internet", exc)
""")
    record, log = run(demo, write_submission(tmp_path / "net", body))
    assert record.status is JobStatus.COMPLETED, record.error
    assert "REACHED" not in log
    for name in targets:
        assert f"unreachable {name} [Errno 111] Connection refused" in log
    assert "unreachable internet [Errno 101] Network is unreachable" in log


def test_writes_outside_the_working_directory_fail(
    stack: tuple[Stack, dict[str, Any]], demo: Client, tmp_path: Path
) -> None:
    data_dir = stack[0].data_dir
    targets = [data_dir / "evil", data_dir / "runner" / "evil", data_dir / "runner/0/evil", Path.home() / "evil"]
    body = prologue(f"""
for path in {[str(t) for t in targets]!r}:
    try:
        open(path, "w").write("pwned")
        print("WROTE", path)
    except OSError as exc:
        print("refused", path, exc.strerror)
open("/etc/leadersboard-evil", "w").write("pwned")
""")
    record, log = run(demo, write_submission(tmp_path / "write", body))
    assert record.status is JobStatus.FAILED
    assert record.error is not None and record.error.startswith("exit code 1; last lines of the log:")
    assert "OSError: [Errno 30] Read-only file system: '/etc/leadersboard-evil'" in record.error
    printed = log.split("Traceback", 1)[0].splitlines()  # the reason, with the same lines, is noted after it
    assert [line.split()[1] for line in printed if line.startswith("refused ")] == [str(t) for t in targets]
    assert not any(line.startswith("WROTE") for line in printed)
    assert not any(t.exists() for t in targets) and not Path("/etc/leadersboard-evil").exists()


def _symlink_entry(name: str, target: str) -> tuple[zipfile.ZipInfo, bytes]:
    info = zipfile.ZipInfo(name)
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info, target.encode()


@pytest.mark.parametrize(
    ("entries", "reason"),
    [
        pytest.param(
            [("data/ok.txt", b"ok"), ("../../evil.txt", b"pwned")],
            "zip entry '../../evil.txt' would be written outside the working directory",
            id="dot-dot",
        ),
        pytest.param(
            [("/tmp/leadersboard-evil.txt", b"pwned")],
            "zip entry '/tmp/leadersboard-evil.txt' would be written outside the working directory",
            id="absolute",
        ),
        pytest.param(
            [_symlink_entry("data/link", "/etc"), ("data/link/evil", b"pwned")],
            "zip entry 'data/link' is a symbolic link; links are not allowed",
            id="symlink",
        ),
        pytest.param(
            [("zeros.bin", bytes(64 * 1024**2))],
            "evil.zip would expand to 67108864 bytes",
            id="ratio-bomb",
        ),
        pytest.param(
            [("random.bin", os.urandom(5 * 1024**2))],
            "evil.zip would expand to 5242880 bytes (1x its size); the limits are 4194304 bytes",
            id="total-size",
        ),
    ],
)
def test_hostile_zips_are_refused_before_the_job_runs(
    demo: Client, tmp_path: Path, entries: list[tuple[str | zipfile.ZipInfo, bytes]], reason: str
) -> None:
    submission = write_submission(tmp_path / "zip", 'print("MAIN RAN")\n' + WRITE_METRICS)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries:
            archive.writestr(name, data)
    (submission / "evil.zip").write_bytes(buffer.getvalue())
    record, log = run(demo, submission)
    assert record.status is JobStatus.FAILED
    assert record.error is not None and record.error.startswith(reason), record.error
    assert "MAIN RAN" not in log
    assert f"[leadersboard] submission rejected: {reason}" in log
    assert not Path("/tmp/leadersboard-evil.txt").exists()


def test_a_fork_bomb_is_bounded_and_the_job_ends(demo: Client, tmp_path: Path) -> None:
    body = prologue("""
forks = 0
while True:
    try:
        pid = os.fork()
    except BlockingIOError:
        print("fork refused after", forks, flush=True)
        raise
    if pid == 0:
        while True:
            try:
                os.fork()
            except OSError:
                time.sleep(0.01)
    forks += 1
""")
    sid = demo.submit([write_submission(tmp_path / "forks", body)])
    record = demo.wait(sid, timeout_s=120)
    log, _, _ = demo.logs(sid)
    assert record.status is JobStatus.FAILED
    assert record.error is not None
    assert record.error.startswith(
        "process limit: the job could not start another process or thread (the limit is 64 processes and threads)"
        "; exit code 1"
    )
    assert "fork refused after" in log
    assert processes_with(f"/{sid}/output") == []  # every fork's command line holds its --output


def test_a_memory_hog_is_stopped_by_the_memory_limit(demo: Client, tmp_path: Path) -> None:
    body = prologue("hog = []\nwhile True:\n    hog.append(bytearray(100 * 1024 * 1024))\n")
    record, _ = run(demo, write_submission(tmp_path / "hog", body))
    assert record.status is JobStatus.FAILED
    assert record.error is not None
    assert record.error.startswith("memory limit: the job ran out of memory (the limit is 1 GiB per process)")
    assert "MemoryError" in record.error


def test_an_endless_loop_is_killed_at_the_time_limit(demo: Client, tmp_path: Path) -> None:
    body = prologue('print("looping", flush=True)\nwhile True:\n    pass\n')
    record, log = run(demo, write_submission(tmp_path / "loop", body))
    assert record.status is JobStatus.FAILED
    assert record.error == f"timeout: still running after the limit of {TIMEOUT_S} s; the job was killed"
    assert "looping" in log


def test_a_users_own_time_limit_applies_without_a_restart(
    stack: tuple[Stack, dict[str, Any]], demo: Client, tmp_path: Path
) -> None:
    with client_for(stack[1], "admin_token") as admin:
        admin.set_user_quota("demo", job_timeout_s=3)
        try:
            record, _ = run(demo, write_submission(tmp_path / "loop", prologue("while True:\n    pass\n")))
        finally:
            admin.set_user_quota("demo", reset=True)
    assert record.error == "timeout: still running after the limit of 3 s; the job was killed"
    assert record.timeout_s == 3  # the runner killed it at the user's limit, not at its own (no timed assertion)


def test_a_gigabyte_log_flood_is_capped_with_a_marker(
    stack: tuple[Stack, dict[str, Any]], demo: Client, tmp_path: Path
) -> None:
    body = harmless("""
block = (b"x" * 1023 + b"\\n") * 1024
for _ in range(1024):
    sys.stdout.buffer.write(block)
sys.stdout.flush()
print("flood over")
""")
    sid = demo.submit([write_submission(tmp_path / "flood", body)])
    record = demo.wait(sid, timeout_s=120)
    assert record.status is JobStatus.COMPLETED, record.error
    the_stack = stack[0]
    stored = make_client(the_stack.s3).get_object(Bucket=the_stack.s3.bucket, Key=f"results/demo/{sid}/job.log")
    log = stored["Body"].read().decode()
    marker = f"[leadersboard] log truncated at {MAX_LOG} bytes; further output is discarded"
    assert marker in log
    assert MAX_LOG < len(log) < MAX_LOG + 4096
    assert "bytes of output were discarded" in log
    assert "flood over" not in log  # past the cap


def test_processes_detached_from_main_py_die_with_the_job(demo: Client, tmp_path: Path) -> None:
    token = f"lb-detached-{os.urandom(4).hex()}"
    body = harmless(f"""
sleeper = [sys.executable, "-c", "import time; time.sleep(600)", {token!r}]
subprocess.Popen(sleeper, start_new_session=True)
subprocess.Popen(["nohup", *sleeper], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.execv(sys.executable, sleeper)
    os._exit(0)
time.sleep(0.5)
print("detached", flush=True)
""")
    record, log = run(demo, write_submission(tmp_path / "detach", body))
    assert record.status is JobStatus.COMPLETED, record.error
    assert "detached" in log
    assert processes_with(token) == []


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        pytest.param(
            '(out / "metrics.json").write_text(json.dumps({"metrics": {"a": 1.0}, "pad": "x" * 2_000_000}))',
            "metrics.json is 2000034 bytes; the limit is 1048576 bytes",
            id="huge",
        ),
        pytest.param(
            '(out / "metrics.json").write_text("{not json")',
            "metrics.json is malformed: metrics.json: Invalid JSON",
            id="not-json",
        ),
        pytest.param(
            '(out / "metrics.json").write_text(json.dumps({"metrics": {"auroc": "high"}}))',
            "metrics.json is malformed: metrics: Value error, metric 'auroc' is 'high', not a number",
            id="not-numeric",
        ),
        pytest.param(
            '(out / "metrics.json").write_text(\'{"metrics": {"auroc": NaN}}\')',
            "metrics.json is malformed: metrics: Value error, metric 'auroc' is nan, not a finite number",
            id="nan",
        ),
    ],
)
def test_bad_metrics_files_fail_with_the_reason(demo: Client, tmp_path: Path, body: str, reason: str) -> None:
    record, _ = run(demo, write_submission(tmp_path / "metrics", prologue(body)))
    assert record.status is JobStatus.FAILED
    assert record.error is not None and record.error.startswith(reason), record.error


def test_the_log_of_a_running_job_can_be_followed(demo: Client, tmp_path: Path) -> None:
    body = harmless("""
for i in range(24):
    print("tick", i, flush=True)
    time.sleep(0.25)
""")
    sid = demo.submit([write_submission(tmp_path / "live", body)])
    deadline = time.monotonic() + 60
    while _status(demo, sid) is not JobStatus.RUNNING and time.monotonic() < deadline:
        time.sleep(0.1)
    started = time.monotonic()
    text, offset, status = "", 0, "running"
    while "tick" not in text and time.monotonic() < deadline:
        more, offset, status = demo.logs(sid, offset)
        text += more
        time.sleep(0.2)
    seen_after_s = time.monotonic() - started
    assert "tick" in text and status == "running", (status, text)
    assert seen_after_s < 4.0
    more, _, _ = demo.logs(sid, offset)  # the next part only
    assert "tick 0\n" not in more
    assert demo.wait(sid, timeout_s=60).status is JobStatus.COMPLETED


def test_a_resubmitted_dataset_is_not_extracted_again(demo: Client, tmp_path: Path) -> None:
    body = harmless('print(open("pcb1/Data/Images/Normal/a.txt").read())\n')
    logs = []
    for attempt in ("first", "second"):
        submission = write_submission(tmp_path / attempt, body)
        with zipfile.ZipFile(submission / "pcb1.zip", "w") as archive:
            archive.writestr(zipfile.ZipInfo("pcb1/Data/Images/Normal/a.txt", (2024, 1, 1, 0, 0, 0)), "a dataset")
        record, log = run(demo, submission)
        assert record.status is JobStatus.COMPLETED, record.error
        assert "a dataset" in log
        logs.append(log)
    assert "[leadersboard] extracted into the dataset cache: pcb1.zip" in logs[0]
    assert "[leadersboard] dataset cache hit: pcb1.zip" in logs[1]
    assert "extracted" not in logs[1]


def test_the_runner_survived_and_serves_the_next_job(
    stack: tuple[Stack, dict[str, Any]], demo: Client, tmp_path: Path
) -> None:
    runner = stack[0].process("runner")
    assert runner.alive
    record, _ = run(demo, write_submission(tmp_path / "after", WRITE_METRICS))
    assert record.status is JobStatus.COMPLETED, record.error
    assert record.metrics == {"score": 1.0}
    assert runner.alive


def _status(demo: Client, sid: str) -> JobStatus | None:
    """None until the dispatcher has recorded the job (a moment after the manifest is uploaded)."""
    try:
        return demo.get(sid).status
    except ApiError as exc:
        if exc.status == 404:
            return None
        raise
