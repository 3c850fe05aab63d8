"""A registered benchmark, benchmark jobs waiting for their scores, an MLflow server, and the scorer run in burst
mode, for tests/test_scorer.py. Everything real: nats-server (per test), SeaweedFS and MLflow."""

from __future__ import annotations

import asyncio
import importlib.util
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from mlflow.tracking import MlflowClient
from nats.aio.client import Client as NATS
from PIL import Image
from pydantic import SecretStr

from leadersboard import keys
from leadersboard.benchmarks.catalogue import BenchmarkCatalogue
from leadersboard.benchmarks.layouts import read_benchmark
from leadersboard.benchmarks.package import pack
from leadersboard.benchmarks.split import benchmark_info, write_split
from leadersboard.jobs import JobStore
from leadersboard.mlflow_auth import ensure_user
from leadersboard.models.base import utcnow
from leadersboard.models.benchmarks import BenchmarkRecord, Reference, StoredPart
from leadersboard.models.queue import ScoreRequest
from leadersboard.models.records import JobRecord, JobStatus
from leadersboard.nats_permissions import SCORER
from leadersboard.s3 import S3Client, ensure_bucket, make_client
from leadersboard.settings import S3Settings
from scorer.service import run
from scorer.settings import ScorerSettings
from scorer.store import predictions_prefix
from tools.stack.procs import free_port
from tools.stack.services import MLFLOW_ADMIN, NatsServer, Seaweed, start_mlflow

ROOT = Path(__file__).resolve().parents[1]
BENCHMARK = "synth"


@dataclass(frozen=True)
class Split:
    """The synthetic benchmark's reference part, packed: what an admin's `benchmark add` would store."""

    reference: Reference
    reference_dir: Path
    zip_path: Path
    record: BenchmarkRecord
    """Its catalogue record (version 1, ready)."""

    def labels(self) -> dict[str, int]:
        return {image.id: image.label for c in self.reference.categories.values() for image in c.images}

    def mask(self, image_id: str) -> np.ndarray:
        image = next(i for c in self.reference.categories.values() for i in c.images if i.id == image_id)
        if image.mask is None:
            return np.zeros((image.height, image.width), dtype=bool)
        return np.asarray(Image.open(self.reference_dir / image.mask)) > 0


@dataclass(frozen=True)
class Mlflow:
    url: str
    admin_password: str
    scorer_password: str

    def client(self) -> MlflowClient:
        """The admin's client (credentials in the URI, as tests/stack_fixtures.py does)."""
        return MlflowClient(self.url.replace("http://", f"http://{MLFLOW_ADMIN}:{self.admin_password}@", 1))


def _make_benchmark_module() -> Any:
    path = ROOT / "examples" / "padim-benchmark" / "make_benchmark.py"
    spec = importlib.util.spec_from_file_location("make_benchmark", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def benchmark_split(tmp_path_factory: pytest.TempPathFactory) -> Split:
    """Two categories of 40 good and 40 defective 16x16 test images: enough for random scores to land near 0.5."""
    root = tmp_path_factory.mktemp("benchmark")
    source_dir = _make_benchmark_module().make_benchmark(
        root / "source", categories=2, train=2, test_good=40, test_defective=40, size=16, seed=3
    )
    source = read_benchmark(source_dir)
    written = write_split(source, root / "public", root / "reference", benchmark=BENCHMARK, benchmark_version=1)
    zip_path = root / "reference.zip"
    part = pack(root / "reference", zip_path)
    record = BenchmarkRecord(
        info=benchmark_info(source, written),
        status="ready",
        public=StoredPart(key=keys.benchmark_public_key(BENCHMARK, 1), size=1, sha256="0" * 64),  # unused here
        reference=StoredPart(key=keys.benchmark_reference_key(BENCHMARK, 1), size=part.size, sha256=part.sha256),
        created_by="admin",
    )
    return Split(written.reference, root / "reference", zip_path, record)


@pytest.fixture(scope="module")
def scorer_mlflow(seaweed: Seaweed, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mlflow]:
    s3 = seaweed.settings(bucket="mlflow-" + secrets.token_hex(4))
    ensure_bucket(make_client(s3), s3.bucket)
    port, admin_password = free_port(), secrets.token_urlsafe(16)
    process = start_mlflow(
        tmp_path_factory.mktemp("mlflow"), port=port, s3=s3, admin_password=admin_password,
        secret_key=secrets.token_hex(16),
    ).wait_ready(180)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    scorer_password = secrets.token_urlsafe(16)
    ensure_user(url, admin=(MLFLOW_ADMIN, admin_password), username="scorer", password=scorer_password)
    yield Mlflow(url, admin_password, scorer_password)
    process.stop()


@pytest.fixture
def mlflow_env(monkeypatch: pytest.MonkeyPatch, scorer_mlflow: Mlflow) -> None:
    """MLflow's client variables, which the scorer's `run` sets in this process: set first, so that monkeypatch
    restores them after the test."""
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", MLFLOW_ADMIN)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", scorer_mlflow.admin_password)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")


@dataclass
class ScoringPlatform:
    """One test's platform: the scorer's settings, and the stores its work shows in."""

    settings: ScorerSettings
    nc: NATS
    jobs: JobStore
    catalogue: BenchmarkCatalogue
    s3: S3Client
    split: Split
    mlflow: Mlflow
    published: list[ScoreRequest] = field(default_factory=list)

    async def register(self, record: BenchmarkRecord | None = None) -> None:
        """The benchmark in the catalogue, its reference zip in the reference bucket."""
        record = record or self.split.record
        self.s3.upload_file(str(self.split.zip_path), self.settings.reference_bucket, record.reference.key)
        await self.catalogue.put(record)

    async def job(self, sid: str, *, version: int = 1, mlflow_run: bool = True, **fields: Any) -> JobRecord:
        """A benchmark job whose run ended well: running, waiting for its scores (a run of its own in MLflow)."""
        now = utcnow()
        run_id = None
        if mlflow_run:
            client = self.mlflow.client()
            experiment = client.get_experiment_by_name(BENCHMARK) or client.get_experiment(
                client.create_experiment(BENCHMARK)
            )
            run_id = client.create_run(experiment.experiment_id, run_name=sid).info.run_id
        record = JobRecord(
            submission_id=sid, user="alice", entrypoint="main.py", config="config.yaml", created_at=now,
            started_at=now, heartbeat_at=now, runner="runner-a", attempts=1, status=JobStatus.RUNNING,
            benchmark=BENCHMARK, benchmark_version=version, scoring_requested_at=now, mlflow_run_id=run_id,
            metrics={"image_AUROC": 1.0}, **fields,
        )  # fmt: skip
        assert await self.jobs.create(record)
        return record

    def put_predictions(self, sid: str, files: dict[str, bytes]) -> None:
        """Replace the job's stored predictions with `files` (paths relative to `predictions/`)."""
        prefix = predictions_prefix("alice", sid)
        listed = self.s3.list_objects_v2(Bucket=self.settings.bucket, Prefix=prefix).get("Contents", [])
        for item in listed:
            self.s3.delete_object(Bucket=self.settings.bucket, Key=item["Key"])
        for name, body in files.items():
            self.s3.put_object(Bucket=self.settings.bucket, Key=prefix + name, Body=body)

    async def request(self, sid: str, *, rescore: bool = False, version: int = 1) -> None:
        request = ScoreRequest(
            user="alice", submission_id=sid, benchmark=BENCHMARK, benchmark_version=version, requested_at=utcnow(),
            rescore=rescore,
        )  # fmt: skip
        await self.nc.jetstream().publish(self.settings.scoring_subject, request.model_dump_json().encode())

    async def score(self, **overrides: Any) -> None:
        """The scorer, as its own NATS user, until no request is left."""
        await asyncio.wait_for(run(self.settings.model_copy(update=overrides), stop=asyncio.Event()), 300)

    async def record(self, sid: str) -> JobRecord:
        found = await self.jobs.get("alice", sid)
        assert found is not None
        return found


@pytest.fixture
async def scoring(
    nats_server: NatsServer, nc: NATS, s3_settings: S3Settings, benchmark_split: Split, scorer_mlflow: Mlflow,
    mlflow_env: None,
    tmp_path: Path,
) -> ScoringPlatform:  # fmt: skip
    s3 = s3_settings.model_copy(update={"reference_bucket": "r" + secrets.token_hex(6)})
    client = make_client(s3)
    ensure_bucket(client, s3.reference_bucket)
    settings = ScorerSettings(
        **nats_server.settings(SCORER).model_dump(), **s3.model_dump(), work_dir=tmp_path / "scorer",
        mlflow_tracking_uri=scorer_mlflow.url, mlflow_password=SecretStr(scorer_mlflow.scorer_password), burst=True,
        resamples=200, retry_delay_s=0.1, mlflow_http_max_retries=0,
    )  # fmt: skip
    js = nc.jetstream()
    jobs = JobStore(await js.key_value(settings.jobs_kv_bucket))
    catalogue = BenchmarkCatalogue(await js.key_value(settings.benchmarks_kv_bucket))
    return ScoringPlatform(settings, nc, jobs, catalogue, client, benchmark_split, scorer_mlflow)


# --- predictions -----------------------------------------------------------------------------------------------


def scores_csv(scores: dict[str, float | str]) -> bytes:
    return ("image_id,score\n" + "".join(f"{i},{s}\n" for i, s in scores.items())).encode()


def npy(array: np.ndarray) -> bytes:
    import io

    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def informative(split: Split, *, maps: bool = True, seed: int = 0) -> dict[str, bytes]:
    """Predictions that know the labels (and masks) up to some noise: they score high."""
    rng = np.random.default_rng(seed)
    labels = split.labels()
    files = {"scores.csv": scores_csv({i: round(label + rng.normal(0, 0.3), 5) for i, label in labels.items()})}
    if maps:
        for image_id in labels:
            mask = split.mask(image_id)
            files[f"maps/{image_id}.npy"] = npy((mask + rng.normal(0, 0.2, mask.shape)).astype(np.float16))
    return files


def random_scores(split: Split, seed: int = 1) -> dict[str, bytes]:
    rng = np.random.default_rng(seed)
    return {"scores.csv": scores_csv({i: round(float(rng.random()), 6) for i in split.labels()})}
