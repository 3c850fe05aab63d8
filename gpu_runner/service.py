"""Pull jobs from the JetStream work queue, one at a time, and see each to a terminal state."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from dataclasses import dataclass

from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig
from pydantic import ValidationError

from gpu_runner.benchmark import ScoringQueue
from gpu_runner.job import JobOutcome, execute_job
from gpu_runner.leftovers import owned_work_dir
from gpu_runner.results import fit_record
from gpu_runner.settings import RunnerSettings
from leadersboard import nats_io
from leadersboard.benchmarks.catalogue import BenchmarkCatalogue
from leadersboard.consume import DONE, GIVE_UP, Outcome, RetryLater, consume, in_progress
from leadersboard.faults import classify
from leadersboard.jobs import JobStore
from leadersboard.liveness import fail_vanished_runner, runner_silent, waiting_for_scores
from leadersboard.models.base import utcnow
from leadersboard.models.queue import JobMessage
from leadersboard.models.records import JobRecord, JobStatus
from leadersboard.s3 import S3Client, make_client
from leadersboard.tracking import client_environment

__all__ = ["Runner", "run"]

log = logging.getLogger("gpu_runner")
FALLBACK_RECORD_BYTES = 64 * 1024
"""The record stored when the outcome itself cannot be: small enough for any NATS server."""
FETCH_RETRY_S = 1.0


@dataclass
class Interruption:
    """Why a run must be handed back (an outage of the store or MLflow, the runner shutting down)."""

    cause: str | None = None


class Runner:
    def __init__(
        self,
        settings: RunnerSettings,
        jobs: JobStore,
        s3: S3Client,
        stop: asyncio.Event,
        *,
        catalogue: BenchmarkCatalogue | None = None,
        scoring: ScoringQueue | None = None,
    ) -> None:
        self.settings = settings
        self.jobs = jobs
        self.s3 = s3
        self.stop = stop
        self.catalogue = catalogue
        """Benchmark jobs: where their benchmark's public part is."""
        self.scoring = scoring
        """Benchmark jobs: where their predictions are handed to the scorer."""

    async def handle(self, message: Msg) -> Outcome:
        """Run the message's job to its end (the message kept in progress meanwhile): done once its outcome is
        stored, retried later when the job was handed back. Raises when the job cannot be claimed (NATS
        away): the message comes back after its ack wait, and the claim rules sort the repeat out."""
        try:
            job = JobMessage.model_validate_json(message.data)
        except ValidationError:
            log.warning("dropping a malformed job message")
            return GIVE_UP
        record = await self.jobs.update(job.user, job.submission_id, lambda current: self._claim(current, job))
        if record is not None and waiting_for_scores(record):
            # Its run ended well but the message came back: the scoring request may have been lost with it.
            await self._request_scoring(record)
            return DONE
        if record is None or record.status is not JobStatus.RUNNING or record.runner != self.settings.runner_id:
            return DONE  # finished, cancelled, or given up as lost: nothing to run
        log.info("running %s of %s (attempt %d)", record.submission_id, record.user, record.attempts)
        interruption = Interruption()
        outcome = await self._run_with_heartbeat(message, record, interruption)
        if interruption.cause is not None:
            released = await self._hand_back(record, interruption.cause)
            if released is not None and released.status is JobStatus.PENDING:
                log.info("%s handed back to the queue (%s)", record.submission_id, interruption.cause)
                return RetryLater(self.settings.hand_back_delay_s)
            log.info("%s not handed back: %s", record.submission_id, released.error if released else "gone")
            return DONE
        final = await self._record_outcome(record, outcome)
        if final is not None and waiting_for_scores(final):
            log.info("%s ran to its end: its predictions go to the scorer", record.submission_id)
            await self._request_scoring(final)
            return DONE  # if the ack is lost, the redelivery asks for the scoring again
        log.info("%s finished: %s", record.submission_id, final.status if final else "gone")
        return DONE  # if the ack is lost, the redelivery finds the job finished

    async def _request_scoring(self, record: JobRecord) -> None:
        """Publish the job's ScoreRequest. A failure raises: the job's message comes back after its ack wait,
        and the redelivery publishes again (the dispatcher's scoring bound ends a job never scored)."""
        if self.scoring is None:
            raise RuntimeError("a benchmark job on a runner without the scoring queue")
        await self.scoring.request(record)

    async def _record_outcome(self, record: JobRecord, outcome: JobOutcome) -> JobRecord | None:
        """Store the terminal state (cut to fit if it is too large), waiting out a NATS restart for a bounded
        time rather than losing a finished job's result; a refusal (e.g. MaxPayloadError) is not waited out."""
        deadline = time.monotonic() + self.settings.outcome_persist_s

        def apply(current: JobRecord) -> JobRecord | None:
            updated = outcome.apply(current)
            return None if updated is None else fit_record(updated, self.settings.max_record_bytes)

        while True:
            try:
                return await self.jobs.update(record.user, record.submission_id, apply)
            except Exception as exc:
                fault = classify(exc)
                if fault is not None and not fault.transient:  # the same on every try
                    log.warning("the outcome of %s was refused (%s)", record.submission_id, fault.reason)
                    return await self._record_unstorable(record, fault.reason)
                if time.monotonic() > deadline:
                    raise
                log.warning("recording the outcome of %s failed (%r); retrying", record.submission_id, exc)
                await asyncio.sleep(1.0)

    async def _record_unstorable(self, record: JobRecord, reason: str) -> JobRecord | None:
        """One try at a small terminal record saying why the real one could not be stored."""
        note = f"the job's outcome could not be stored ({reason}); its results (job.log, metrics.json) are kept"
        fallback = JobOutcome(JobStatus.FAILED, note)

        def apply(current: JobRecord) -> JobRecord | None:
            updated = fallback.apply(current)
            return None if updated is None else fit_record(updated, FALLBACK_RECORD_BYTES)

        return await self.jobs.update(record.user, record.submission_id, apply)

    async def _hand_back(self, record: JobRecord, cause: str) -> JobRecord | None:
        """running (ours) -> pending again, for another runner, counted in `hand_backs` (never reset).

        `attempts` keeps counting the runs that count against the job: a hand-back gives its claim back (the
        runner-lost rule of `_claim` compares it with max_attempts). A job already handed back max_hand_backs
        times ends `failed` instead: `handed back N times: <cause>`, so an outage that never ends, or a fault
        taken for one, cannot re-run main.py forever.
        """

        def release(current: JobRecord) -> JobRecord | None:
            if current.status is not JobStatus.RUNNING or current.runner != self.settings.runner_id:
                return None
            if current.hand_backs >= self.settings.max_hand_backs:
                current.status = JobStatus.FAILED
                current.error = f"handed back {current.hand_backs} times: {cause}"
                current.finished_at = utcnow()
                return fit_record(current, self.settings.max_record_bytes)
            current.status = JobStatus.PENDING
            current.runner = None
            current.attempts -= 1  # not the job's fault
            current.hand_backs += 1
            return current

        return await self.jobs.update(record.user, record.submission_id, release)

    def _claim(self, record: JobRecord, job: JobMessage) -> JobRecord | None:
        """pending -> running (ours); a running job only if its runner went silent (then retry or give up)."""
        if record.status.terminal:
            return None
        now = utcnow()
        if record.status is JobStatus.RUNNING:  # the rule of leadersboard/liveness.py
            if not runner_silent(record, now=now, after_s=self.settings.heartbeat_stale_s):
                return None  # alive elsewhere: this message is a duplicate
            if record.attempts >= self.settings.max_attempts:
                return fail_vanished_runner(record, now=now)
        record.status = JobStatus.RUNNING
        record.runner = self.settings.runner_id
        record.started_at = now
        record.heartbeat_at = now
        record.attempts += 1
        record.timeout_s = job.timeout_s or record.timeout_s
        record.disk_gib = job.disk_gib or record.disk_gib
        record.memory_gib = job.memory_gib or record.memory_gib
        record.queued_at = record.queued_at or job.queued_at  # the runner may claim before the dispatcher marks
        return record

    async def _run_with_heartbeat(self, message: Msg, record: JobRecord, interruption: Interruption) -> JobOutcome:
        cancelled = asyncio.Event()
        heartbeat = asyncio.create_task(self._heartbeat(message, record, cancelled))
        watchdog = asyncio.create_task(self._stop_after_grace(cancelled, interruption))
        try:
            return await execute_job(self.settings, self.s3, record, cancelled, catalogue=self.catalogue)
        except Exception as exc:
            fault = classify(exc)
            if fault is not None and fault.transient:  # an outage: not the job's fault, run it again later
                log.warning("platform unavailable while running %s (%r)", record.submission_id, exc)
                interruption.cause = fault.reason
                return JobOutcome(JobStatus.FAILED, fault.reason)
            if fault is not None:  # a refusal: the same on every attempt
                log.warning("%s refused: %s", record.submission_id, fault.reason)
                return JobOutcome(JobStatus.FAILED, fault.reason)
            log.exception("runner fault on %s", record.submission_id)
            return JobOutcome(JobStatus.FAILED, f"internal runner error ({type(exc).__name__}); please report it")
        finally:
            heartbeat.cancel()
            watchdog.cancel()

    async def _stop_after_grace(self, cancelled: asyncio.Event, interruption: Interruption) -> None:
        await self.stop.wait()
        await asyncio.sleep(self.settings.shutdown_grace_s)
        interruption.cause = f"runner {self.settings.runner_id} shut down while the job ran"
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
            if not await in_progress(message):
                continue  # NATS is away: the record's heartbeat would fail too
            try:
                current = await self.jobs.update(record.user, record.submission_id, beat)
            except Exception as exc:
                log.warning("heartbeat of %s failed: %r", record.submission_id, exc)
                continue
            if current is None or current.status is JobStatus.CANCELLED:
                cancelled.set()


async def run(settings: RunnerSettings, *, stop: asyncio.Event | None = None) -> None:
    """Remove what crashed jobs of an earlier run left (gpu_runner/leftovers.py), then run jobs until `stop`."""
    with owned_work_dir(settings):  # held for the runner's life: a second runner there sweeps nothing
        await _run_jobs(settings, stop or asyncio.Event())


async def _run_jobs(settings: RunnerSettings, stop: asyncio.Event) -> None:
    # MLflow's client reads its retry policy from the environment only (its default waits minutes per call).
    os.environ.update(client_environment(settings))
    nc = await nats_io.connect(settings, name=f"runner-{settings.runner_id}")
    js = nc.jetstream()  # the topology is the admin's to declare (nats_io.ensure_topology): here we only bind
    jobs = JobStore(await js.key_value(settings.jobs_kv_bucket))
    catalogue = BenchmarkCatalogue(await js.key_value(settings.benchmarks_kv_bucket))
    scoring = ScoringQueue(js, settings.scoring_subject)
    runner = Runner(settings, jobs, make_client(settings), stop, catalogue=catalogue, scoring=scoring)
    subscription = await js.pull_subscribe(
        settings.jobs_subject,
        durable=settings.consumer_name,
        stream=settings.jobs_stream,
        config=ConsumerConfig(ack_policy=AckPolicy.EXPLICIT, ack_wait=settings.ack_wait_s, max_ack_pending=-1),
    )
    log.info("runner %s waiting for jobs (gpu=%r)", settings.runner_id, settings.gpu)

    async def no_job_waiting() -> bool:  # burst: stop once the queue is empty
        return settings.burst

    try:
        await consume(
            subscription, runner.handle, what="jobs", stop=stop, batch=1,  # one job at a time
            fetch_timeout_s=settings.fetch_timeout_s, retry_s=FETCH_RETRY_S, idle=no_job_waiting,
        )  # fmt: skip
    finally:
        # A pull subscription left subscribed makes drain wait for its full timeout.
        await subscription.unsubscribe()
        await nc.drain()
