"""`python -m gpu_runner`: run jobs until SIGTERM or Ctrl-C (the job in flight is finished first)."""

from __future__ import annotations

from gpu_runner.service import run
from gpu_runner.settings import RunnerSettings
from leadersboard.lifecycle import configure_logging, serve_until_signalled


def main() -> None:
    configure_logging()
    settings = RunnerSettings()
    serve_until_signalled(lambda stop: run(settings, stop=stop))


if __name__ == "__main__":
    main()
