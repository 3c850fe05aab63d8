"""The local stack's status file (`<data dir>/status.json`): `leadersboard up` keeps it current as it supervises
its services (tools/stack/supervise.py); `leadersboard status` reads it."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import Field

from leadersboard.models.base import StrictModel

__all__ = ["ServiceState", "ServiceStatus", "StackStatus"]


class ServiceState(StrEnum):
    RUNNING = "running"
    RESTARTING = "restarting"
    """It exited and waits out its backoff before the next start."""
    FAILED = "failed"
    """It kept crashing: no longer restarted; the other services keep serving."""


class ServiceStatus(StrictModel):
    name: str
    pid: int
    """Of its current (or last) process."""
    state: ServiceState
    started_at: datetime
    """When its current (or last) process started."""
    restarts: int = Field(ge=0)
    last_exit: str | None = None
    """How its last process ended (`status 3`, `signal 9 (SIGKILL)`), if one did."""
    probe: str | None = None
    """What says it is healthy (`HttpProbe.target`, `tcp://host:port`); none for the services without a port."""
    probe_accept: list[int] = Field(default_factory=lambda: [200])


class StackStatus(StrictModel):
    version: Literal[1] = 1
    supervisor_pid: int
    """The `leadersboard up` process: when it is gone, so is the stack and this file is stale."""
    services: list[ServiceStatus]
