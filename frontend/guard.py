"""What reaches the page's server: a count of request-body bytes, and a refusal of Gradio's upload endpoint.

The page uploads files from the browser straight to the store through presigned URLs; the Gradio server
never needs a file. This middleware makes that a property one can check: it refuses `POST .../upload`
(Gradio's file-upload route) and counts every request-body byte it lets through, and `GET /frontend/health`
reports the counts (tests compare them with the size of what was uploaded).
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["TrafficStats", "UploadGuard"]

log = logging.getLogger("frontend")

UPLOAD_PATHS = ("/upload", "/gradio_api/upload")


@dataclass
class TrafficStats:
    requests: int = 0
    request_body_bytes: int = 0
    largest_request_body: int = 0
    refused_uploads: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


class UploadGuard:
    """ASGI middleware: counts request bodies, refuses Gradio's upload route with 403."""

    def __init__(self, app: ASGIApp, stats: TrafficStats) -> None:
        self.app = app
        self.stats = stats

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        self.stats.requests += 1
        path = str(scope.get("path", "")).rstrip("/")
        if scope.get("method") == "POST" and path.endswith(UPLOAD_PATHS):
            self.stats.refused_uploads += 1
            log.warning("refused a file upload to the page server (%s): files go straight to the store", path)
            await _refuse(send)
            return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                size = len(message.get("body", b""))
                received += size
                self.stats.request_body_bytes += size
                self.stats.largest_request_body = max(self.stats.largest_request_body, received)
            return message

        await self.app(scope, counting_receive, send)


async def _refuse(send: Send) -> None:
    body: dict[str, Any] = {
        "error": {
            "code": "forbidden",
            "message": "this server takes no files: the page uploads them straight to the store",
        }
    }
    payload = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    await send({"type": "http.response.start", "status": 403, "headers": headers})
    await send({"type": "http.response.body", "body": payload})
