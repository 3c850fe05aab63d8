"""Pull jobs from the JetStream work queue, one at a time, and see each to a terminal state."""

from __future__ import annotations

import asyncio
import logging

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


class Runner:
    def __init__(self, settings: RunnerSettings, jobs: JobStore, s3: S3Client) -> None:
        self.settings = settings
        self.jobs = jobs
        self.s3 = s3

    async def handle(self, message: Msg) -> None:
        try:
            job = JobMessage.model_validate_json(message.data)
        except ValidationError:
            log.warning("dropping a malformed job message")
            await message.term()
            return
        record = await self.jobs.update(job.user, job.submission_id, self._claim)
        if record is None or record.status is not JobStatus.RUNNING or record.runner != self.settings.runner_id:
            await message.ack()  # finished, cancelled, or given up as lost: nothing to run
            return
        log.info("running %s of %s (attempt %d)", record.submission_id, record.user, record.attempts)
        outcome = await self._run_with_heartbeat(message, record)
        final = await self.jobs.update(record.user, record.submission_id, outcome.apply)
        await message.ack()
        log.info("%s finished: %s", record.submission_id, final.status if final else "gone")

    def _claim(self, record: JobRecord) -> JobRecord | None:
        if record.status.terminal:
            return None
        if record.status is JobStatus.RUNNING and record.attempts >= self.settings.max_attempts:
            # Redelivered after its runners vanished too often: give up with the reason.
            record.status = JobStatus.FAILED
            record.error = f"runner lost: no runner finished the job in {record.attempts} attempts"
            record.finished_at = utcnow()
            return record
        record.status = JobStatus.RUNNING
        record.runner = self.settings.runner_id
        record.started_at = utcnow()
        record.attempts += 1
        return record

    async def _run_with_heartbeat(self, message: Msg, record: JobRecord) -> JobOutcome:
        cancelled = asyncio.Event()
        heartbeat = asyncio.create_task(self._heartbeat(message, record, cancelled))
        try:
            return await execute_job(self.settings, self.s3, record, cancelled)
        except Exception as exc:
            log.exception("runner fault on %s", record.submission_id)
            return JobOutcome(JobStatus.FAILED, f"internal runner error ({type(exc).__name__}); please report it")
        finally:
            heartbeat.cancel()

    async def _heartbeat(self, message: Msg, record: JobRecord, cancelled: asyncio.Event) -> None:
        """Keep the message ours while the job runs, and notice a cancel request."""
        interval_s = max(0.5, min(self.settings.ack_wait_s / 3, 2.0))
        while True:
            await asyncio.sleep(interval_s)
            try:
                await message.in_progress()
                current = await self.jobs.get(record.user, record.submission_id)
            except Exception as exc:
                log.warning("heartbeat of %s failed: %r", record.submission_id, exc)
                continue
            if current is not None and current.status is JobStatus.CANCELLED:
                cancelled.set()


async def run(settings: RunnerSettings, *, stop: asyncio.Event | None = None) -> None:
    stop = stop or asyncio.Event()
    settings.work_dir.mkdir(parents=True, exist_ok=True)
    nc = await nats_io.connect(settings, name=f"runner-{settings.runner_id}")
    js = nc.jetstream()
    await nats_io.ensure_topology(js, settings)
    runner = Runner(settings, JobStore(await js.key_value(settings.jobs_kv_bucket)), make_client(settings))
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
            for message in messages:
                await runner.handle(message)
    finally:
        await nc.drain()
