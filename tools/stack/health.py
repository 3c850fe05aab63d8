"""What `leadersboard status` shows: the status file `leadersboard up` keeps (tools/stack/supervise.py), checked
against the live processes and their health probes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from pydantic import ValidationError

from leadersboard.models.stack_status import ServiceState, ServiceStatus, StackStatus
from tools.stack.proc_info import pid_alive, process_tree, pss_bytes
from tools.stack.procs import probe_for
from tools.stack.supervise import status_file

__all__ = ["NoStackError", "ServiceView", "read_status", "service_views"]


class NoStackError(RuntimeError):
    """No `leadersboard up` runs on this data directory; the message says what to do."""


def read_status(data_dir: Path) -> StackStatus:
    path = status_file(data_dir)
    start_it = "start it with `make up` (or `leadersboard up`)"
    try:
        status = StackStatus.model_validate_json(path.read_bytes())
    except FileNotFoundError:
        raise NoStackError(f"no local stack runs on {data_dir.resolve()}: {start_it}") from None
    except (OSError, ValidationError) as exc:
        raise NoStackError(f"cannot read {path} ({type(exc).__name__}); if no stack runs, {start_it}") from None
    if not pid_alive(status.supervisor_pid):
        raise NoStackError(
            f"the stack on {data_dir.resolve()} is not running (its `leadersboard up`, pid {status.supervisor_pid}, "
            f"is gone; {path} is left from it): {start_it}"
        )
    return status


@dataclass(frozen=True)
class ServiceView:
    status: ServiceStatus
    alive: bool
    health: str
    """ok, failing (its probe fails), down (no process), or `-` (no port to probe: alive is all we know)."""
    uptime_s: float | None
    memory_bytes: int
    """PSS of its process tree."""

    @property
    def healthy(self) -> bool:
        return self.alive and self.health in ("ok", "-")


def service_views(status: StackStatus) -> list[ServiceView]:
    return [_view(service) for service in status.services]


def _view(service: ServiceStatus) -> ServiceView:
    alive = service.state is ServiceState.RUNNING and pid_alive(service.pid)
    if not alive:
        health = "down"
    elif service.probe is None:
        health = "-"
    else:
        health = "ok" if probe_for(service.probe, service.probe_accept)() else "failing"
    uptime_s = (datetime.now(UTC) - service.started_at).total_seconds() if alive else None
    memory = pss_bytes(process_tree([service.pid])) if alive else 0
    return ServiceView(service, alive, health, uptime_s, memory)
