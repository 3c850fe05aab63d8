"""One job from pickup to its terminal record: workspace, process, results, MLflow."""

from __future__ import annotations

import asyncio
import functools
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

from gpu_runner.benchmark import mount_public, public_part
from gpu_runner.datasets import DatasetCache
from gpu_runner.disk import GIB, JobDisk, is_disk_full_error, open_workspace
from gpu_runner.execute import JobLaunch, run_entrypoint
from gpu_runner.results import dataset_name, output_files, upload_results
from gpu_runner.sandbox import dataset_cache_root, resolve_sandbox
from gpu_runner.settings import RunnerSettings
from gpu_runner.tracking import SubmissionLinks, log_run
from gpu_runner.verdict import judge
from gpu_runner.workspace import BadSubmission, Prepared, Workspace, extract_zip, link_datasets, prepare
from leadersboard import keys
from leadersboard.benchmarks.catalogue import BenchmarkCatalogue
from leadersboard.experiments import runs_url
from leadersboard.keys import PREDICTIONS_DIR
from leadersboard.limits import MAX_PARAM_VALUE_CHARS
from leadersboard.models.base import utcnow
from leadersboard.models.metrics import MetricsFile
from leadersboard.models.records import JobRecord, JobStatus
from leadersboard.s3 import S3Client
from leadersboard.waiting import wait_set

__all__ = ["JobOutcome", "execute_job"]

log = logging.getLogger("gpu_runner")
SUBMITTED_CONFIG = "submitted-config"
"""A copy of the config taken before the job runs (the job may replace the original by a link)."""


@dataclass
class JobOutcome:
    status: JobStatus
    error: str | None = None
    exit_code: int | None = None
    metrics: MetricsFile | None = None
    dataset: str | None = None
    mlflow_run_id: str | None = None
    mlflow_run_url: str | None = None
    awaits_scoring: bool = False
    """A benchmark job whose run ended well: it stays `running` until the scorer has scored its predictions."""

    def apply(self, record: JobRecord) -> JobRecord | None:
        """The record's terminal state (or, awaiting scoring, the run's end); a job cancelled meanwhile stays
        cancelled."""
        if record.status.terminal:
            return None
        if self.awaits_scoring:
            record.scoring_requested_at = utcnow()
        else:
            record.status = self.status
            record.finished_at = utcnow()
        record.error = self.error
        record.exit_code = self.exit_code
        record.dataset = self.dataset or record.dataset
        if self.metrics is not None:
            record.metrics = dict(self.metrics.metrics)
            record.params = self.metrics.params_as_strings()
        record.mlflow_run_id = self.mlflow_run_id
        record.mlflow_run_url = self.mlflow_run_url
        return record


async def execute_job(
    settings: RunnerSettings,
    s3: S3Client,
    record: JobRecord,
    cancelled: asyncio.Event,
    *,
    catalogue: BenchmarkCatalogue | None = None,
) -> JobOutcome:
    """Run the job to its outcome. `catalogue`: where a benchmark job's public part is found (required for one)."""
    if record.benchmark is not None and catalogue is None:
        raise RuntimeError("a benchmark job on a runner without the benchmark catalogue")
    root = settings.work_dir.resolve() / record.submission_id
    disk_bytes = int((record.disk_gib or settings.job_disk_gib) * GIB)  # the owner's quota, else the default
    workspace, disk = await asyncio.to_thread(open_workspace, settings, root, disk_bytes)
    try:
        outcome, metrics, wall_time_s = await _run_with_live_log(
            settings, s3, record, workspace, cancelled, disk, catalogue
        )
        return await _finish(settings, s3, record, workspace, outcome, metrics, wall_time_s)
    finally:
        await asyncio.to_thread(disk.release, keep=settings.keep_workdirs)
        if not settings.keep_workdirs:
            workspace.remove()


async def _run_with_live_log(
    settings: RunnerSettings,
    s3: S3Client,
    record: JobRecord,
    workspace: Workspace,
    cancelled: asyncio.Event,
    disk: JobDisk,
    catalogue: BenchmarkCatalogue | None,
) -> tuple[JobOutcome, MetricsFile | None, float]:
    stop_flushing = asyncio.Event()
    flusher = asyncio.create_task(_flush_log_until(stop_flushing, settings, s3, record, workspace))
    try:
        cache = DatasetCache(dataset_cache_root(settings))  # before the sandbox, which hides it
        sandbox = resolve_sandbox(settings)
        try:
            prepared = await _prepare(settings, s3, record, workspace, cache, catalogue)
        except BadSubmission as exc:
            _note(workspace, f"[leadersboard] submission rejected: {exc}")
            return JobOutcome(JobStatus.FAILED, str(exc)), None, 0.0
        except OSError as exc:
            if not is_disk_full_error(exc):
                raise
            reason = f"disk limit of {disk.limit_bytes / GIB:g} GiB reached: the submission's files do not fit in it"
            return JobOutcome(JobStatus.FAILED, reason), None, 0.0
        for line in prepared.notes:
            _note(workspace, line)
        if sandbox is None:
            _note(workspace, "[leadersboard] WARNING: running WITHOUT a sandbox (allow_unsandboxed is set)")
            link_datasets(prepared.mounts)
        config = workspace.work / record.config
        if config.is_file() and not config.is_symlink():
            shutil.copyfile(config, workspace.root / SUBMITTED_CONFIG)
        timeout_s = float(record.timeout_s or settings.job_timeout_s)
        datasets = prepared.mounts if sandbox is not None else []
        launch = JobLaunch.from_settings(
            settings, timeout_s=timeout_s, sandbox=sandbox, datasets=datasets, memory_gib=record.memory_gib, disk=disk
        )
        result = await run_entrypoint(workspace, record, launch, cancelled)
        verdict = judge(
            result,
            workspace.output,
            timeout_s=timeout_s,
            limits=launch.limits,
            max_metrics_bytes=settings.max_metrics_bytes,
            max_predictions_bytes=None if record.benchmark is None else settings.max_predictions_bytes,
        )
        if verdict.metrics is not None:
            _note_long_params(workspace, verdict.metrics)
        outcome = JobOutcome(verdict.status, verdict.error, result.exit_code, verdict.metrics)
        return outcome, verdict.metrics, result.wall_time_s
    finally:
        # Let an upload in flight finish so it cannot overwrite the final log afterwards.
        stop_flushing.set()
        await flusher


async def _prepare(
    settings: RunnerSettings,
    s3: S3Client,
    record: JobRecord,
    workspace: Workspace,
    cache: DatasetCache,
    catalogue: BenchmarkCatalogue | None,
) -> Prepared:
    """The submission's files laid out, and for a benchmark job its benchmark's public part to mount."""
    extract = functools.partial(
        extract_zip, max_total_bytes=settings.max_zip_total_bytes, max_ratio=settings.max_zip_ratio
    )
    # The catalogue first: a benchmark gone from it fails the job before any download.
    part = None if catalogue is None or record.benchmark is None else await public_part(catalogue, record)
    prepared = await asyncio.to_thread(prepare, workspace, s3, settings.bucket, record, cache=cache, extract=extract)
    if part is not None:
        mounted = await asyncio.to_thread(
            mount_public, s3, settings.bucket, record, part,
            cache=cache, work=workspace.work, taken=prepared.mounts, extract=extract,
        )  # fmt: skip
        prepared.mounts.append(mounted.bind)
        prepared.notes.append(mounted.note)
    return prepared


def _note_long_params(workspace: Workspace, metrics: MetricsFile) -> None:
    """Long param values are kept, cut: a long value is a description, not what ranks; the log says so."""
    long_params = metrics.long_params()
    if long_params:
        names = ", ".join(repr(name) for name in long_params[:10]) + (" ..." if len(long_params) > 10 else "")
        _note(
            workspace,
            f"[leadersboard] {len(long_params)} param values cut to {MAX_PARAM_VALUE_CHARS} characters: {names}",
        )


async def _finish(
    settings: RunnerSettings,
    s3: S3Client,
    record: JobRecord,
    workspace: Workspace,
    outcome: JobOutcome,
    metrics: MetricsFile | None,
    wall_time_s: float,
) -> JobOutcome:
    outcome.dataset = dataset_name(record, metrics, workspace.root / SUBMITTED_CONFIG)
    outcome.awaits_scoring = record.benchmark is not None and outcome.status is JobStatus.COMPLETED
    # A benchmark job's predictions are what it is scored on: kept whole (the verdict bounded them), sent first.
    predictions = workspace.output / PREDICTIONS_DIR if outcome.awaits_scoring else None
    outputs, skipped = output_files(workspace.output, max_bytes=settings.max_output_bytes, whole=predictions)
    if skipped:
        _note(
            workspace,
            f"[leadersboard] {len(skipped)} output files not kept: over {settings.max_output_bytes} bytes",
        )
    if outcome.awaits_scoring:
        _note(workspace, f"[leadersboard] job ran to its end; {PREDICTIONS_DIR}/ goes to the scorer")
    else:
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
            # The predictions stay in the store only (the scorer's input; anomaly maps may be a GiB).
            outputs=[p for p in outputs if _mlflow_artifact(p, workspace.output, predictions)],
            output_root=workspace.output,
            succeeded=outcome.status is JobStatus.COMPLETED,
            links=SubmissionLinks(web_url=settings.web_public_url, api_url=settings.api_public_url),
        )
        outcome.mlflow_run_id = tracked.run_id
        outcome.mlflow_run_url = runs_url(settings.mlflow_public_url, tracked.experiment_id, tracked.run_id)
    return outcome


def _mlflow_artifact(path: Path, output: Path, predictions: Path | None) -> bool:
    """An output file MLflow gets as an artifact: not metrics.json (logged on its own), not the predictions."""
    if path.name == "metrics.json" and path.parent == output:
        return False
    return predictions is None or not path.is_relative_to(predictions)


def _note(workspace: Workspace, line: str) -> None:
    with workspace.log.open("a") as log_file:
        log_file.write(line + "\n")


async def _flush_log_until(
    stop: asyncio.Event, settings: RunnerSettings, s3: S3Client, record: JobRecord, workspace: Workspace
) -> None:
    """Copy the growing log to the store so `GET .../logs` can follow a running job."""
    key = keys.result_key(record.user, record.submission_id, "job.log")
    last_size = -1
    while not stop.is_set():
        if await wait_set(stop, settings.log_flush_interval_s):
            return
        try:
            size = workspace.log.stat().st_size
            if size != last_size:
                await asyncio.to_thread(s3.upload_file, str(workspace.log), settings.bucket, key)
                last_size = size
        except Exception as exc:  # a missed flush only delays the live view
            log.warning("could not flush the log of %s: %r", record.submission_id, exc)
