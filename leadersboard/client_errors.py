"""The failures the client expects, as typed exceptions; the CLI prints each one as one line and exits 2.

    ClientError                  every expected failure: `str(exc)` says what happened, `.hint` what to do
    ├── BadUrl                   the API address is not an `http(s)://host[:port]` URL
    ├── Unreachable              no answer from the API (also: the connection closed before an answer)
    │   ├── ConnectionRefused    nothing listens at that address (the API is down, or a wrong port)
    │   ├── UnknownHost          the host name does not resolve (DNS)
    │   ├── TimedOut             no answer within the client's `timeout_s`
    │   └── TlsFailed            the TLS handshake failed (an untrusted certificate, or not a TLS port)
    ├── NotTheApi                an answer that is not the API's JSON (another service, a proxy's error page)
    └── ApiError                 the API answered with an error: `.status`, `.code`, `.message`, `.retry_after_s`
        └── ServerError          a 5xx: the API, or a proxy in front of it, failed; trying later may help

`api_url` checks an address once, `transport_errors` turns httpx's transport failures into these, `checked`
turns an answer into the response or one of these: the client uses the three on every API call.

Uploads to the store (leadersboard/upload.py) raise the same classes: a store out of reach is one of the
`Unreachable` ones, a store's 4xx an `ApiError` (`.code`: S3's, e.g. AccessDenied), a 5xx kept after the retries a
`ServerError`; their `hint` (given per instance) says what to do about the store, not the API.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator
from contextlib import contextmanager

import httpx

# The roots callers catch, and what the client calls; the tree's other classes are importable by name.
__all__ = ["ApiError", "ClientError", "api_url", "checked", "transport_error", "transport_errors"]

_JSON_TYPES = ("application/json", "application/problem+json")
_MAX_MESSAGE_CHARS = 1000
"""Of an error answer's message (whitespace folded: the CLI prints it on one line)."""


class ClientError(Exception):
    hint = "check the API address (--url, LEADERSBOARD_URL or `leadersboard login`)"

    def __init__(self, *args: object, hint: str | None = None) -> None:
        super().__init__(*args)
        if hint is not None:  # the class's hint is about the API; the store's failures say what to do instead
            self.hint = hint


class BadUrl(ClientError):
    hint = "give the API address as http://HOST:PORT (e.g. http://127.0.0.1:8000) with --url or LEADERSBOARD_URL"


class Unreachable(ClientError):
    hint = "check that the API runs (`leadersboard up` locally) and that the address is right"


class ConnectionRefused(Unreachable):
    hint = "start the API (`leadersboard up` locally) or check the address and port"


class UnknownHost(Unreachable):
    hint = "check the host name of the API address, and this machine's network and DNS"


class TimedOut(Unreachable):
    hint = "the API or the network is overloaded: try again, or raise LEADERSBOARD_TIMEOUT_S"


class TlsFailed(Unreachable):
    hint = "check that the address is the API's (https only if it serves TLS) and that its certificate is trusted"


class NotTheApi(ClientError):
    hint = "check that the address is the LeadersBoard API's (default http://127.0.0.1:8000), not another service"


class ApiError(ClientError):
    """An error answer of the API (`{"error": {"code", "message"}}`) or of the store."""

    hint = ""

    def __init__(
        self, status: int, code: str, message: str, retry_after_s: float | None = None, *, hint: str | None = None
    ) -> None:
        super().__init__(f"{status} {code}: {message}", hint=hint)
        self.status = status
        self.code = code
        self.message = message
        self.retry_after_s = retry_after_s


class ServerError(ApiError):
    hint = "try again later; if it persists, tell the platform's administrators"


def api_url(url: str) -> str:
    """`url` without its trailing slash, or BadUrl naming what is wrong with it."""
    try:
        parsed = httpx.URL(url)
        port = parsed.port
    except (httpx.InvalidURL, ValueError, TypeError) as exc:
        raise BadUrl(f"the API address {url!r} is not a URL ({exc})") from exc
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise BadUrl(f"the API address {url!r} is not an http:// or https:// URL with a host")
    if port is not None and not 0 < port < 65536:
        raise BadUrl(f"the API address {url!r} has port {port}, outside 1-65535")
    return url.rstrip("/")


@contextmanager
def transport_errors(url: str) -> Iterator[None]:
    """Turn httpx's failures to get an answer from `url` into the typed exceptions."""
    try:
        yield
    except (httpx.TransportError, httpx.InvalidURL) as exc:
        raise transport_error(url, exc) from exc


def transport_error(url: str, exc: httpx.TransportError | httpx.InvalidURL) -> ClientError:
    """The typed exception for httpx's failure `exc` to get an answer from `url` (the API or the store)."""
    if isinstance(exc, httpx.TimeoutException):
        return TimedOut(f"{url} did not answer in time ({type(exc).__name__})")
    if isinstance(exc, httpx.UnsupportedProtocol):
        return BadUrl(f"the address {url!r} is not an http:// or https:// URL")
    if isinstance(exc, httpx.InvalidURL):
        return BadUrl(f"a request to {url} has an invalid URL ({exc})")
    return _unreachable(url, exc)


def _unreachable(url: str, exc: httpx.TransportError) -> Unreachable:
    """The cause of a failed connection, from the exception chain (httpx wraps the socket's error)."""
    for cause in _chain(exc):
        if isinstance(cause, socket.gaierror):
            return UnknownHost(f"the host of {url} is unknown ({cause.strerror or cause})")
        if isinstance(cause, ssl.SSLError):
            return TlsFailed(f"TLS with {url} failed ({getattr(cause, 'verify_message', None) or cause.reason})")
        if isinstance(cause, ConnectionRefusedError):
            return ConnectionRefused(f"{url} refused the connection (nothing listens there)")
    return Unreachable(f"no answer from {url} ({exc or type(exc).__name__})")


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def checked(response: httpx.Response, *, json_answer: bool = True) -> httpx.Response:
    """The response of a successful call, or the typed error it stands for. `json_answer`: the call answers JSON
    (a 2xx in another type, e.g. a web page, comes from something other than the API)."""
    if response.status_code >= 400:
        raise _error_answer(response)
    if json_answer and response.status_code != 204 and not _is_json(response):
        raise NotTheApi(f"{response.url} answered {_content_type(response)}, not the API's JSON")
    return response


def _error_answer(response: httpx.Response) -> ClientError:
    retry_after = response.headers.get("Retry-After")
    kind = ServerError if response.status_code >= 500 else ApiError
    try:
        error = response.json()["error"]
        code, message = str(error["code"]), str(error["message"])
    except (ValueError, KeyError, TypeError):
        reason = f"{response.status_code} {response.reason_phrase}".strip()
        if kind is ApiError:
            return NotTheApi(f"{response.url} answered {reason} ({_content_type(response)}), not as the API does")
        code, message = "http_error", f"{reason} from {response.url} ({_content_type(response)})"
    seconds = _seconds(retry_after)
    return kind(response.status_code, code, " ".join(message.split())[:_MAX_MESSAGE_CHARS], seconds)


def _seconds(retry_after: str | None) -> float | None:
    try:
        return float(retry_after) if retry_after else None
    except ValueError:  # an HTTP date: not worth a parser here
        return None


def _is_json(response: httpx.Response) -> bool:
    return response.headers.get("Content-Type", "").split(";")[0].strip().lower() in _JSON_TYPES


def _content_type(response: httpx.Response) -> str:
    return response.headers.get("Content-Type", "").split(";")[0].strip() or "no content type"
