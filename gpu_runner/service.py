"""Pull jobs from the JetStream work queue, one at a time, and see each to a terminal state."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import timedelta

from botocore.exceptions import BotoCoreError, ClientError
from mlflow.exceptions import MlflowException
from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.api import AckPolicy, ConsumerConfig
from pydantic import ValidationError

from gpu_runner.job import JobOutcome, execute_job
from gpu_runner.settings import RunnerSettings
from leadersboard import nats_io
from leadersboard.jobs import JobStore
from leadersboard.models import JobMessage, JobRecord, JobStatus, utcnow
from leadersboard.s3 import S3Client, make_client

__all__ = ["Runner", "run"]

log = logging.getLogger("gpu_runner")
HAND_BACK_DELAY_S = 5.0


def is_transient(exc: BaseException) -> bool:
    """A fault of a backing service (connection refused, 5xx), as opposed to one of the job."""
    if isinstance(exc, BotoCoreError | ConnectionError):
        return True
    if isinstance(exc, ClientError):
        return str(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", "")).startswith("5")
    return isinstance(exc, MlflowException) and "RESOURCE_DOES_NOT_EXIST" not in str(exc.error_code)


OUTCOME_PERSIST_S = 600.0


class Runner:
    def __init__(self, settings: RunnerSettings, jobs: JobStore, s3: S3Client, stop: asyncio.Event) -> None:
        self.settings = settings
        self.jobs = jobs
        self.s3 = s3
        self.stop = stop

    async def handle(self, message: Msg) -> None:
        try:
            job = JobMessage.model_validate_json(message.data)
        except ValidationError:
            log.warning("dropping a malformed job message")
            await message.term()
            return
        record = await self.jobs.update(job.user, job.submission_id, lambda current: self._claim(current, job))
        if record is None or record.status is not JobStatus.RUNNING or record.runner != self.settings.runner_id:
            await message.ack()  # finished, cancelled, or given up as lost: nothing to run
            return
        log.info("running %s of %s (attempt %d)", record.submission_id, record.user, record.attempts)
        interrupted = asyncio.Event()
        outcome = await self._run_with_heartbeat(message, record, interrupted)
        if interrupted.is_set() and await self._hand_back(record):
            await message.nak(delay=HAND_BACK_DELAY_S)
            log.info("%s handed back to the queue", record.submission_id)
            return
        final = await self._record_outcome(record, outcome)
        with contextlib.suppress(Exception):  # if the ack is lost, the redelivery finds the job finished
            await message.ack()
        log.info("%s finished: %s", record.submission_id, final.status if final else "gone")

    async def _record_outcome(self, record: JobRecord, outcome: JobOutcome) -> JobRecord | None:
        """Store the terminal state, waiting out a NATS restart rather than losing a finished job's result."""
        deadline = time.monotonic() + OUTCOME_PERSIST_S
        while True:
            try:
                return await self.jobs.update(record.user, record.submission_id, outcome.apply)
            except Exception as exc:
                if time.monotonic() > deadline:
                    raise
                log.warning("recording the outcome of %s failed (%r); retrying", record.submission_id, exc)
                await asyncio.sleep(1.0)

    async def _hand_back(self, record: JobRecord) -> bool:
        """running (ours) -> pending again, for another runner; False if it was cancelled meanwhile."""

        def release(current: JobRecord) -> JobRecord | None:
            if current.status is not JobStatus.RUNNING or current.runner != self.settings.runner_id:
                return None
            current.status = JobStatus.PENDING
            current.runner = None
            current.attempts -= 1  # not the job's fault
            return current

        updated = await self.jobs.update(record.user, record.submission_id, release)
        return updated is not None and updated.status is JobStatus.PENDING

    def _claim(self, record: JobRecord, job: JobMessage) -> JobRecord | None:
        """pending -> running (ours); a running job only if its runner went silent (then retry or give up)."""
        if record.status.terminal:
            return None
        now = utcnow()
        if record.status is JobStatus.RUNNING:
            last_sign = record.heartbeat_at or record.started_at or record.created_at
            if now - last_sign < timedelta(seconds=self.settings.heartbeat_stale_s):
                return None  # alive elsewhere: this message is a duplicate
            if record.attempts >= self.settings.max_attempts:
                record.status = JobStatus.FAILED
                record.error = f"runner lost: runner {record.runner} vanished; {record.attempts} attempts made"
                record.finished_at = now
                return record
        record.status = JobStatus.RUNNING
        record.runner = self.settings.runner_id
        record.started_at = now
        record.heartbeat_at = now
        record.attempts += 1
        record.timeout_s = job.timeout_s or record.timeout_s
        record.queued_at = record.queued_at or job.queued_at  # the runner may claim before the dispatcher marks
        return record

    async def _run_with_heartbeat(self, message: Msg, record: JobRecord, interrupted: asyncio.Event) -> JobOutcome:
        cancelled = asyncio.Event()
        heartbeat = asyncio.create_task(self._heartbeat(message, record, cancelled))
        watchdog = asyncio.create_task(self._stop_after_grace(cancelled, interrupted))
        try:
            return await execute_job(self.settings, self.s3, record, cancelled)
        except Exception as exc:
            if is_transient(exc):  # the store or MLflow is down: not the job's fault, run it again later
                log.warning("store or tracking unavailable while running %s (%r)", record.submission_id, exc)
                interrupted.set()
                return JobOutcome(JobStatus.FAILED, "platform unavailable")
            log.exception("runner fault on %s", record.submission_id)
            return JobOutcome(JobStatus.FAILED, f"internal runner error ({type(exc).__name__}); please report it")
        finally:
            heartbeat.cancel()
            watchdog.cancel()

    async def _stop_after_grace(self, cancelled: asyncio.Event, interrupted: asyncio.Event) -> None:
        await self.stop.wait()
        await asyncio.sleep(self.settings.shutdown_grace_s)
        interrupted.set()
        cancelled.set()

    async def _heartbeat(self, message: Msg, record: JobRecord, cancelled: asyncio.Event) -> None:
        """Keep the message ours, show the job is alive, and notice a cancel request."""
        interval_s = min(self.settings.heartbeat_interval_s, self.settings.ack_wait_s / 3)

        def beat(current: JobRecord) -> JobRecord | None:
            if current.status is not JobStatus.RUNNING or current.runner != self.settings.runner_id:
                return None
            current.heartbeat_at = utcnow()
            return current

        while True:
            await asyncio.sleep(interval_s)
            try:
                await message.in_progress()
                current = await self.jobs.update(record.user, record.submission_id, beat)
            except Exception as exc:
                log.warning("heartbeat of %s failed: %r", record.submission_id, exc)
                continue
            if current is None or current.status is JobStatus.CANCELLED:
                cancelled.set()


async def run(settings: RunnerSettings, *, stop: asyncio.Event | None = None) -> None:
    stop = stop or asyncio.Event()
    settings.work_dir.mkdir(parents=True, exist_ok=True)
    nc = await nats_io.connect(settings, name=f"runner-{settings.runner_id}")
    js = nc.jetstream()
    await nats_io.ensure_topology(js, settings)
    runner = Runner(settings, JobStore(await js.key_value(settings.jobs_kv_bucket)), make_client(settings), stop)
    subscription = await js.pull_subscribe(
        settings.jobs_subject,
        durable=settings.consumer_name,
        stream=settings.jobs_stream,
        config=ConsumerConfig(ack_policy=AckPolicy.EXPLICIT, ack_wait=settings.ack_wait_s, max_ack_pending=-1),
    )
    log.info("runner %s waiting for jobs (gpu=%r)", settings.runner_id, settings.gpu)
    try:
        while not stop.is_set():
            try:
                messages = await subscription.fetch(1, timeout=settings.fetch_timeout_s)
            except (NatsTimeoutError, TimeoutError):
                if settings.burst:
                    break
                continue
            except Exception as exc:  # NATS restarting: the durable consumer is still there afterwards
                log.warning("fetching jobs failed (%r); retrying", exc)
                await asyncio.sleep(1.0)
                continue
            for message in messages:
                try:
                    await runner.handle(message)
                except Exception as exc:  # the message comes back after ack_wait; the claim rules sort it out
                    log.warning("job message not handled (%r)", exc)
    finally:
        # A pull subscription left subscribed makes drain wait for its full timeout.
        await subscription.unsubscribe()
        await nc.drain()
