"""`python -m ingest`: serve the API until SIGTERM or Ctrl-C (in-flight requests are answered first)."""

from __future__ import annotations

from ingest.server import run
from ingest.settings import IngestSettings
from leadersboard.service import serve


def main() -> None:
    serve("ingest", IngestSettings, run)


if __name__ == "__main__":
    main()
