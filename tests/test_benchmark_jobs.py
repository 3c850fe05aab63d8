"""Jobs on an official benchmark, through real components (ingest's app, the dispatcher's intake, the runner's
whole job flow with a real nats-server, SeaweedFS and the sandbox).

- Ingest resolves the latest ready version into the signed manifest; the dispatcher copies it into the record.
- The runner mounts the public part read-only at `benchmark/`, requires `predictions/scores.csv`, leaves the job
  `running` with `scoring_requested_at` and asks the scorer through the scoring stream.
- The reference part (labels, masks, original names) is nowhere a job can look.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import httpx
import numpy as np
import pytest
from nats.aio.client import Client as NATS
from PIL import Image
from pydantic import SecretStr

from dispatcher.intake import Intake
from dispatcher.settings import DispatcherSettings
from dispatcher.view import JobView
from gpu_runner.execute import ExecResult
from gpu_runner.results import NO_PREDICTIONS
from gpu_runner.sandbox import Limits
from gpu_runner.service import run
from gpu_runner.settings import RunnerSettings
from gpu_runner.verdict import Verdict, judge
from ingest.settings import IngestSettings
from leadersboard import keys
from leadersboard.benchmarks.catalogue import BenchmarkCatalogue
from leadersboard.benchmarks.layouts import open_benchmark
from leadersboard.benchmarks.package import pack
from leadersboard.benchmarks.split import benchmark_info, write_split
from leadersboard.jobs import JobStore
from leadersboard.keys import ManifestKey
from leadersboard.models.api import CreateSubmissionResponse, PresignedRequest
from leadersboard.models.base import utcnow
from leadersboard.models.benchmarks import BenchmarkInfo, BenchmarkRecord, CategorySummary, StoredPart
from leadersboard.models.queue import JobMessage, ScoreRequest
from leadersboard.models.records import JobRecord, JobStatus
from leadersboard.models.submission import FileSpec, Manifest
from leadersboard.quotas import QuotaStore
from leadersboard.s3 import make_client
from leadersboard.settings import NatsSettings, S3Settings
from leadersboard.signing import sign_manifest, signature_valid
from leadersboard.tokens import TokenStore
from tests.api_fixtures import ADMIN_TOKEN, Api, bearer
from tests.sandbox_fixtures import runner_settings

SECRET = SecretStr("benchmark-test-secret")
NAME = "toy"
SHA = "0" * 64


@pytest.fixture
def settings(nats_settings: NatsSettings, s3_settings: S3Settings) -> IngestSettings:
    """Ingest's, signing manifests (tests/api_fixtures.py's leaves signing off)."""
    return IngestSettings(
        **nats_settings.model_dump(), **s3_settings.model_dump(), admin_token=SecretStr(ADMIN_TOKEN),
        manifest_secret=SECRET,
    )  # fmt: skip


async def catalogue_of(nc: NATS) -> BenchmarkCatalogue:
    return BenchmarkCatalogue(await nc.jetstream().key_value(NatsSettings().benchmarks_kv_bucket))


def a_record(version: int, *, ready: bool = True, public: StoredPart | None = None) -> BenchmarkRecord:
    info = BenchmarkInfo(
        name=NAME, version=version, layout="mvtec_ad", public_sha256=SHA, reference_sha256=SHA,
        categories={"widget": CategorySummary(train=4, test=4, masks=True)},
    )  # fmt: skip
    public = public or StoredPart(key=keys.benchmark_public_key(NAME, version), size=1, sha256=SHA)
    reference = StoredPart(key=keys.benchmark_reference_key(NAME, version), size=1, sha256=SHA)
    return BenchmarkRecord(info=info, status="ready" if ready else "uploading", public=public, reference=reference,
                           created_by="admin")  # fmt: skip


# --- ingest and the dispatcher ---------------------------------------------------------------------------------


async def test_a_submission_on_a_benchmark_is_signed_with_its_latest_ready_version_and_recorded_with_it(
    api: Api, nc: NATS, alice: str, tokens: TokenStore, jobs: JobStore, settings: IngestSettings
) -> None:
    catalogue = await catalogue_of(nc)
    for version, ready in ((1, True), (2, True), (3, False)):  # v3 is still uploading: not offered
        await catalogue.create(a_record(version, ready=ready))
    files = {"main.py": b"print('hi')\n", "config.yaml": b"a: 1\n"}
    body = {"files": [{"path": p, "size": len(d)} for p, d in files.items()], "benchmark": NAME}
    response = await api.post("/api/v1/submissions", json=body, headers=bearer(alice))
    assert response.status == 201, await response.text()
    created = CreateSubmissionResponse.model_validate(await response.json())
    await put_all(created, files)

    s3 = make_client(settings)
    stored = s3.get_object(Bucket=settings.bucket, Key=keys.manifest_key("alice", created.submission_id))
    manifest = Manifest.model_validate_json(stored["Body"].read())
    assert (manifest.benchmark, manifest.benchmark_version) == (NAME, 2)
    assert signature_valid(manifest, SECRET)
    assert not signature_valid(manifest.model_copy(update={"benchmark_version": 1}), SECRET), "the version is signed"

    intake_settings = DispatcherSettings(**settings.model_dump(include=set(DispatcherSettings.model_fields)))
    quotas = QuotaStore(await nc.jetstream().key_value(settings.quotas_kv_bucket))
    intake = Intake(intake_settings, jobs, quotas, tokens, s3, JobView())
    await intake.dispatch(ManifestKey("alice", created.submission_id))
    record = await jobs.get("alice", created.submission_id)
    assert record is not None and record.status is JobStatus.PENDING, record and record.error
    assert (record.benchmark, record.benchmark_version) == (NAME, 2)


@pytest.mark.parametrize("name", ["nope", "half"])
async def test_a_benchmark_that_is_unknown_or_not_ready_is_refused_naming_the_field(
    api: Api, nc: NATS, alice: str, name: str
) -> None:
    record = a_record(1, ready=False)
    record.info.name = "half"  # only an uploading version
    await (await catalogue_of(nc)).create(record)
    body = {"files": [{"path": "main.py", "size": 1}, {"path": "config.yaml", "size": 1}], "benchmark": name}
    response = await api.post("/api/v1/submissions", json=body, headers=bearer(alice))
    assert response.status == 400
    message = (await response.json())["error"]["message"]
    assert message == f"benchmark: no benchmark named {name} (GET /api/v1/benchmarks lists them)"


def test_manifests_without_a_benchmark_sign_as_before_and_keep_verifying() -> None:
    files = [FileSpec(path="main.py", size=1), FileSpec(path="config.yaml", size=1)]
    plain = Manifest(submission_id="a" * 12, user="u", entrypoint="main.py", config="config.yaml", files=files,
                     created_at=utcnow())  # fmt: skip
    signed = sign_manifest(plain, SECRET).model_dump_json()
    assert "benchmark" not in signed  # the bytes (hence the signature) of a manifest from before benchmarks
    assert signature_valid(Manifest.model_validate_json(signed), SECRET)


async def put_all(created: CreateSubmissionResponse, files: dict[str, bytes]) -> None:
    """What the client does: every file, then the manifest, to their presigned URLs."""
    async with httpx.AsyncClient() as client:
        for item in created.uploads:
            assert isinstance(item, PresignedRequest) and item.path is not None  # small files: one PUT each
            sent = await client.put(item.url, content=files[item.path], headers=item.headers)
            assert sent.status_code == 200, sent.text
        manifest = created.manifest
        sent = await client.put(manifest.url, content=(manifest.body or "").encode(), headers=manifest.headers)
        assert sent.status_code == 200, sent.text


# --- the verdict ------------------------------------------------------------------------------------------------

LIMITS = Limits(memory_bytes=1024**3, max_processes=64, max_open_files=8192, max_file_bytes=1024**2)


def benchmark_verdict(output: Path, *, max_predictions_bytes: int = 1024) -> Verdict:
    result = ExecResult(exit_code=0, wall_time_s=1.0)
    return judge(result, output, timeout_s=3.0, limits=LIMITS, max_metrics_bytes=4096,
                 max_predictions_bytes=max_predictions_bytes)  # fmt: skip


def test_a_benchmark_job_needs_its_scores_not_a_metrics_json(tmp_path: Path) -> None:
    assert benchmark_verdict(tmp_path) == Verdict.failed(NO_PREDICTIONS)
    (tmp_path / "predictions").mkdir()
    (tmp_path / "predictions" / "scores.csv").write_text("image_id,score\n")
    assert benchmark_verdict(tmp_path) == Verdict(JobStatus.COMPLETED)  # metrics.json is optional
    (tmp_path / "metrics.json").write_text(json.dumps({"metrics": {"image_AUROC": 1.0}}))
    verdict = benchmark_verdict(tmp_path)
    assert verdict.status is JobStatus.COMPLETED and verdict.metrics is not None  # kept, as self-reported
    assert verdict.metrics.metrics == {"image_AUROC": 1.0}
    (tmp_path / "metrics.json").write_text("{")
    assert (benchmark_verdict(tmp_path).error or "").startswith("metrics.json is malformed: ")  # if there, valid


def test_predictions_that_are_links_or_too_large_fail_the_benchmark_job(tmp_path: Path) -> None:
    predictions = tmp_path / "predictions"
    predictions.mkdir()
    (predictions / "scores.csv").symlink_to("/etc/passwd")
    reason = "predictions/scores.csv is a symbolic link (or in one); write a regular file"
    assert benchmark_verdict(tmp_path) == Verdict.failed(reason)
    (predictions / "scores.csv").unlink()
    (predictions / "scores.csv").write_text("image_id,score\n")
    (predictions / "maps").mkdir()
    (predictions / "maps" / "a.npy").write_bytes(b"x" * 2000)
    size = 2000 + len("image_id,score\n")
    verdict = benchmark_verdict(tmp_path, max_predictions_bytes=2000)
    assert verdict == Verdict.failed(f"the predictions directory is {size} bytes; the limit is 2000 bytes")


# --- the runner -------------------------------------------------------------------------------------------------

needs_sandbox = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed")

TAG = "zq" + os.urandom(3).hex()
"""In every original test image name: a name a job must never find."""
ORIGINAL_TEST_NAMES = [f"{TAG}_good_0", f"{TAG}_good_1", f"{TAG}_crack_0", f"{TAG}_crack_1"]


def write_source(root: Path) -> Path:
    """A tiny MVTec AD-style benchmark: one category, four train images, two good and two cracked test images."""
    rng = np.random.default_rng(0)

    def image(path: Path, mask: bool = False) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        pixels = np.zeros((16, 16), np.uint8) if mask else rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)
        if mask:
            pixels[4:8, 4:8] = 255
        Image.fromarray(pixels).save(path)

    category = root / "widget"
    for i in range(4):
        image(category / "train" / "good" / f"train_{i}.png")
    for stem in ORIGINAL_TEST_NAMES:
        defect = "crack" if "crack" in stem else "good"
        image(category / "test" / defect / f"{stem}.png")
        if defect != "good":
            image(category / "ground_truth" / defect / f"{stem}_mask.png", mask=True)
    return root


@pytest.fixture(scope="module")
def public_zip(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, BenchmarkInfo]:
    """The benchmark split and its public part packed, as `benchmark add` does. Everything stays in the test's
    /tmp, which the sandbox replaces: only what the runner fetches can reach a job."""
    root = tmp_path_factory.mktemp("benchmark")
    with open_benchmark(write_source(root / "source")) as source:
        split = write_split(source, root / "public", root / "reference", benchmark=NAME, benchmark_version=1)
        info = benchmark_info(source, split)
    pack(root / "public", root / "public.zip")
    return root / "public.zip", info


@pytest.fixture(scope="module")
def mlflow_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


@pytest.fixture
async def runner(
    nc: NATS, nats_settings: NatsSettings, s3_settings: S3Settings, data_root: Path, mlflow_uri: str,
    public_zip: tuple[Path, BenchmarkInfo], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> RunnerSettings:  # fmt: skip
    """The benchmark registered ready (its public part in the main bucket), and a burst runner's settings."""
    monkeypatch.chdir(tmp_path)  # MLflow's local artifact store
    archive, info = public_zip
    data = archive.read_bytes()
    key = keys.benchmark_public_key(NAME, 1)
    make_client(s3_settings).put_object(Bucket=s3_settings.bucket, Key=key, Body=data)
    public = StoredPart(key=key, size=len(data), sha256=hashlib.sha256(data).hexdigest())
    record = a_record(1, public=public)
    record.info = info
    await (await catalogue_of(nc)).create(record)
    return runner_settings(
        data_root, **nats_settings.model_dump(), **s3_settings.model_dump(), mlflow_tracking_uri=mlflow_uri,
        dataset_cache_dir=data_root / f"dataset-cache-{os.urandom(4).hex()}", burst=True, job_timeout_s=600.0,
    )  # fmt: skip


async def run_benchmark_job(nc: NATS, settings: RunnerSettings, main: str) -> tuple[JobRecord, str]:
    """One benchmark job through the runner's whole flow: claimed from the queue, run, recorded, acked."""
    sid = os.urandom(8).hex()
    s3 = make_client(settings)
    files = {"main.py": main.encode(), "config.yaml": b"a: 1\n"}
    specs = [FileSpec(path=path, size=len(data)) for path, data in files.items()]
    for spec in specs:
        s3.put_object(Bucket=settings.bucket, Key=spec.store_key("u", sid), Body=files[spec.path])
    js = nc.jetstream()
    jobs = JobStore(await js.key_value(settings.jobs_kv_bucket))
    await jobs.create(
        JobRecord(
            submission_id=sid,
            user="u",
            entrypoint="main.py",
            config="config.yaml",
            files=specs,
            created_at=utcnow(),
            benchmark=NAME,
            benchmark_version=1,
        )
    )
    await js.publish(settings.jobs_subject, JobMessage(submission_id=sid, user="u").model_dump_json().encode())
    await run(settings)  # burst: returns once the queue is empty
    record = await jobs.get("u", sid)
    assert record is not None
    log = s3.get_object(Bucket=settings.bucket, Key=keys.result_key("u", sid, "job.log"))["Body"].read().decode()
    return record, log


async def score_requests(nc: NATS, settings: RunnerSettings) -> list[ScoreRequest]:
    js = nc.jetstream()
    if (await js.stream_info(settings.scoring_stream)).state.messages == 0:
        return []
    subscription = await js.pull_subscribe(settings.scoring_subject, stream=settings.scoring_stream)
    messages = await subscription.fetch(10, timeout=5)
    return [ScoreRequest.model_validate_json(message.data) for message in messages]


WRITES_PREDICTIONS = """
import argparse, json, pathlib
p = argparse.ArgumentParser(); p.add_argument("--config"); p.add_argument("--output"); a = p.parse_args()
index = json.loads(pathlib.Path("benchmark/index.json").read_text())
rows = [n.rsplit(".", 1)[0] + ",0.5" for c in index["categories"].values() for n in c["test"]]
out = pathlib.Path(a.output, "predictions"); out.mkdir()
(out / "scores.csv").write_text("image_id,score\\n" + "\\n".join(rows) + "\\n")
"""

LISTS_AND_WRITES = """
import os, pathlib
print("LISTING", sorted(str(p) for p in pathlib.Path("benchmark").rglob("*")))
try:
    open("benchmark/index.json", "w").write("{}")
except OSError as exc:
    print("BENCHMARK WRITE:", exc.strerror)
"""

SEARCHES_EVERYTHING = f"""
import os
wanted_files = {{"reference.json", "reference.zip"}}
wanted_dirs = {{"masks", "ground_truth"}}
names = {ORIGINAL_TEST_NAMES!r}
seen = 0
for top, dirs, files in os.walk("/", onerror=lambda e: None):
    dirs[:] = [d for d in dirs if os.path.join(top, d) not in ("/proc", "/sys", "/dev")]
    for name in dirs + files:
        seen += 1
        if name in wanted_files or name in wanted_dirs or any(n in name for n in names):
            print("FOUND", os.path.join(top, name))
    if seen > 5_000_000:  # bounded: the host's whole tree is far smaller
        break
print("SEARCHED", seen)
"""


@needs_sandbox
async def test_a_benchmark_job_sees_the_public_part_read_only_and_its_predictions_go_to_the_scorer(
    nc: NATS, runner: RunnerSettings, public_zip: tuple[Path, BenchmarkInfo]
) -> None:
    record, log = await run_benchmark_job(nc, runner, LISTS_AND_WRITES + WRITES_PREDICTIONS)
    assert record.status is JobStatus.RUNNING, record.error
    assert record.scoring_requested_at is not None and record.finished_at is None and record.error is None
    listing = next(line for line in log.splitlines() if line.startswith("LISTING"))
    assert "benchmark/index.json" in listing and "benchmark/widget/train/good/train_0.png" in listing
    assert not any(name in listing for name in ORIGINAL_TEST_NAMES), "test images are under opaque ids"
    assert "BENCHMARK WRITE: Read-only file system" in log
    assert f"benchmark {NAME} v1: downloaded and extracted into the dataset cache" in log
    requests = await score_requests(nc, runner)
    assert [(r.user, r.submission_id, r.benchmark, r.benchmark_version, r.rescore) for r in requests] == [
        ("u", record.submission_id, NAME, 1, False)
    ]
    assert requests[0].requested_at == record.scoring_requested_at
    s3 = make_client(runner)
    key = keys.result_key("u", record.submission_id, "output/predictions/scores.csv")
    scores = s3.get_object(Bucket=runner.bucket, Key=key)["Body"].read().decode()
    assert scores.startswith("image_id,score\n") and scores.count("\n") == 1 + len(ORIGINAL_TEST_NAMES)


@needs_sandbox
@pytest.mark.parametrize(
    ("main", "limit", "reason"),
    [
        ("(pathlib.Path(a.output) / 'metrics.json').write_text('{\"metrics\": {\"image_AUROC\": 1.0}}')\n",
         None, NO_PREDICTIONS),
        (WRITES_PREDICTIONS + "(out / 'big.npy').write_bytes(b'x' * 5000)\n",
         4096, "the predictions directory is {size} bytes; the limit is 4096 bytes"),
    ],
    ids=["no scores.csv", "predictions over the bound"],
)  # fmt: skip
async def test_a_benchmark_job_without_usable_predictions_fails_with_the_reason_and_is_not_scored(
    nc: NATS, runner: RunnerSettings, main: str, limit: int | None, reason: str
) -> None:
    prelude = "import argparse, pathlib\np = argparse.ArgumentParser(); p.add_argument('--config'); "
    prelude += "p.add_argument('--output'); a = p.parse_args()\n"
    settings = runner if limit is None else runner.model_copy(update={"max_predictions_bytes": limit})
    record, _ = await run_benchmark_job(nc, settings, prelude + main)
    assert record.status is JobStatus.FAILED
    assert record.scoring_requested_at is None
    size = len("image_id,score\n") + sum(len(f"{'0' * 16},0.5\n") for _ in ORIGINAL_TEST_NAMES) + 5000
    assert record.error == reason.format(size=size)
    assert await score_requests(nc, runner) == []


@needs_sandbox
async def test_a_job_searching_the_whole_filesystem_finds_no_label_mask_or_original_name(
    nc: NATS, runner: RunnerSettings
) -> None:
    record, log = await run_benchmark_job(nc, runner, SEARCHES_EVERYTHING + WRITES_PREDICTIONS)
    assert record.status is JobStatus.RUNNING, record.error
    found = [line for line in log.splitlines() if line.startswith("FOUND")]
    assert found == []
    searched = int(next(line for line in log.splitlines() if line.startswith("SEARCHED")).split()[1])
    assert searched > 10_000, "the search walked the job's whole filesystem"
