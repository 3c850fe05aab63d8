"""`python -m gpu_runner`: run jobs until SIGTERM or Ctrl-C (the job in flight is finished or handed back)."""

from __future__ import annotations

import asyncio
import logging

from gpu_runner.execute import host_limits
from gpu_runner.sandbox import SandboxUnavailable, check_sandbox
from gpu_runner.service import run
from gpu_runner.settings import RunnerSettings
from leadersboard.mlflow_auth import export_client_credentials
from leadersboard.service import StartRefused, serve

log = logging.getLogger("gpu_runner")


def main() -> None:
    serve("gpu_runner", RunnerSettings, start)


async def start(settings: RunnerSettings, *, stop: asyncio.Event) -> None:
    """Check and clean the host, then run jobs."""
    prepare_host(settings)
    await run(settings, stop=stop)


def prepare_host(settings: RunnerSettings) -> None:
    """Refuse to start without the sandbox (unless allowed), say which limits hold (leftovers: service.run)."""
    if settings.mlflow_password is not None:  # MLflow runs with basic auth: runs are logged as this account
        export_client_credentials(settings.mlflow_username, settings.mlflow_password.get_secret_value())
    try:
        sandbox = check_sandbox(settings)
    except SandboxUnavailable as exc:
        raise StartRefused(str(exc)) from exc
    if sandbox is None:
        log.warning("!" * 100)
        log.warning("bwrap is missing and allow_unsandboxed is set: jobs run WITHOUT ANY ISOLATION (development only)")
        log.warning("!" * 100)
    else:
        log.info("jobs run sandboxed (bwrap, uid %d, hidden: %s)", sandbox.uid, ", ".join(map(str, sandbox.hidden)))
    enforced, missing = host_limits(settings)
    for line in enforced:
        log.info("limits: %s", line)
    for line in missing:  # docs/sandbox.md: what happens then
        log.warning("!" * 100)
        log.warning("limits: %s", line)


if __name__ == "__main__":
    main()
