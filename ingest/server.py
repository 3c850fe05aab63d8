"""Serving the app so that even what aiohttp answers before the app runs has the API's error body.

aiohttp's HTTP parser refuses a malformed request line or header in its connection handler
(`RequestHandler.handle_error`), before any middleware, with a plain-text 400; an `Expect` header other than
`100-continue` is refused (417) before the middlewares too. aiohttp has no setting for either (aio-libs/aiohttp
issue 3287), so the server's connection handlers are a subclass that answers in JSON, and the app's handler
is wrapped to turn what escapes the middlewares into the same shape.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web
from aiohttp.web import RequestHandler

from ingest.app import create_app
from ingest.errors import error_response, http_error_response
from ingest.settings import IngestSettings

__all__ = ["ApiRunner", "run"]


class _JsonErrorHandler(RequestHandler):
    def handle_error(
        self, request: web.BaseRequest, status: int = 500, exc: BaseException | None = None, message: str | None = None
    ) -> web.StreamResponse:
        # aiohttp's own first: it logs, and refuses (ConnectionError) when a response has already begun.
        super().handle_error(request, status, exc, message)
        if status >= 500:
            text = "internal server error; please report it to the administrators"
        else:
            text = f"malformed HTTP request: {message or 'unreadable request'}"
        response = error_response(status, text)
        response.force_close()  # as aiohttp's: the rest of the connection cannot be trusted
        return response


class _JsonErrorServer(web.Server):
    def __call__(self) -> RequestHandler:
        return _JsonErrorHandler(self, loop=self._loop, **self._kwargs)


class ApiRunner(web.AppRunner):
    """An AppRunner whose every error answer, the HTTP parser's included, is `{"error": {"code", "message"}}`."""

    async def _make_server(self) -> web.Server:
        made = await super()._make_server()  # the app's startup and its handler, as AppRunner makes them
        app_handler = made.request_handler

        async def handler(request: web.BaseRequest) -> web.StreamResponse:
            try:
                return await app_handler(request)
            except web.HTTPException as exc:  # raised before the middlewares (417 for a bad Expect)
                if exc.status < 400:
                    raise
                return http_error_response(exc, request)

        kwargs: dict[str, Any] = made._kwargs
        return _JsonErrorServer(
            handler,
            request_factory=made.request_factory,
            handler_cancellation=made.handler_cancellation,
            loop=asyncio.get_running_loop(),
            **kwargs,
        )


async def run(settings: IngestSettings, *, stop: asyncio.Event) -> None:
    """Serve until `stop` is set, then drain in-flight requests before the app's cleanup closes NATS."""
    runner = ApiRunner(create_app(settings), shutdown_timeout=10)
    await runner.setup()
    try:
        await web.TCPSite(runner, settings.host, settings.port).start()
        await stop.wait()
    finally:
        await runner.cleanup()
