from __future__ import annotations

from pydantic import Field, SecretStr
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
    mlflow_public_url: str = "http://127.0.0.1:5010"
    cors_origins: list[str] = ["*"]
