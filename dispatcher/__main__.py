"""`python -m dispatcher`: dispatch until SIGTERM or Ctrl-C."""

from __future__ import annotations

from dispatcher.service import run
from dispatcher.settings import DispatcherSettings
from leadersboard.lifecycle import configure_logging, serve_until_signalled


def main() -> None:
    configure_logging()
    settings = DispatcherSettings()
    serve_until_signalled(lambda stop: run(settings, stop=stop))


if __name__ == "__main__":
    main()
