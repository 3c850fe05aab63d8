"""Settings shared by several services, mixed into each service's own `settings.py`.

Each service reads its environment with its own prefix (`LB_INGEST_`, `LB_DISPATCHER_`, ...),
so one process's secrets are never another's by accident.
"""

from __future__ import annotations

from typing import Any

from pydantic import SecretStr
from pydantic_settings import BaseSettings

__all__ = ["NatsSettings", "S3Settings", "SigningSettings", "settings_env"]


class NatsSettings(BaseSettings):
    nats_url: str = "nats://127.0.0.1:4222"
    # Each service connects as its own NATS user with least-privilege permissions
    # (leadersboard/nats_permissions.py); None = anonymous, which the stack's and compose's servers refuse.
    nats_user: str | None = None
    nats_password: SecretStr | None = None
    events_stream: str = "LB_EVENTS"
    events_subject: str = "leadersboard.events.s3"
    jobs_stream: str = "LB_JOBS"
    jobs_subject: str = "leadersboard.jobs.run"
    jobs_kv_bucket: str = "lb_jobs"
    tokens_kv_bucket: str = "lb_tokens"
    quotas_kv_bucket: str = "lb_quotas"
    issued_kv_bucket: str = "lb_issued"
    benchmarks_kv_bucket: str = "lb_benchmarks"
    board_kv_bucket: str = "lb_board"
    """The leaderboard view: one compact entry per completed job (leadersboard/board.py), kept by the dispatcher."""
    scoring_stream: str = "LB_SCORING"
    scoring_subject: str = "leadersboard.scoring.run"
    nats_replicas: int = 1


class S3Settings(BaseSettings):
    s3_endpoint_url: str = "http://127.0.0.1:9000"
    s3_public_url: str | None = None
    s3_access_key: SecretStr = SecretStr("")
    s3_secret_key: SecretStr = SecretStr("")
    s3_region: str = "us-east-1"
    bucket: str = "leadersboard"
    reference_bucket: str = "leadersboard-reference"
    """Benchmarks' labels and masks: only the scorer reads it (and ingest presigns an admin's upload into it)."""


class SigningSettings(BaseSettings):
    manifest_secret: SecretStr = SecretStr("")
    """Shared by ingest (signs manifests) and the dispatcher (rejects edited ones); empty = unsigned (dev only)."""


def settings_env(settings: BaseSettings) -> dict[str, str]:
    """The environment variables that reproduce `settings` in a child process."""
    prefix = str(settings.model_config.get("env_prefix", ""))
    env: dict[str, str] = {}
    for name, value in settings:
        if value is None:
            continue
        env[f"{prefix}{name}".upper()] = _env_value(value)
    return env


def _env_value(value: Any) -> str:
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | dict):
        import json

        return json.dumps(value)
    return str(value)
