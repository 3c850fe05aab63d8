from __future__ import annotations

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from leadersboard.settings import NatsSettings, S3Settings, SigningSettings

__all__ = ["IngestSettings"]


class IngestSettings(NatsSettings, S3Settings, SigningSettings):
    model_config = SettingsConfigDict(env_prefix="LB_INGEST_")

    host: str = "127.0.0.1"
    port: int = 8000
    presign_expiry_s: int = 3600
    max_file_bytes: int = 5 * 1024**3
    max_submission_bytes: int = 20 * 1024**3
    multipart_threshold_bytes: int = Field(default=64 * 1024**2, ge=5 * 1024**2)
    """Files of at least this size are offered as presigned multipart uploads (with a single PUT as alternative)."""
    multipart_part_bytes: int = Field(default=16 * 1024**2, ge=5 * 1024**2)
    """Part size of multipart uploads (S3: at least 5 MiB, at most 10,000 parts; raised for huge files)."""
    admin_token: SecretStr | None = None
    admin_user: str = "admin"
    # The authenticating MLflow proxy (ingest/mlflow_proxy.py): users reach MLflow only through it.
    mlflow_proxy_port: int | None = None
    """The public MLflow port (5010 in docker-compose); None: no proxy."""
    mlflow_upstream_url: str = "http://127.0.0.1:5011"
    """MLflow itself (its basic-auth app), reachable by ingest only."""
    mlflow_admin_user: str = "admin"
    mlflow_admin_password: SecretStr | None = None
    """MLflow's admin account: the proxy forwards users' requests with it."""
    mlflow_runner_user: str = "runner"
    """The runners' MLflow account: its requests pass the proxy with their own credentials (remote GPU hosts)."""
    mlflow_runner_password: SecretStr | None = None
    """If set, ingest creates the runners' account (or sets its password) in MLflow at start."""
    mlflow_scorer_user: str = "scorer"
    """The scorer's MLflow account: it logs a benchmark job's verified scores to the job's run."""
    mlflow_scorer_password: SecretStr | None = None
    """If set, ingest creates the scorer's account (or sets its password) in MLflow at start."""
    mlflow_token_cache_s: float = Field(default=5.0, ge=0, le=10)
    """A token the proxy verified is trusted this long: a revoked token works at most this much longer."""
    mlflow_owner_cache_s: float = Field(default=30.0, ge=0)
    """How long the proxy remembers a run's owner (the `user` tag; only the runner and admins set it)."""
    mlflow_setup_timeout_s: float = 300.0
    """How long ingest keeps trying to create the runners' account while MLflow starts."""
    # Deletion and retention (ingest/deletion.py, ingest/retention.py).
    mlflow_delete_attempts: int = Field(default=4, ge=1, le=10)
    """Tries of each MLflow request of a deletion while MLflow is unreachable or answers 5xx."""
    mlflow_delete_backoff_s: float = Field(default=0.5, ge=0, le=30)
    mlflow_delete_timeout_s: float = Field(default=30.0, gt=0)
    deletion_settle_s: float = Field(default=120.0, ge=0)
    """A job cancelled while it ran may be deleted this long after: its runner stops and writes its last log."""
    retention_sweep_interval_s: float | None = Field(default=3600.0, gt=0)
    """How often the retention sweep runs in the background; None: only when an admin asks (`retention sweep`)."""
    abandoned_upload_s: float = Field(default=24 * 3600.0, gt=0)
    """Multipart uploads begun longer ago, and blobs no submission uses written longer ago, are removed by the
    sweep. Longer than `presign_expiry_s`, so that no upload still allowed is cut short."""
    orphan_upload_grace_s: float = Field(default=24 * 3600.0, gt=0)
    """The sweep deletes the files of a submission whose manifest never came, and results written for a submission
    that has no record (a late write after its deletion), once nothing under them was written for this long.
    Longer than `presign_expiry_s`: a client may still upload until then."""
    replicate_cache_mb: int = Field(default=64, ge=1)
    """Memory for the bootstrap replicates of the rows verified boards show (ingest/replicates.py)."""
    cors_origins: list[str] = ["*"]

    @model_validator(mode="after")
    def _uploads_end_before_abandoned(self) -> IngestSettings:
        for name in ("abandoned_upload_s", "orphan_upload_grace_s"):
            if getattr(self, name) <= self.presign_expiry_s:
                raise ValueError(f"{name}: must be longer than presign_expiry_s (uploads still allowed)")
        return self

    @model_validator(mode="after")
    def _proxy_has_an_account(self) -> IngestSettings:
        if self.mlflow_proxy_port is not None and self.mlflow_admin_password is None:
            raise ValueError("mlflow_admin_password: required with mlflow_proxy_port (LB_INGEST_MLFLOW_ADMIN_PASSWORD)")
        return self
