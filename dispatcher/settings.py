from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from leadersboard.settings import NatsSettings, S3Settings

__all__ = ["DispatcherSettings"]


class DispatcherSettings(NatsSettings, S3Settings):
    model_config = SettingsConfigDict(env_prefix="LB_DISPATCHER_")

    consumer_name: str = "dispatcher"
    ack_wait_s: float = 30.0
    fetch_batch: int = 64
    fetch_timeout_s: float = 1.0
    max_manifest_bytes: int = 1024 * 1024
    burst: bool = False
    """Exit once the event stream is drained (for tests and one-off catch-ups)."""
