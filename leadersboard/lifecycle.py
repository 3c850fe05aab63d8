"""Running a service's `run(settings, stop=...)` until SIGTERM or Ctrl-C asks it to stop."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable

__all__ = ["configure_logging", "serve_until_signalled"]


def configure_logging(level: int = logging.INFO) -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(name)s %(levelname)s %(message)s")


def serve_until_signalled(run: Callable[[asyncio.Event], Awaitable[None]]) -> None:
    """Run the service; the first SIGTERM/SIGINT sets its stop event so it can finish cleanly."""

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await run(stop)

    asyncio.run(serve())
