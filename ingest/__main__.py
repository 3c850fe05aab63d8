"""`python -m ingest`: serve the API until SIGTERM or Ctrl-C."""

from __future__ import annotations

import logging

from aiohttp import web

from ingest.app import create_app
from ingest.settings import IngestSettings


def run(settings: IngestSettings) -> None:
    # aiohttp's runner drains in-flight requests on SIGTERM/SIGINT before the cleanup context closes NATS.
    web.run_app(create_app(settings), host=settings.host, port=settings.port, print=None, shutdown_timeout=10)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    run(IngestSettings())


if __name__ == "__main__":
    main()
