"""`python -m frontend`: serve the page until SIGTERM or Ctrl-C."""

from __future__ import annotations

from frontend.app import build_page
from frontend.settings import FrontendSettings
from leadersboard.lifecycle import configure_logging


def run(settings: FrontendSettings) -> None:
    build_page(settings).launch(server_name=settings.host, server_port=settings.port, show_error=True)


def main() -> None:
    configure_logging()
    run(FrontendSettings())


if __name__ == "__main__":
    main()
