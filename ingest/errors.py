"""Errors the API answers with, as the user guide lists them.

ApiError
├── BadRequest          400  the body says which field and why
├── Unauthorized        401  bad, expired or revoked token
├── Forbidden           403  an admin endpoint called by a user
├── NotFound            404  no such submission (or not yours)
├── Conflict            409  e.g. cancelling a finished job
├── PayloadTooLarge     413
├── TooManyRequests     429  with Retry-After
└── ServiceUnavailable  503  a backing service is down
"""

from __future__ import annotations

from aiohttp import web

from leadersboard.models import ErrorBody, ErrorDetail

__all__ = [
    "ApiError",
    "BadRequest",
    "Conflict",
    "Forbidden",
    "NotFound",
    "PayloadTooLarge",
    "ServiceUnavailable",
    "TooManyRequests",
    "Unauthorized",
]


class ApiError(Exception):
    status = 500
    code = "internal_error"

    def __init__(self, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers or {}

    def response(self) -> web.Response:
        body = ErrorBody(error=ErrorDetail(code=self.code, message=self.message))
        return web.json_response(body.model_dump(), status=self.status, headers=self.headers)


class BadRequest(ApiError):
    status, code = 400, "bad_request"


class Unauthorized(ApiError):
    status, code = 401, "unauthorized"


class Forbidden(ApiError):
    status, code = 403, "forbidden"


class NotFound(ApiError):
    status, code = 404, "not_found"


class Conflict(ApiError):
    status, code = 409, "conflict"


class PayloadTooLarge(ApiError):
    status, code = 413, "payload_too_large"


class TooManyRequests(ApiError):
    status, code = 429, "rate_limited"


class ServiceUnavailable(ApiError):
    status, code = 503, "service_unavailable"
