"""Whether a job that ran completed, and if not, why: the one decision the runner and `leadersboard check` share.

Every reason is listed in docs/failure-reasons.md with what to do about it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gpu_runner.diagnosis import failure_reason, limit_reason
from gpu_runner.execute import ExecResult
from gpu_runner.results import BadMetrics, read_metrics
from gpu_runner.sandbox import Limits
from leadersboard.models.metrics import MetricsFile
from leadersboard.models.records import JobStatus

__all__ = ["Verdict", "judge"]


@dataclass(frozen=True)
class Verdict:
    """`completed` with the job's metrics.json, or `failed`/`cancelled` with the reason shown to the user."""

    status: JobStatus
    error: str | None = None
    metrics: MetricsFile | None = None

    @classmethod
    def failed(cls, reason: str) -> Verdict:
        return cls(JobStatus.FAILED, reason)


def judge(result: ExecResult, output: Path, *, timeout_s: float, limits: Limits, max_metrics_bytes: int) -> Verdict:
    """The verdict on a run of the entrypoint from how it ended and the metrics.json it left in `output`.

    A metrics.json that is a symbolic link fails the job and is removed: nothing after this may follow it
    (the runner may read what the job cannot).
    """
    if result.cancelled:
        return Verdict(JobStatus.CANCELLED, "cancelled while running")
    if result.over_limit is not None:  # before the exit code: the limit is why it crashed
        return Verdict.failed(limit_reason(result.over_limit, result.exit_code, result.signal, result.tail))
    if result.timed_out:
        return Verdict.failed(f"timeout: still running after the limit of {timeout_s:.0f} s; the job was killed")
    if result.exit_code != 0:
        return Verdict.failed(failure_reason(result.exit_code, result.signal, result.tail, limits))
    metrics_path = output / "metrics.json"
    if metrics_path.is_symlink():
        metrics_path.unlink()
        return Verdict.failed("metrics.json is malformed: it is a symbolic link; write a regular file")
    try:
        metrics = read_metrics(output, max_bytes=max_metrics_bytes)
    except BadMetrics as exc:
        return Verdict.failed(str(exc))
    return Verdict(JobStatus.COMPLETED, metrics=metrics)
