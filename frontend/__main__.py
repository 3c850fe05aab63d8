"""`python -m frontend`: serve the page until SIGTERM or Ctrl-C."""

from __future__ import annotations

from frontend.app import create_app
from frontend.settings import FrontendSettings
from leadersboard.lifecycle import configure_logging


def run(settings: FrontendSettings) -> None:
    import uvicorn

    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level="info")


def main() -> None:
    configure_logging()
    run(FrontendSettings())


if __name__ == "__main__":
    main()
