from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from tools.stack.supervise import RestartPolicy
from tools.stack.up import StackPorts

__all__ = ["StackSettings"]


class StackSettings(BaseSettings):
    """`leadersboard up`: where the data lives and which ports it takes (`LB_STACK_INGEST_PORT=8080`, ...)."""

    model_config = SettingsConfigDict(env_prefix="LB_STACK_")

    data_dir: Path = Path(".leadersboard")
    nats_port: int = 4222
    s3_port: int = 9000
    seaweed_master_port: int = 9333
    seaweed_volume_port: int = 9334
    seaweed_filer_port: int = 8888
    seaweed_admin_port: int = 23646
    mlflow_port: int = 5010
    ingest_port: int = 8000
    frontend_port: int = 8501
    # Supervision (tools/stack/supervise.py): a service that exits within `restart_stable_after_s` of its start
    # waits 1, 2, 4... s (up to the max) before its next start; after `restart_give_up_after` such crashes in
    # a row it is given up on.
    restart_first_backoff_s: float = Field(default=1.0, gt=0, le=3600)
    restart_max_backoff_s: float = Field(default=60.0, gt=0, le=3600)
    restart_stable_after_s: float = Field(default=60.0, ge=0, le=86400)
    restart_give_up_after: int = Field(default=5, ge=0, le=1000)

    def ports(self) -> StackPorts:
        return StackPorts(
            nats=self.nats_port,
            s3=self.s3_port,
            seaweed_master=self.seaweed_master_port,
            seaweed_volume=self.seaweed_volume_port,
            seaweed_filer=self.seaweed_filer_port,
            seaweed_admin=self.seaweed_admin_port,
            mlflow=self.mlflow_port,
            ingest=self.ingest_port,
            frontend=self.frontend_port,
        )

    def restart_policy(self) -> RestartPolicy:
        return RestartPolicy(
            first_backoff_s=self.restart_first_backoff_s,
            max_backoff_s=self.restart_max_backoff_s,
            stable_after_s=self.restart_stable_after_s,
            give_up_after=self.restart_give_up_after,
        )
