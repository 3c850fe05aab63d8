from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["FrontendSettings"]


class FrontendSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LB_FRONTEND_")

    host: str = "127.0.0.1"
    port: int = 8501
    ingest_public_url: str = "http://127.0.0.1:8000"
    mlflow_public_url: str = "http://127.0.0.1:5010"
    store_console_url: str | None = None
