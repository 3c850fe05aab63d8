"""Whether a job that ran completed, and if not, why: the one decision the runner and `leadersboard check` share.

Every reason is listed in docs/failure-reasons.md with what to do about it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gpu_runner.diagnosis import failure_reason, limit_reason
from gpu_runner.execute import ExecResult
from gpu_runner.results import BadMetrics, predictions_problem, read_metrics
from gpu_runner.sandbox import Limits
from leadersboard.models.metrics import MetricsFile
from leadersboard.models.records import JobStatus

__all__ = ["Verdict", "judge"]


@dataclass(frozen=True)
class Verdict:
    """`completed` with the job's metrics.json (None: a benchmark job that wrote none), or `failed`/`cancelled`
    with the reason shown to the user."""

    status: JobStatus
    error: str | None = None
    metrics: MetricsFile | None = None

    @classmethod
    def failed(cls, reason: str) -> Verdict:
        return cls(JobStatus.FAILED, reason)


def judge(
    result: ExecResult,
    output: Path,
    *,
    timeout_s: float,
    limits: Limits,
    max_metrics_bytes: int,
    max_predictions_bytes: int | None = None,
) -> Verdict:
    """The verdict on a run of the entrypoint from how it ended and the metrics.json it left in `output`.

    A metrics.json that is a symbolic link fails the job and is removed: nothing after this may follow it
    (the runner may read what the job cannot).

    `max_predictions_bytes` set: a benchmark job, which must leave `predictions/scores.csv` (with everything in
    `predictions/` at most that size) for the scorer; its metrics.json is optional (self-reported).
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
    if max_predictions_bytes is not None:
        problem = predictions_problem(output, max_bytes=max_predictions_bytes)
        if problem is not None:
            return Verdict.failed(problem)
        if not metrics_path.exists() and not metrics_path.is_symlink():
            return Verdict(JobStatus.COMPLETED)
    if metrics_path.is_symlink():
        metrics_path.unlink()
        return Verdict.failed("metrics.json is malformed: it is a symbolic link; write a regular file")
    try:
        metrics = read_metrics(output, max_bytes=max_metrics_bytes)
    except BadMetrics as exc:
        return Verdict.failed(str(exc))
    return Verdict(JobStatus.COMPLETED, metrics=metrics)
