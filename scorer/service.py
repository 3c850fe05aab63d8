"""The scorer process: consume score requests, one at a time, and see each job to its verified scores.

Per request (ScoreRequest, on the scoring work queue): the job's record is read, and left alone unless it
waits for its scores (or, for a rescore, is finished and was scored before: leadersboard/scoring/verdict.py).
Then the reference of its benchmark version (scorer/references.py), its predictions (scorer/store.py),
`evaluate`, `scores.json`, the `verified_*` metrics on its MLflow run (scorer/tracking.py), and last the record,
compare-and-set: `completed` with its scores, or `failed` with the reason. MLflow and scores.json come before
the record: once the record says completed, a redelivered request leaves the job alone.

Faults (leadersboard/faults.py decides which is which):
- predictions that cannot be scored, a damaged reference: the job fails with what to fix, at once;
- a refusal (a 4xx of the store or MLflow, a record NATS refuses): the job fails with it, at once;
- an outage (the store, MLflow or NATS away): the request comes back after a delay that doubles on each
  delivery (`retry_delay_s` .. `retry_max_delay_s`); the `max_deliveries`-th time the job fails, naming the
  outage. A rescore that meets an outage that long leaves its job as it was (its earlier scores stand).
The dispatcher bounds all of it from outside: a job waiting for its scores `scoring_timeout_s` fails.
"""

from __future__ import annotations

import asyncio
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig
from pydantic import ValidationError

from leadersboard import nats_io
from leadersboard.benchmarks.catalogue import BenchmarkCatalogue
from leadersboard.consume import DONE, GIVE_UP, Outcome, RetryLater, consume, in_progress
from leadersboard.faults import classify
from leadersboard.jobs import JobStore
from leadersboard.mlflow_auth import export_client_credentials
from leadersboard.models.base import utcnow
from leadersboard.models.benchmarks import BenchmarkRecord
from leadersboard.models.queue import ScoreRequest
from leadersboard.models.records import JobRecord
from leadersboard.models.scores import Scores
from leadersboard.s3 import S3Client, make_client
from leadersboard.scoring.predictions import BadPredictions
from leadersboard.scoring.score import DEFAULT_SEED, SCORER_VERSION, InvalidReference, evaluate, summarize
from leadersboard.scoring.verdict import SCORING_FAILED, damaged_reason, failed, rejected_reason, scored, takes
from leadersboard.tracking import client_environment
from scorer.references import ReferenceCache
from scorer.settings import ScorerSettings
from scorer.store import download_predictions, write_scores
from scorer.tracking import log_unverified, log_verified

__all__ = ["Scorer", "run"]

log = logging.getLogger("scorer")

FETCH_RETRY_S = 1.0


class Rejected(Exception):
    """The job cannot be scored, and never will be: it fails with this reason."""


@dataclass(frozen=True)
class Job:
    request: ScoreRequest
    record: JobRecord
    benchmark: BenchmarkRecord


class Scorer:
    def __init__(
        self,
        settings: ScorerSettings,
        jobs: JobStore,
        catalogue: BenchmarkCatalogue,
        s3: S3Client,
        references: ReferenceCache,
    ) -> None:
        self.settings = settings
        self.jobs = jobs
        self.catalogue = catalogue
        self.s3 = s3
        self.references = references

    async def handle(self, message: Msg) -> Outcome:
        """Score the request's job (the message kept in progress meanwhile); see the module's docstring."""
        try:
            request = ScoreRequest.model_validate_json(message.data)
        except ValidationError:
            log.warning("dropping a malformed score request")
            return GIVE_UP
        keeper = asyncio.create_task(self._keep(message))
        try:
            return await self._handle(request)
        except Exception as exc:
            return await self._handle_fault(request, exc, message.metadata.num_delivered)
        finally:
            keeper.cancel()

    async def _handle(self, request: ScoreRequest) -> Outcome:
        record = await self.jobs.get(request.user, request.submission_id)
        if record is None or not _applies(request, record):
            log.info("%s of %s: nothing to score", request.submission_id, request.user)
            return DONE
        try:
            job = Job(request, record, await self._benchmark(request))
            scores = await asyncio.to_thread(self._score, job)
        except Rejected as rejected:
            await self._conclude_failed(request, record, str(rejected))
            return DONE
        now = utcnow()

        def complete(current: JobRecord) -> JobRecord | None:
            return scored(current, scores, now=now, rescore=request.rescore)

        final = await self.jobs.update(request.user, request.submission_id, complete)
        log.info("%s of %s scored: %s", request.submission_id, request.user, final.status if final else "gone")
        return DONE

    async def _benchmark(self, request: ScoreRequest) -> BenchmarkRecord:
        found = await self.catalogue.get(request.benchmark, request.benchmark_version)
        if found is None or found.status != "ready":
            what = f"benchmark {request.benchmark!r} v{request.benchmark_version}"
            raise Rejected(f"{SCORING_FAILED}: {what} is not in the catalogue (or not ready)")
        return found

    def _score(self, job: Job) -> Scores:
        """Reference, predictions, evaluation, scores.json and MLflow (blocking: in a thread)."""
        request, settings = job.request, self.settings
        try:
            reference = self.references.get(job.benchmark)
            with tempfile.TemporaryDirectory(prefix="predictions-", dir=self._scratch_dir()) as scratch:
                predictions = download_predictions(
                    self.s3, settings.bucket, request.user, request.submission_id, Path(scratch),
                    max_bytes=settings.max_predictions_bytes, max_files=settings.max_prediction_files,
                )  # fmt: skip
                evaluation = evaluate(
                    predictions, reference.reference, reference.root, resamples=settings.resamples, seed=DEFAULT_SEED
                )
        except BadPredictions as exc:
            raise Rejected(rejected_reason(str(exc))) from None
        except InvalidReference as exc:  # DamagedReference included
            raise Rejected(damaged_reason(str(exc))) from None
        scores = summarize(evaluation, reference.reference, resamples=settings.resamples, seed=DEFAULT_SEED)
        scores.test_labels_public = job.benchmark.info.test_labels_public
        write_scores(
            self.s3, settings.bucket, request.user, request.submission_id, scores=scores, evaluation=evaluation,
            benchmark=request.benchmark, benchmark_version=request.benchmark_version, scored_at=utcnow(),
        )  # fmt: skip
        if job.record.mlflow_run_id is not None:
            log_verified(
                settings.mlflow_tracking_uri, job.record.mlflow_run_id, scores,
                benchmark=request.benchmark, benchmark_version=request.benchmark_version,
            )  # fmt: skip
        return scores

    def _scratch_dir(self) -> Path:
        scratch = self.settings.work_dir / "predictions"
        scratch.mkdir(parents=True, exist_ok=True)
        return scratch

    async def _conclude_failed(self, request: ScoreRequest, record: JobRecord, reason: str) -> None:
        """The job failed by scoring with `reason`, and its MLflow run marked not verified."""
        log.info("%s of %s failed: %s", request.submission_id, request.user, reason)
        if record.mlflow_run_id is not None:
            await asyncio.to_thread(
                log_unverified, self.settings.mlflow_tracking_uri, record.mlflow_run_id,
                benchmark=request.benchmark, benchmark_version=request.benchmark_version, scorer_version=SCORER_VERSION,
            )  # fmt: skip
        await self._set_failed(request, reason)

    async def _set_failed(self, request: ScoreRequest, reason: str) -> None:
        now = utcnow()

        def fail(current: JobRecord) -> JobRecord | None:
            return failed(current, reason, now=now, rescore=request.rescore)

        await self.jobs.update(request.user, request.submission_id, fail)

    async def _handle_fault(self, request: ScoreRequest, exc: Exception, delivered: int) -> Outcome:
        """Retry an outage later (a bounded number of times); fail the job on anything else, or on the last."""
        fault = classify(exc)
        if fault is not None and fault.transient and delivered < self.settings.max_deliveries:
            log.warning("%s: delivery %d met an outage (%s); retrying", request.submission_id, delivered, fault.reason)
            return RetryLater(self._retry_delay_s(delivered))
        if fault is None:  # a bug: the traceback is what the admins need
            log.exception("scoring %s of %s failed", request.submission_id, request.user)
            reason = f"{SCORING_FAILED}: internal scorer error ({type(exc).__name__}); please report it"
        elif fault.transient:
            if request.rescore:  # its earlier scores stand
                log.warning("rescoring %s gave up after %d deliveries (%s)", request.submission_id, delivered, fault)
                return GIVE_UP
            reason = f"{SCORING_FAILED}: {delivered} attempts met an outage ({fault.reason})"
        else:
            reason = f"{SCORING_FAILED}: {fault.reason}"
        return await self._record_failure(request, reason, delivered)

    async def _record_failure(self, request: ScoreRequest, reason: str, delivered: int) -> Outcome:
        try:
            await self._set_failed(request, reason)
        except Exception as exc:
            fault = classify(exc)
            if fault is not None and fault.transient:  # NATS away: tried again (the scoring timeout bounds it)
                log.warning("could not record %s failed (%s); retrying", request.submission_id, fault.reason)
                return RetryLater(self._retry_delay_s(delivered))
            log.exception("dropping the score request of %s: its failure could not be recorded", request.submission_id)
            return GIVE_UP
        log.info("%s of %s failed: %s", request.submission_id, request.user, reason)
        return DONE

    def _retry_delay_s(self, delivered: int) -> float:
        return min(self.settings.retry_delay_s * 2.0 ** (delivered - 1), self.settings.retry_max_delay_s)

    async def _keep(self, message: Msg) -> None:
        """Keep the message ours while a long scoring runs (it resets the ack wait)."""
        while True:
            await asyncio.sleep(self.settings.ack_wait_s / 3)
            await in_progress(message)


def _applies(request: ScoreRequest, record: JobRecord) -> bool:
    """The request is about the job as it is: its benchmark, in the state the request expects."""
    same = (record.benchmark, record.benchmark_version) == (request.benchmark, request.benchmark_version)
    return same and takes(record, rescore=request.rescore)


async def run(settings: ScorerSettings, *, stop: asyncio.Event | None = None) -> None:
    stop = stop or asyncio.Event()
    # MLflow's client reads its account and retry policy from the environment only (its default waits minutes).
    os.environ.update(client_environment(settings))
    if settings.mlflow_password is not None:
        export_client_credentials(settings.mlflow_username, settings.mlflow_password.get_secret_value())
    s3 = make_client(settings)
    references = ReferenceCache(s3, settings.reference_bucket, settings.work_dir)
    if cleaned := references.clean_staging():
        log.info("removed %d unfinished reference downloads", cleaned)
    nc = await nats_io.connect(settings, name="scorer")
    js = nc.jetstream()  # the topology is the admin's to declare (nats_io.ensure_topology): here we only bind
    jobs = JobStore(await js.key_value(settings.jobs_kv_bucket))
    catalogue = BenchmarkCatalogue(await js.key_value(settings.benchmarks_kv_bucket))
    scorer = Scorer(settings, jobs, catalogue, s3, references)
    subscription = await subscribe(js, settings)
    log.info("scorer consuming %s", settings.scoring_subject)

    async def drained() -> bool:  # burst: stop once no request waits, nor one waiting for redelivery
        if not settings.burst:
            return False
        info = await subscription.consumer_info()
        return not info.num_pending and not info.num_ack_pending

    try:
        await consume(
            subscription, scorer.handle, what="score requests", stop=stop, batch=1,  # one scoring at a time
            fetch_timeout_s=settings.fetch_timeout_s, retry_s=FETCH_RETRY_S, idle=drained,
        )  # fmt: skip
    finally:
        # A pull subscription left subscribed makes drain wait for its full timeout.
        await subscription.unsubscribe()
        await nc.drain()


async def subscribe(js: JetStreamContext, settings: ScorerSettings) -> JetStreamContext.PullSubscription:
    """The scorer's durable pull consumer on the scoring work queue (created on first use)."""
    return await js.pull_subscribe(
        settings.scoring_subject,
        durable=settings.consumer_name,
        stream=settings.scoring_stream,
        config=ConsumerConfig(ack_policy=AckPolicy.EXPLICIT, ack_wait=settings.ack_wait_s, max_ack_pending=-1),
    )
