"""Deletion and retention tests' world: the real ingest app wired to a real MLflow (the scorer tests' server),
and finished submissions laid out in the real store as the dispatcher and a runner leave them."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from mlflow.tracking import MlflowClient
from pydantic import SecretStr

from ingest.settings import IngestSettings
from leadersboard import keys
from leadersboard.jobs import JobStore
from leadersboard.models.base import utcnow
from leadersboard.models.records import JobRecord, JobStatus
from leadersboard.models.submission import FileSpec
from leadersboard.s3 import S3Client, head, make_client
from leadersboard.settings import NatsSettings, S3Settings
from tests.api_fixtures import ADMIN_TOKEN
from tests.scorer_fixtures import Mlflow
from tools.stack.services import MLFLOW_ADMIN

__all__ = ["SETTLE_S", "Store", "housekeeping_settings", "store"]

SETTLE_S = 3600.0
"""A job cancelled while it ran stays undeletable this long: long enough never to pass during a test."""


def housekeeping_settings(nats: NatsSettings, s3: S3Settings, mlflow: Mlflow, **overrides: Any) -> IngestSettings:
    """Ingest as the stacks run it for deletion: MLflow's admin account, no background sweep (tests ask)."""
    return IngestSettings(
        **nats.model_dump(), **s3.model_dump(), admin_token=SecretStr(ADMIN_TOKEN),
        mlflow_upstream_url=mlflow.url, mlflow_admin_user=MLFLOW_ADMIN,
        mlflow_admin_password=SecretStr(mlflow.admin_password), retention_sweep_interval_s=None,
        deletion_settle_s=SETTLE_S, mlflow_delete_backoff_s=0, **overrides,
    )  # fmt: skip


@dataclass
class Store:
    """The bucket, the job records and MLflow, to lay out finished submissions and look at what is left."""

    s3: S3Client
    bucket: str
    jobs: JobStore
    mlflow: Mlflow
    tmp: Path

    async def submission(
        self,
        user: str,
        *,
        files: dict[str, bytes] | None = None,
        blobs: dict[str, bytes] | None = None,
        status: JobStatus = JobStatus.COMPLETED,
        finished_at: datetime | None = None,
        mlflow_run: bool = False,
        **fields: Any,
    ) -> JobRecord:
        """A submission with its own `files`, deduplicated `blobs` (path -> content), its manifest and a job log
        in its results, an MLflow run with an artifact (`mlflow_run`), and its record."""
        sid = keys.new_submission_id()
        specs = []
        for path, body in (files or {}).items():
            specs.append(FileSpec(path=path, size=len(body)))
            self.s3.put_object(Bucket=self.bucket, Key=keys.file_key(user, sid, path), Body=body)
        for path, body in (blobs or {}).items():
            spec = FileSpec(path=path, size=len(body), sha256=hashlib.sha256(body).hexdigest(), blob=True)
            specs.append(spec)
            self.s3.put_object(Bucket=self.bucket, Key=spec.store_key(user, sid), Body=body)
        self.s3.put_object(Bucket=self.bucket, Key=keys.manifest_key(user, sid), Body=b"{}")
        self.s3.put_object(Bucket=self.bucket, Key=keys.result_key(user, sid, "job.log"), Body=b"done\n")
        now = utcnow()
        record = JobRecord(
            submission_id=sid, user=user, entrypoint="main.py", config="config.yaml", files=specs, created_at=now,
            status=status, started_at=now if status is not JobStatus.PENDING else None,
            finished_at=(finished_at or now) if status.terminal else None,
            mlflow_run_id=self.run(sid) if mlflow_run else None, **fields,
        )  # fmt: skip
        assert await self.jobs.create(record)
        return record

    def run(self, name: str) -> str:
        """A run with an artifact, as a runner logs it."""
        client = self.client()
        experiment = client.get_experiment_by_name("deletion") or client.get_experiment(
            client.create_experiment("deletion")
        )
        run_id = str(client.create_run(experiment.experiment_id, run_name=name).info.run_id)
        log = self.tmp / f"{name}.log"
        log.write_text("the job's log\n")
        client.log_artifact(run_id, str(log))
        client.set_terminated(run_id)
        return run_id

    def client(self) -> MlflowClient:
        return self.mlflow.client()

    def keys_under(self, prefix: str) -> list[str]:
        listed = self.s3.list_objects_v2(Bucket=self.bucket, Prefix=prefix)
        return [item["Key"] for item in listed.get("Contents", [])]

    def exists(self, key: str) -> bool:
        return head(self.s3, self.bucket, key) is not None

    def blob(self, user: str, body: bytes) -> str:
        return keys.blob_key(user, hashlib.sha256(body).hexdigest())


@pytest.fixture
def store(s3_settings: S3Settings, jobs: JobStore, scorer_mlflow: Mlflow, mlflow_env: None, tmp_path: Path) -> Store:
    return Store(make_client(s3_settings), s3_settings.bucket, jobs, scorer_mlflow, tmp_path)
