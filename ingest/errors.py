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

The framework's own errors (unknown route 404, 405, the body limit's 413, a request its HTTP parser refuses)
get the same body through `http_error_response` and `error_response`.
"""

from __future__ import annotations

from aiohttp import web

from leadersboard.models.api import ErrorBody, ErrorDetail

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
    "error_response",
    "http_error_response",
]

_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    417: "expectation_failed",
    431: "headers_too_large",
    500: "internal_error",
    504: "timeout",
}
# Headers of aiohttp's plain-text answer that a JSON answer must not carry over.
_BODY_HEADERS = {"content-type", "content-length", "content-encoding"}


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    """`{"error": {"code", "message"}}` with `status`: the one shape of every error the API answers."""
    code = _CODES.get(status, "bad_request" if 400 <= status < 500 else "internal_error")
    body = ErrorBody(error=ErrorDetail(code=code, message=message))
    return web.json_response(body.model_dump(), status=status, headers=headers)


def http_error_response(exc: web.HTTPException, request: web.BaseRequest) -> web.Response:
    """An error aiohttp raised (no such route, method not allowed, body over the limit), in the API's shape."""
    if isinstance(exc, web.HTTPMethodNotAllowed):
        allowed = ", ".join(sorted(exc.allowed_methods))
        message = f"{request.method} is not allowed on {request.path}; allowed: {allowed}"
    elif isinstance(exc, web.HTTPNotFound):
        message = f"no such endpoint: {request.method} {request.path}; the API is described at /api/v1/openapi.json"
    elif isinstance(exc, web.HTTPRequestEntityTooLarge):
        message = f"body: {exc.text}"
    else:
        message = exc.text or exc.reason
    headers = {k: v for k, v in exc.headers.items() if k.lower() not in _BODY_HEADERS}
    return error_response(exc.status, message, headers)


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
