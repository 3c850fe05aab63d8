"""One job from pickup to its terminal record: workspace, process, results, MLflow."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

from gpu_runner.execute import ExecResult, run_entrypoint
from gpu_runner.results import BadMetrics, dataset_name, output_files, read_metrics, upload_results
from gpu_runner.settings import RunnerSettings
from gpu_runner.tracking import log_run
from gpu_runner.workspace import UnsafeArchive, Workspace, prepare
from leadersboard import keys
from leadersboard.models import JobRecord, JobStatus, MetricsFile, utcnow
from leadersboard.s3 import S3Client

__all__ = ["JobOutcome", "execute_job"]

log = logging.getLogger("gpu_runner")
LOG_TAIL_LINES = 15


@dataclass
class JobOutcome:
    status: JobStatus
    error: str | None = None
    exit_code: int | None = None
    metrics: MetricsFile | None = None
    dataset: str | None = None
    mlflow_run_id: str | None = None
    mlflow_run_url: str | None = None

    def apply(self, record: JobRecord) -> JobRecord | None:
        """The record's terminal state; a job cancelled meanwhile stays cancelled."""
        if record.status.terminal:
            return None
        record.status = self.status
        record.error = self.error
        record.exit_code = self.exit_code
        record.finished_at = utcnow()
        record.dataset = self.dataset or record.dataset
        if self.metrics is not None:
            record.metrics = dict(self.metrics.metrics)
            record.params = self.metrics.params_as_strings()
        record.mlflow_run_id = self.mlflow_run_id
        record.mlflow_run_url = self.mlflow_run_url
        return record


async def execute_job(
    settings: RunnerSettings, s3: S3Client, record: JobRecord, cancelled: asyncio.Event
) -> JobOutcome:
    workspace = Workspace(settings.work_dir / record.submission_id).create()
    try:
        outcome, metrics, wall_time_s = await _run_with_live_log(settings, s3, record, workspace, cancelled)
        return await _finish(settings, s3, record, workspace, outcome, metrics, wall_time_s)
    finally:
        if not settings.keep_workdirs:
            workspace.remove()


async def _run_with_live_log(
    settings: RunnerSettings, s3: S3Client, record: JobRecord, workspace: Workspace, cancelled: asyncio.Event
) -> tuple[JobOutcome, MetricsFile | None, float]:
    stop_flushing = asyncio.Event()
    flusher = asyncio.create_task(_flush_log_until(stop_flushing, settings, s3, record, workspace))
    try:
        try:
            extracted = await asyncio.to_thread(prepare, workspace, s3, settings.bucket, record)
        except UnsafeArchive as exc:
            _note(workspace, f"[leadersboard] dataset rejected: {exc}")
            return JobOutcome(JobStatus.FAILED, str(exc)), None, 0.0
        for name in extracted:
            _note(workspace, f"[leadersboard] extracted {name} into the working directory")
        result = await run_entrypoint(
            workspace,
            record,
            python_executable=settings.python_executable,
            gpu=settings.gpu,
            timeout_s=settings.job_timeout_s,
            cancelled=cancelled,
        )
        outcome, metrics = _judge(settings, workspace, result)
        return outcome, metrics, result.wall_time_s
    finally:
        # Let an upload in flight finish so it cannot overwrite the final log afterwards.
        stop_flushing.set()
        await flusher


def _judge(settings: RunnerSettings, workspace: Workspace, result: ExecResult) -> tuple[JobOutcome, MetricsFile | None]:
    if result.cancelled:
        return JobOutcome(JobStatus.CANCELLED, "cancelled while running", result.exit_code), None
    if result.timed_out:
        reason = f"timeout: still running after the limit of {settings.job_timeout_s:.0f} s; the job was killed"
        return JobOutcome(JobStatus.FAILED, reason, result.exit_code), None
    if result.exit_code != 0:
        reason = f"exit code {result.exit_code}; last lines of the log:\n{_log_tail(workspace)}"
        return JobOutcome(JobStatus.FAILED, reason, result.exit_code), None
    try:
        metrics = read_metrics(workspace.output, max_bytes=settings.max_metrics_bytes)
    except BadMetrics as exc:
        return JobOutcome(JobStatus.FAILED, str(exc), result.exit_code), None
    return JobOutcome(JobStatus.COMPLETED, None, 0, metrics), metrics


async def _finish(
    settings: RunnerSettings,
    s3: S3Client,
    record: JobRecord,
    workspace: Workspace,
    outcome: JobOutcome,
    metrics: MetricsFile | None,
    wall_time_s: float,
) -> JobOutcome:
    outcome.dataset = dataset_name(record, metrics, workspace.work / record.config)
    outputs, skipped = output_files(workspace.output, max_bytes=settings.max_output_bytes)
    if skipped:
        _note(
            workspace,
            f"[leadersboard] {len(skipped)} output files not kept: over {settings.max_output_bytes} bytes",
        )
    _note(
        workspace,
        f"[leadersboard] job {outcome.status.value}" + (f": {outcome.error}" if outcome.error else ""),
    )
    await asyncio.to_thread(
        upload_results,
        s3,
        settings.bucket,
        record,
        log=workspace.log,
        output=workspace.output,
        outputs=outputs,
    )
    if outcome.status is not JobStatus.CANCELLED:
        tracked = await asyncio.to_thread(
            log_run,
            settings.mlflow_tracking_uri,
            record,
            dataset=outcome.dataset,
            metrics=metrics,
            wall_time_s=wall_time_s,
            artifacts=[p for p in (workspace.output / "metrics.json", workspace.log) if p.is_file()],
            outputs=[p for p in outputs if p.name != "metrics.json" or p.parent != workspace.output],
            output_root=workspace.output,
            succeeded=outcome.status is JobStatus.COMPLETED,
        )
        outcome.mlflow_run_id = tracked.run_id
        base = settings.mlflow_public_url.rstrip("/")
        outcome.mlflow_run_url = f"{base}/#/experiments/{tracked.experiment_id}/runs/{tracked.run_id}"
    return outcome


def _note(workspace: Workspace, line: str) -> None:
    with workspace.log.open("a") as log_file:
        log_file.write(line + "\n")


def _log_tail(workspace: Workspace) -> str:
    try:
        with workspace.log.open("rb") as handle:
            handle.seek(0, 2)
            handle.seek(max(0, handle.tell() - 16384))
            text = handle.read().decode(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-LOG_TAIL_LINES:])


async def _flush_log_until(
    stop: asyncio.Event, settings: RunnerSettings, s3: S3Client, record: JobRecord, workspace: Workspace
) -> None:
    """Copy the growing log to the store so `GET .../logs` can follow a running job."""
    key = keys.result_key(record.user, record.submission_id, "job.log")
    last_size = -1
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), settings.log_flush_interval_s)
        if stop.is_set():
            return
        try:
            size = workspace.log.stat().st_size
            if size != last_size:
                await asyncio.to_thread(s3.upload_file, str(workspace.log), settings.bucket, key)
                last_size = size
        except Exception as exc:  # a missed flush only delays the live view
            log.warning("could not flush the log of %s: %r", record.submission_id, exc)
