from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["FrontendSettings"]


class FrontendSettings(BaseSettings):
    """The web page's settings (`LB_FRONTEND_*`). Every URL here is one the BROWSER uses."""

    model_config = SettingsConfigDict(env_prefix="LB_FRONTEND_")

    host: str = "127.0.0.1"
    port: int = 8501
    ingest_public_url: str = "http://127.0.0.1:8000"
    mlflow_public_url: str = "http://127.0.0.1:5010"
    store_console_url: str | None = Field(
        default=None,
        description="A store console behind its own sign-in, for admins (compose: the MinIO console on port 9001); "
        "none locally. Never the S3 endpoint: it is not for people. Users browse their runs' files in MLflow.",
    )
    jobs_refresh_s: float = Field(default=5.0, gt=0, description="How often the job list is reloaded (the guide: 5 s).")
    log_poll_s: float = Field(default=2.0, gt=0, description="How often a running job's log is polled.")
    jobs_page_size: int = Field(default=50, ge=1, le=1000, description="Jobs per page of the job list (`limit`).")
    default_metric: str = "image_AUROC"
    upload_concurrency: int = Field(default=4, ge=1, le=16, description="Parallel PUTs (files and parts) per browser.")
    upload_memory_bytes: int = Field(
        default=1024**3,
        ge=0,
        le=4 * 1024**3,
        description="Bytes of hashed files a browser keeps from its checksum read to send them without reading them "
        "again (docs/uploads.md); 0: always read the file again.",
    )
    language: Literal["en", "ja"] = Field(default="en", description="Language of the page until the user picks one.")
