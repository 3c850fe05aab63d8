"""The scorer service (scorer/), against a real nats-server (as its own NATS user), SeaweedFS and MLflow: a job
waiting for its scores ends completed with the platform's numbers (in its record, scores.json and its MLflow
run) or failed with a reason the user can act on; a rescore changes the scores only."""

from __future__ import annotations

import numpy as np
import pytest

from leadersboard import keys
from leadersboard.models.benchmarks import StoredPart
from leadersboard.models.records import JobStatus
from leadersboard.models.scores import ScoresFile
from leadersboard.scoring.score import SCORER_VERSION
from tests.scorer_fixtures import BENCHMARK, ScoringPlatform, informative, npy, random_scores, scores_csv
from tools.stack.procs import free_port

METRICS = ("image_AUROC", "image_F1Max", "pixel_AUROC", "pixel_AUPRO")


async def test_a_job_is_completed_with_verified_scores_in_its_record_the_store_and_mlflow(
    scoring: ScoringPlatform,
) -> None:
    await scoring.register()
    job = await scoring.job("good1")
    scoring.put_predictions("good1", informative(scoring.split))
    await scoring.request("good1")
    await scoring.score()

    record = await scoring.record("good1")
    assert record.status is JobStatus.COMPLETED, record.error
    assert record.error is None and record.finished_at is not None
    assert record.metrics == {"image_AUROC": 1.0}, "the job's self-reported metrics stay"
    scores = record.scores
    assert scores is not None and scores.scorer_version == SCORER_VERSION and scores.resamples == 200
    assert set(scores.per_category) == set(scoring.split.reference.categories)
    for name in METRICS:
        interval = getattr(scores, name)
        assert interval is not None, name
        assert 0.8 < interval.value <= 1.0 and interval.ci_low <= interval.value <= interval.ci_high, name

    stored = scoring.s3.get_object(Bucket=scoring.settings.bucket, Key=keys.scores_key("alice", "good1"))
    document = ScoresFile.model_validate_json(stored["Body"].read())
    assert document.scores == scores and (document.benchmark, document.benchmark_version) == (BENCHMARK, 1)
    assert set(document.replicates) == {*scoring.split.reference.categories, "average"}
    assert all(len(values) == 200 for metrics in document.replicates.values() for values in metrics.values())
    assert set(document.replicates["average"]) == set(METRICS)

    assert job.mlflow_run_id is not None
    run = scoring.mlflow.client().get_run(job.mlflow_run_id)
    for name in METRICS:
        interval = getattr(scores, name)
        assert run.data.metrics[f"verified_{name}"] == pytest.approx(interval.value)
        assert run.data.metrics[f"verified_{name}_ci_low"] == pytest.approx(interval.ci_low)
        assert run.data.metrics[f"verified_{name}_ci_high"] == pytest.approx(interval.ci_high)
        for category, metric_set in scores.per_category.items():
            assert run.data.metrics[f"verified_{name}.{category}"] == pytest.approx(getattr(metric_set, name).value)
    assert run.data.tags["leadersboard.benchmark"] == BENCHMARK
    assert run.data.tags["leadersboard.benchmark_version"] == "1"
    assert run.data.tags["leadersboard.scorer_version"] == SCORER_VERSION
    assert run.data.tags["leadersboard.verified"] == "true"
    assert run.data.tags["leadersboard.verification"] == "verified (public test labels)"  # the default benchmark


async def test_random_predictions_score_about_half_whatever_the_job_claimed(scoring: ScoringPlatform) -> None:
    await scoring.register()
    await scoring.job("liar")  # its metrics.json said image_AUROC 1.0
    scoring.put_predictions("liar", random_scores(scoring.split))
    await scoring.request("liar")
    await scoring.score()

    record = await scoring.record("liar")
    assert record.status is JobStatus.COMPLETED and record.scores is not None, record.error
    assert record.metrics["image_AUROC"] == 1.0
    # 2 categories of 40 + 40 images: a random AUROC's mean has a standard deviation of about 0.05.
    assert abs(record.scores.image_AUROC.value - 0.5) < 0.2
    assert record.scores.pixel_AUROC is None, "no maps, no pixel metrics"


async def test_each_kind_of_bad_predictions_fails_its_job_with_what_to_fix(scoring: ScoringPlatform) -> None:
    await scoring.register()
    ids = sorted(scoring.split.labels())
    good = informative(scoring.split)
    some_map = sorted(name for name in good if name.startswith("maps/"))[0]
    cases = {
        "missing1": ({"scores.csv": scores_csv({i: 0.5 for i in ids[3:]})}, "3 test image ids missing, e.g."),
        "unknown1": (
            {"scores.csv": scores_csv({**{i: 0.5 for i in ids}, "f" * 16: 0.5})},
            "1 ids not in the benchmark's test set, e.g. 'ffffffffffffffff'",
        ),
        "nan1": ({"scores.csv": scores_csv({**{i: 0.5 for i in ids}, ids[0]: "nan"})}, "score 'nan' is not finite"),
        "badmap1": ({**good, some_map: npy(np.zeros((8, 8), dtype=np.float64))}, "has dtype float64, expected"),
        "nocsv1": ({}, "predictions/scores.csv is missing"),
        "huge1": ({**good, "junk.bin": b"\0" * 300_000}, "over the limit of 200000 bytes"),
    }
    for sid, (files, _) in cases.items():
        await scoring.job(sid)
        scoring.put_predictions(sid, files)
        await scoring.request(sid)
    await scoring.score(max_predictions_bytes=200_000)

    for sid, (_, expected) in cases.items():
        record = await scoring.record(sid)
        assert record.status is JobStatus.FAILED and record.scores is None, sid
        assert record.error is not None and record.error.startswith("predictions rejected: "), record.error
        assert expected in record.error, record.error
        assert record.finished_at is not None
        run = scoring.mlflow.client().get_run(record.mlflow_run_id or "")
        assert run.data.tags["leadersboard.verified"] == "false"
        assert not any(name.startswith("verified_") for name in run.data.metrics)


async def test_a_damaged_or_missing_reference_fails_the_job_precisely_and_names_no_image(
    scoring: ScoringPlatform,
) -> None:
    record = scoring.split.record
    wrong = record.model_copy(
        update={"reference": StoredPart(key=record.reference.key, size=record.reference.size, sha256="0" * 64)}
    )
    await scoring.register(wrong)
    missing = record.model_copy(deep=True)
    missing.info.version = 2
    missing.reference.key = keys.benchmark_reference_key(BENCHMARK, 2)
    await scoring.catalogue.put(missing)  # registered, but its zip never reached the store
    for sid, version in (("damaged1", 1), ("missing1", 2)):
        await scoring.job(sid, version=version)
        scoring.put_predictions(sid, informative(scoring.split))
        await scoring.request(sid, version=version)
    await scoring.score()

    damaged, gone = await scoring.record("damaged1"), await scoring.record("missing1")
    assert damaged.status is JobStatus.FAILED and gone.status is JobStatus.FAILED
    assert damaged.error == (
        f"the benchmark's reference data is damaged: reference.zip has sha256 {record.reference.sha256}, "
        f"the catalogue says {'0' * 64} (admins: re-register it)"
    )
    assert gone.error == (
        "the benchmark's reference data is damaged: reference.zip is missing from the store (admins: re-register it)"
    )
    assert not any(image_id in (damaged.error + gone.error) for image_id in scoring.split.labels())


async def test_a_rescore_changes_the_scores_only_and_a_plain_request_leaves_a_finished_job_alone(
    scoring: ScoringPlatform,
) -> None:
    await scoring.register()
    await scoring.job("again1")
    scoring.put_predictions("again1", informative(scoring.split, maps=False))
    await scoring.job("fixed1")
    scoring.put_predictions("fixed1", {})  # no scores.csv: failed by scoring
    for sid in ("again1", "fixed1"):
        await scoring.request(sid)
    await scoring.score()
    first, broken = await scoring.record("again1"), await scoring.record("fixed1")
    assert first.status is JobStatus.COMPLETED and first.scores is not None and first.scores.image_AUROC.value > 0.8
    assert broken.status is JobStatus.FAILED

    # New predictions (as if the scorer or the reference changed): a plain request does nothing...
    scoring.put_predictions("again1", random_scores(scoring.split))
    scoring.put_predictions("fixed1", informative(scoring.split, maps=False))
    await scoring.request("again1")
    await scoring.score()
    assert await scoring.record("again1") == first

    # ...a rescore re-scores, and changes nothing else (not even the finish time).
    for sid in ("again1", "fixed1"):
        await scoring.request(sid, rescore=True)
    await scoring.score()
    rescored, mended = await scoring.record("again1"), await scoring.record("fixed1")
    assert rescored.scores is not None and rescored.scores != first.scores
    assert abs(rescored.scores.image_AUROC.value - 0.5) < 0.2
    assert rescored.model_dump(exclude={"scores", "verified"}) == first.model_dump(exclude={"scores", "verified"})
    assert mended.status is JobStatus.COMPLETED and mended.error is None and mended.scores is not None
    assert mended.finished_at == broken.finished_at
    assert mended.model_dump(exclude={"scores", "verified", "status", "error"}) == broken.model_dump(
        exclude={"scores", "verified", "status", "error"}
    )


async def test_an_outage_is_retried_a_bounded_number_of_times_then_fails_the_job_naming_it(
    scoring: ScoringPlatform,
) -> None:
    await scoring.register()
    await scoring.job("outage1")
    scoring.put_predictions("outage1", informative(scoring.split, maps=False))
    await scoring.request("outage1")
    await scoring.score(mlflow_tracking_uri=f"http://127.0.0.1:{free_port()}", max_deliveries=3)  # no MLflow there

    record = await scoring.record("outage1")
    assert record.status is JobStatus.FAILED and record.scores is None
    assert record.error is not None and record.error.startswith("scoring failed: 3 attempts met an outage (MLflow")


async def test_a_request_for_a_job_not_waiting_for_scores_is_dropped(scoring: ScoringPlatform) -> None:
    await scoring.register()
    await scoring.job("cancelled1", mlflow_run=False)
    await scoring.jobs.update("alice", "cancelled1", lambda r: r.model_copy(update={"status": JobStatus.CANCELLED}))
    scoring.put_predictions("cancelled1", informative(scoring.split, maps=False))
    await scoring.request("cancelled1")
    await scoring.request("nosuchjob1")
    await scoring.score()

    assert (await scoring.record("cancelled1")).status is JobStatus.CANCELLED
    scores_key = keys.scores_key("alice", "cancelled1")
    assert "Contents" not in scoring.s3.list_objects_v2(Bucket=scoring.settings.bucket, Prefix=scores_key)
