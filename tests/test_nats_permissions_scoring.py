"""NATS rights around scoring and the benchmark catalogue, against a real nats-server run with the config the
local stack writes (tests/nats_user_fixtures.py; the platform's other rights: tests/test_nats_permissions.py).

A runner asks for the scoring of a benchmark job it ran and reads the benchmark's record; ingest registers
benchmarks and asks for rescoring; the scorer takes the requests, reads the catalogue and settles job records.
None of them may take the scoring queue's requests, nor write the catalogue, unless it is theirs to do.
"""

from __future__ import annotations

from typing import Any

from nats.js.api import AckPolicy, ConsumerConfig

from leadersboard.benchmarks.catalogue import BenchmarkCatalogue
from leadersboard.jobs import JobStore
from leadersboard.keys import kv_benchmark_key
from leadersboard.models.queue import ScoreRequest
from leadersboard.models.records import JobRecord, JobStatus
from leadersboard.nats_permissions import (
    ADMIN,
    DISPATCHER_CONSUMER,
    INGEST,
    RUNNER,
    RUNNER_CONSUMER,
    SCORER,
    SCORER_CONSUMER,
    inbox_prefix,
)
from tests.nats_user_fixtures import T, benchmark_record, job_record, score_request

# --- the runner ----------------------------------------------------------------------------------


async def test_the_runner_asks_for_scoring_and_reads_benchmarks_but_cannot_score_or_register(as_user: Any) -> None:
    """A runner publishes the score request of a benchmark job it ran and reads the benchmark's record; the
    scoring queue itself (where it could take or drop requests) and the catalogue are not its to touch."""
    admin, runner = await as_user(ADMIN), await as_user(RUNNER)
    await BenchmarkCatalogue(await admin.bind(T.benchmarks_kv_bucket)).put(benchmark_record("runner-bench"))
    waiting = (await admin.js.stream_info(T.scoring_stream)).state.messages
    ack = await runner.js.publish(T.scoring_subject, score_request("alice", "job-s1"))
    assert ack.stream == T.scoring_stream
    catalogue = BenchmarkCatalogue(await runner.bind(T.benchmarks_kv_bucket))
    found = await catalogue.get("runner-bench", 1)
    assert found is not None and found.status == "ready"
    assert runner.violations.empty()

    stream = T.scoring_stream
    next_request = b'{"batch": 1}'
    assert stream.lower() in await runner.denied_request(f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{SCORER_CONSUMER}",
                                                         next_request)  # fmt: skip
    assert stream.lower() in await runner.denied_request(f"$JS.API.CONSUMER.INFO.{stream}.{SCORER_CONSUMER}")
    assert stream.lower() in await runner.denied_request(f"$JS.API.CONSUMER.CREATE.{stream}.{SCORER_CONSUMER}", b"{}")
    assert stream.lower() in await runner.denied_request(f"$JS.API.CONSUMER.DURABLE.CREATE.{stream}.mine", b"{}")
    assert stream.lower() in await runner.denied_request(f"$JS.API.STREAM.PURGE.{stream}")
    # Neither register nor mark a benchmark ready, nor watch the catalogue (a push consumer).
    key = kv_benchmark_key("runner-bench", 2)
    assert f"$KV.{T.benchmarks_kv_bucket}".lower() in await runner.denied_request(
        f"$KV.{T.benchmarks_kv_bucket}.{key}", benchmark_record("runner-bench", 2).model_dump_json().encode()
    )
    bucket_stream = f"KV_{T.benchmarks_kv_bucket}"
    assert bucket_stream.lower() in await runner.denied_request(f"$JS.API.CONSUMER.CREATE.{bucket_stream}", b"{}")
    assert await catalogue.get("runner-bench", 2) is None
    assert (await admin.js.stream_info(stream)).state.messages == waiting + 1  # its request is still there


# --- ingest --------------------------------------------------------------------------------------


async def test_ingest_registers_benchmarks_and_asks_for_rescoring_but_cannot_score(as_user: Any) -> None:
    admin, ingest = await as_user(ADMIN), await as_user(INGEST)
    catalogue = BenchmarkCatalogue(await ingest.bind(T.benchmarks_kv_bucket))
    await catalogue.create(benchmark_record("ingest-bench"))
    assert "ingest-bench" in [r.info.name for r in await catalogue.listing()]
    waiting = (await admin.js.stream_info(T.scoring_stream)).state.messages
    ack = await ingest.js.publish(T.scoring_subject, score_request("carol", "sub-r1"))
    assert ack.stream == T.scoring_stream
    assert ingest.violations.empty()
    stream = T.scoring_stream
    assert stream.lower() in await ingest.denied_request(f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{SCORER_CONSUMER}",
                                                         b'{"batch": 1}')  # fmt: skip
    assert stream.lower() in await ingest.denied_request(f"$JS.API.CONSUMER.CREATE.{stream}.steal", b"{}")
    assert (await admin.js.stream_info(stream)).state.messages == waiting + 1


# --- the scorer ----------------------------------------------------------------------------------


async def test_the_scorers_own_operations_work(as_user: Any) -> None:
    """It takes a score request, reads the job's benchmark record and settles the job's record by key."""
    admin, scorer = await as_user(ADMIN), await as_user(SCORER)
    await BenchmarkCatalogue(await admin.bind(T.benchmarks_kv_bucket)).put(benchmark_record("bench"))
    await JobStore(await admin.bind(T.jobs_kv_bucket)).create(job_record("erin", "sub-s1"))
    await admin.js.publish(T.scoring_subject, score_request("erin", "sub-s1"))

    pull = await scorer.js.pull_subscribe(
        T.scoring_subject, durable=SCORER_CONSUMER, stream=T.scoring_stream,
        config=ConsumerConfig(ack_policy=AckPolicy.EXPLICIT),
    )  # fmt: skip
    while True:  # requests other tests of this module left on the queue first
        [message] = await pull.fetch(1, timeout=5)
        request = ScoreRequest.model_validate_json(message.data)
        if request.submission_id == "sub-s1":
            break
        await message.ack()
    await message.in_progress()
    await message.nak(delay=0.1)
    [message] = await pull.fetch(1, timeout=5)
    assert ScoreRequest.model_validate_json(message.data) == request
    benchmark = await BenchmarkCatalogue(await scorer.bind(T.benchmarks_kv_bucket)).get(request.benchmark, 1)
    assert benchmark is not None and benchmark.reference.key == "bench/v1/part.zip"
    jobs = JobStore(await scorer.bind(T.jobs_kv_bucket))

    def complete(current: JobRecord) -> JobRecord:
        current.status = JobStatus.COMPLETED
        return current

    assert await jobs.update(request.user, request.submission_id, complete) is not None
    await message.ack()
    await pull.unsubscribe()
    stored = await jobs.get("erin", "sub-s1")
    assert stored is not None and stored.status is JobStatus.COMPLETED
    assert scorer.violations.empty()


async def test_the_scorer_cannot_publish_jobs_or_touch_tokens_quotas_or_the_catalogue(as_user: Any) -> None:
    scorer = await as_user(SCORER)
    for subject in (T.jobs_subject, T.events_subject, T.scoring_subject):
        await scorer.nc.publish(subject, b"{}")
        assert subject.lower() in await scorer.violation()
    for bucket in (T.tokens_kv_bucket, T.quotas_kv_bucket, T.issued_kv_bucket, T.benchmarks_kv_bucket):
        assert f"$KV.{bucket}".lower() in await scorer.denied_request(f"$KV.{bucket}.x", b"{}")
    for bucket in (T.tokens_kv_bucket, T.quotas_kv_bucket, T.issued_kv_bucket):
        stream = f"KV_{bucket}"
        assert stream.lower() in await scorer.denied_request(f"$JS.API.STREAM.INFO.{stream}")
    # No consumer but its own durable: not the work queue, not the events, no push consumer on a bucket.
    for stream, name in [(T.jobs_stream, RUNNER_CONSUMER), (T.events_stream, DISPATCHER_CONSUMER)]:
        assert stream.lower() in await scorer.denied_request(f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{name}",
                                                             b'{"batch": 1}')  # fmt: skip
    for stream in (f"KV_{T.jobs_kv_bucket}", f"KV_{T.benchmarks_kv_bucket}", T.scoring_stream):
        assert stream.lower() in await scorer.denied_request(f"$JS.API.CONSUMER.CREATE.{stream}", b"{}")
    await scorer.nc.subscribe(f"{inbox_prefix(RUNNER)}.>")
    assert "subscription" in await scorer.violation()
