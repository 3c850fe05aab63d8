"""Serving the page with uvicorn until the service's stop event is set.

uvicorn would take SIGTERM and SIGINT for itself (and raise them again once it has stopped, so the process
dies of the signal); here `leadersboard.service` owns the signals, as in every service, and uvicorn is
told to exit when `stop` is set. It still answers the requests in flight before it returns.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

import uvicorn

from frontend.app import create_app
from frontend.settings import FrontendSettings

__all__ = ["run"]


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def run(settings: FrontendSettings, *, stop: asyncio.Event) -> None:
    # log_config=None: uvicorn's loggers go through the root logger that leadersboard.service configured.
    config = uvicorn.Config(
        create_app(settings), host=settings.host, port=settings.port, log_level="info", log_config=None
    )
    server = _Server(config)
    serving = asyncio.create_task(server.serve())
    stopping = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        server.should_exit = True
        stopping.cancel()
    await serving
