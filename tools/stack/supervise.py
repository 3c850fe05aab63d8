"""Supervision of the local stack's services while `leadersboard up` runs: a service that exits is started
again after a backoff, and one that keeps crashing is given up on while the others keep serving.

The policy is supervisord's (see docs/architecture.md, "Supervision"): a process that exits within
`stable_after_s` of its start counts as a quick crash; consecutive quick crashes wait 1, 2, 4... seconds
(capped) before the next start, and after `give_up_after` of them the service is marked failed (supervisord's
FATAL). A process that ran longer than `stable_after_s` starts its count over. Every exit is reported with
the service's name, its exit status and the last lines of its log; the status file says the same to
`leadersboard status`.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from leadersboard.models.stack_status import ServiceState, ServiceStatus, StackStatus
from tools.stack.procs import HttpProbe, ManagedProcess, restart_in

__all__ = ["RestartPolicy", "Supervisor", "describe_exit"]

LOG_TAIL_LINES = 20


@dataclass(frozen=True)
class RestartPolicy:
    first_backoff_s: float = 1.0
    max_backoff_s: float = 60.0
    stable_after_s: float = 60.0
    give_up_after: int = 5
    """Consecutive quick crashes after which the service is no longer restarted."""

    def backoff_s(self, quick_crashes: int) -> float:
        return min(self.first_backoff_s * float(2 ** (quick_crashes - 1)), self.max_backoff_s)


def describe_exit(returncode: int | None) -> str:
    if returncode is None:
        return "an unknown status"
    if returncode < 0:
        try:
            return f"signal {-returncode} ({signal.Signals(-returncode).name})"
        except ValueError:
            return f"signal {-returncode}"
    return f"status {returncode}"


@dataclass
class _Service:
    process: ManagedProcess
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    started_s: float = field(default_factory=time.monotonic)
    state: ServiceState = ServiceState.RUNNING
    restarts: int = 0
    quick_crashes: int = 0
    restart_at_s: float = 0.0
    last_exit: str | None = None


class Supervisor:
    """Watches `processes` (the stack's list, updated in place as processes are replaced) from `poll`."""

    def __init__(
        self, processes: list[ManagedProcess], *, policy: RestartPolicy, report: Callable[[str], None],
        status_path: Path,
    ) -> None:  # fmt: skip
        self.processes = processes
        self.policy = policy
        self.report = report
        self.status_path = status_path
        self.services = {process.name: _Service(process) for process in processes}
        self.write_status()

    def poll(self) -> None:
        """Notice exits and start the services whose backoff is over; call it every fraction of a second."""
        changed = False
        for service in self.services.values():
            if service.state is ServiceState.RUNNING and not service.process.alive:
                self._exited(service)
                changed = True
            elif service.state is ServiceState.RESTARTING and time.monotonic() >= service.restart_at_s:
                self._start_again(service)
                changed = True
        if changed:
            self.write_status()

    def _exited(self, service: _Service) -> None:
        process, policy = service.process, self.policy
        ran_s = time.monotonic() - service.started_s
        service.quick_crashes = 1 if ran_s >= policy.stable_after_s else service.quick_crashes + 1
        service.last_exit = describe_exit(process.returncode)
        process.stop()  # what it left in its process group goes too
        head = f"{process.name} exited with {service.last_exit} after {ran_s:.0f} s"
        tail = f"Last lines of {process.log_path}:\n{process.log_tail(LOG_TAIL_LINES) or '(empty)'}"
        if service.quick_crashes > policy.give_up_after:
            service.state = ServiceState.FAILED
            self.report(
                f"{head}: it crashed {service.quick_crashes} time(s) in a row, each within "
                f"{policy.stable_after_s:.0f} s of its start, so it is no longer restarted; the other services keep "
                f"running. Fix the cause, then stop and start the stack again.\n{tail}"
            )
            return
        delay_s = policy.backoff_s(service.quick_crashes)
        service.state = ServiceState.RESTARTING
        service.restart_at_s = time.monotonic() + delay_s
        self.report(f"{head}; restarting it in {delay_s:.0f} s (restart {service.restarts + 1}).\n{tail}")

    def _start_again(self, service: _Service) -> None:
        service.process = restart_in(self.processes, service.process)
        service.started_at, service.started_s = datetime.now(UTC), time.monotonic()
        service.state = ServiceState.RUNNING
        service.restarts += 1

    def status(self) -> StackStatus:
        return StackStatus(supervisor_pid=os.getpid(), services=[_status(s) for s in self.services.values()])

    def write_status(self) -> None:
        """Replaced whole (write, then rename): a reader never sees half a file."""
        partial = self.status_path.with_suffix(".partial")
        partial.write_text(self.status().model_dump_json(indent=2))
        partial.replace(self.status_path)

    def remove_status(self) -> None:
        self.status_path.unlink(missing_ok=True)


def _status(service: _Service) -> ServiceStatus:
    probe = service.process.ready
    return ServiceStatus(
        name=service.process.name,
        pid=service.process.pid,
        state=service.state,
        started_at=service.started_at,
        restarts=service.restarts,
        last_exit=service.last_exit,
        probe=None if probe is None else probe.target,
        probe_accept=list(probe.accept) if isinstance(probe, HttpProbe) else [200],
    )


STATUS_FILE = "status.json"


def status_file(data_dir: Path) -> Path:
    return data_dir / STATUS_FILE
