"""`python -m ingest`: serve the API until SIGTERM or Ctrl-C."""

from __future__ import annotations

import asyncio
import logging

from ingest.server import serve
from ingest.settings import IngestSettings


def run(settings: IngestSettings) -> None:
    # Drains in-flight requests on SIGTERM/SIGINT before the cleanup context closes NATS.
    asyncio.run(serve(settings))


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    run(IngestSettings())


if __name__ == "__main__":
    main()
