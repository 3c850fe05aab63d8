"""The run verdict (gpu_runner.verdict.judge) over crafted exec results and output directories: every reason a
run fails for, word for word as docs/failure-reasons.md quotes it, and what a completed run yields.

The runner's job flow and `leadersboard check` both judge through it; the real runs are in test_sandbox.py,
test_job_limits.py, test_hostile.py and test_cli.py.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from gpu_runner.execute import ExecResult
from gpu_runner.sandbox import Limits
from gpu_runner.verdict import Verdict, judge
from leadersboard.limits import MLFLOW_NAME_RULE
from leadersboard.models.records import JobStatus

LIMITS = Limits(memory_bytes=1024**3, max_processes=64, max_open_files=8192, max_file_bytes=1024**2)
MAX_METRICS_BYTES = 4096
TRACEBACK = 'Traceback (most recent call last):\n  File "main.py", line 3, in <module>\n'


def verdict_of(result: ExecResult, output: Path, *, timeout_s: float = 3.0, limits: Limits = LIMITS) -> Verdict:
    return judge(result, output, timeout_s=timeout_s, limits=limits, max_metrics_bytes=MAX_METRICS_BYTES)


def exited(
    exit_code: int | None,
    tail: str = "",
    *,
    timed_out: bool = False,
    cancelled: bool = False,
    over_limit: str | None = None,
) -> ExecResult:
    return ExecResult(
        exit_code, wall_time_s=1.0, tail=tail, timed_out=timed_out, cancelled=cancelled, over_limit=over_limit
    )


def write_metrics(output: Path, content: object) -> Path:
    path = output / "metrics.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


def test_a_run_that_wrote_valid_metrics_completes(tmp_path: Path) -> None:
    write_metrics(tmp_path, {"params": {"dataset": "pcb1", "lr": 0.1}, "metrics": {"image_AUROC": 0.625}})
    verdict = verdict_of(exited(0), tmp_path)
    assert (verdict.status, verdict.error) == (JobStatus.COMPLETED, None)
    assert verdict.metrics is not None
    assert verdict.metrics.metrics == {"image_AUROC": 0.625}
    assert verdict.metrics.params == {"dataset": "pcb1", "lr": 0.1}


def test_a_cancelled_run_is_cancelled_whatever_else_happened(tmp_path: Path) -> None:
    write_metrics(tmp_path, {"metrics": {"a": 1}})
    result = exited(-15, cancelled=True, timed_out=True, over_limit="memory limit of 2 GiB reached")
    assert verdict_of(result, tmp_path) == Verdict(JobStatus.CANCELLED, "cancelled while running")


@pytest.mark.parametrize(
    ("over_limit", "exit_code", "tail", "reason"),
    [
        (
            "memory limit of 2 GiB reached",
            137,
            "epoch 3",
            "memory limit of 2 GiB reached: the job's processes together (with files in /tmp and /dev/shm) used all "
            "of it and the kernel killed one; use less memory (smaller batches, fewer data loader workers) or ask an "
            "admin for a higher limit; exit code 137 (killed by SIGKILL); last lines of the log:\nepoch 3",
        ),
        (
            "disk limit of 5 GiB reached",
            1,
            "OSError: [Errno 28] No space left on device",
            "disk limit of 5 GiB reached: the working, output and TMPDIR directories together may hold no more; "
            "write less (fewer checkpoints, smaller images) or ask an admin for a higher limit; exit code 1; "
            "last lines of the log:\nOSError: [Errno 28] No space left on device",
        ),
    ],
)
def test_a_run_over_its_job_limit_fails_with_the_limit_before_its_exit_code(
    tmp_path: Path, over_limit: str, exit_code: int, tail: str, reason: str
) -> None:
    write_metrics(tmp_path, {"metrics": {"a": 1}})  # a job that went on after the kill fails all the same
    result = exited(exit_code, tail, over_limit=over_limit, timed_out=True)
    assert verdict_of(result, tmp_path) == Verdict.failed(reason)


def test_a_run_past_its_time_limit_fails_with_the_timeout(tmp_path: Path) -> None:
    verdict = verdict_of(exited(-15, "epoch 1", timed_out=True), tmp_path, timeout_s=2.6)
    assert verdict == Verdict.failed("timeout: still running after the limit of 3 s; the job was killed")


@pytest.mark.parametrize(
    ("exit_code", "tail", "reason"),
    [
        (4, TRACEBACK + "ValueError: bad", "exit code 4; last lines of the log:\n" + TRACEBACK + "ValueError: bad"),
        (
            1,
            "huggingface_hub.errors.LocalEntryNotFoundError: cannot find the requested files",
            "pretrained weights are not available offline (jobs have no network): set pre_trained: false in the "
            "model's init_args, or ask an admin to provision the weights into the weights cache; exit code 1; "
            "last lines of the log:\nhuggingface_hub.errors.LocalEntryNotFoundError: cannot find the requested files",
        ),
        (
            1,
            "MemoryError",
            "memory limit: the job ran out of memory (the limit is 1 GiB per process); exit code 1; "
            "last lines of the log:\nMemoryError",
        ),
        (
            1,
            "RuntimeError: can't start new thread",
            "process limit: the job could not start another process or thread (the limit is 64 processes and "
            "threads); exit code 1; last lines of the log:\nRuntimeError: can't start new thread",
        ),
        (
            1,
            "OSError: [Errno 27] File too large",
            "file size limit: the job tried to write a file larger than 1 MiB; exit code 1; "
            "last lines of the log:\nOSError: [Errno 27] File too large",
        ),
        (
            153,
            "",
            "file size limit: the job tried to write a file larger than 1 MiB; exit code 153 (killed by SIGXFSZ); "
            "last lines of the log:\n",
        ),
        (
            1,
            "OSError: [Errno 24] Too many open files",
            "open files limit: the job had more than 8192 files open at once; exit code 1; "
            "last lines of the log:\nOSError: [Errno 24] Too many open files",
        ),
        (
            137,
            "epoch 2",
            "killed by SIGKILL: most often the machine ran out of memory; exit code 137 (killed by SIGKILL); "
            "last lines of the log:\nepoch 2",
        ),
        (139, "", "exit code 139 (killed by SIGSEGV); last lines of the log:\n"),
        (-11, "", "exit code -11 (killed by SIGSEGV); last lines of the log:\n"),
    ],
)
def test_a_run_that_exited_with_an_error_fails_with_its_likely_cause_and_log_tail(
    tmp_path: Path, exit_code: int, tail: str, reason: str
) -> None:
    write_metrics(tmp_path, {"metrics": {"a": 1}})  # a crash fails the job even after metrics.json was written
    assert verdict_of(exited(exit_code, tail), tmp_path) == Verdict.failed(reason)


def test_a_failure_reason_quotes_only_the_last_fifteen_lines_of_the_log(tmp_path: Path) -> None:
    tail = "\n".join(f"line {n}" for n in range(40))
    verdict = verdict_of(exited(2, tail), tmp_path)
    expected = "\n".join(f"line {n}" for n in range(25, 40))
    assert verdict == Verdict.failed(f"exit code 2; last lines of the log:\n{expected}")


def test_memory_without_a_per_process_limit_is_called_unlimited(tmp_path: Path) -> None:
    unlimited = Limits(memory_bytes=0, max_processes=64, max_open_files=8192, max_file_bytes=1024**2)
    verdict = verdict_of(exited(1, "MemoryError"), tmp_path, limits=unlimited)
    assert verdict.error is not None
    assert verdict.error.startswith("memory limit: the job ran out of memory (the limit is unlimited per process);")


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (
            None,
            "the job exited successfully but wrote no metrics.json in the --output directory; "
            'write {"params": {...}, "metrics": {"name": number}} to <--output>/metrics.json',
        ),
        ("x" * (MAX_METRICS_BYTES + 1), f"metrics.json is {MAX_METRICS_BYTES + 1} bytes; the limit is 4096 bytes"),
        (
            {"metrics": {"auroc": "high"}},
            "metrics.json is malformed: metrics: Value error, metric 'auroc' is 'high', not a number",
        ),
        ({"params": {}}, "metrics.json is malformed: metrics: Field required"),
        (
            {"metrics": {f"m{n}": n for n in range(201)}},
            "metrics.json has 201 metrics; at most 200 are allowed",
        ),
        (
            {"metrics": {"image AUROC (%)": 0.5}},
            f"metrics.json: metric 'image AUROC (%)' is not a valid name: {MLFLOW_NAME_RULE}",
        ),
        (
            {"params": {"a<b": 1}, "metrics": {"a": 0.5}},
            f"metrics.json: param 'a<b' is not a valid name: {MLFLOW_NAME_RULE}",
        ),
    ],
)
def test_a_run_that_exited_cleanly_fails_on_a_missing_or_bad_metrics_json(
    tmp_path: Path, content: object, reason: str
) -> None:
    if content is not None:
        write_metrics(tmp_path, content)
    assert verdict_of(exited(0), tmp_path) == Verdict.failed(reason)


def test_metrics_json_that_is_not_json_is_malformed(tmp_path: Path) -> None:
    write_metrics(tmp_path, "{not json")
    verdict = verdict_of(exited(0), tmp_path)
    assert verdict.status is JobStatus.FAILED and verdict.metrics is None
    assert verdict.error is not None and verdict.error.startswith(
        "metrics.json is malformed: metrics.json: Invalid JSON"
    )


def test_a_symlinked_metrics_json_fails_and_is_removed_unread(tmp_path: Path) -> None:
    secret = tmp_path / "secret.json"
    secret.write_text(json.dumps({"metrics": {"leaked": 1.0}}))
    output = tmp_path / "output"
    output.mkdir()
    os.symlink(secret, output / "metrics.json")
    verdict = verdict_of(exited(0), output)
    assert verdict == Verdict.failed("metrics.json is malformed: it is a symbolic link; write a regular file")
    assert not (output / "metrics.json").is_symlink() and not (output / "metrics.json").exists()
    assert secret.is_file(), "the link is removed, not what it points to"
