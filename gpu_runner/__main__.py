"""`python -m gpu_runner`: run jobs until SIGTERM or Ctrl-C (the job in flight is finished first)."""

from __future__ import annotations

import logging
import sys

from gpu_runner.disk import sweep_volumes
from gpu_runner.execute import host_limits
from gpu_runner.sandbox import SandboxUnavailable, check_sandbox
from gpu_runner.service import run
from gpu_runner.settings import RunnerSettings
from leadersboard.lifecycle import configure_logging, serve_until_signalled
from leadersboard.mlflow_auth import export_client_credentials

log = logging.getLogger("gpu_runner")


def main() -> None:
    configure_logging()
    settings = RunnerSettings()
    if settings.mlflow_password is not None:  # MLflow runs with basic auth: runs are logged as this account
        export_client_credentials(settings.mlflow_username, settings.mlflow_password.get_secret_value())
    try:
        sandbox = check_sandbox(settings)
    except SandboxUnavailable as exc:
        log.error("refusing to start: %s", exc)
        sys.exit(2)
    if sandbox is None:
        log.warning("!" * 100)
        log.warning("bwrap is missing and allow_unsandboxed is set: jobs run WITHOUT ANY ISOLATION (development only)")
        log.warning("!" * 100)
    else:
        log.info("jobs run sandboxed (bwrap, uid %d, hidden: %s)", sandbox.uid, ", ".join(map(str, sandbox.hidden)))
    if swept := sweep_volumes(settings):
        log.info("removed %d job volumes left by an earlier run", swept)
    enforced, missing = host_limits(settings)
    for line in enforced:
        log.info("limits: %s", line)
    for line in missing:  # docs/sandbox.md: what happens then
        log.warning("!" * 100)
        log.warning("limits: %s", line)
    serve_until_signalled(lambda stop: run(settings, stop=stop))


if __name__ == "__main__":
    main()
