"""`python -m tools.bridge`: run the SeaweedFS -> NATS bridge until SIGTERM or SIGINT."""

from __future__ import annotations

import asyncio
import logging
import signal

from tools.bridge.service import run
from tools.bridge.settings import BridgeSettings


def main() -> None:
    settings = BridgeSettings()
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    asyncio.run(_run_until_signalled(settings))


async def _run_until_signalled(settings: BridgeSettings) -> None:
    # Handlers go on the running loop so that a signal only sets the event: `run` then stops
    # the tail, saves the checkpoint and drains NATS instead of dying mid-publish.
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await run(settings, stop=stop)


if __name__ == "__main__":
    main()
