"""Which errors of a backing service are outages and which are refusals: the one place that decides.

An outage (a connection refused or reset, a timeout, a 5xx, 408 or 429) passes: the runner hands the job
back and another attempt runs it later; the dispatcher retries the event with a growing delay. A refusal
(any other 4xx from MLflow or the store, a NATS message over max_payload) will be the same on every attempt:
retrying it would re-run main.py or redeliver the event forever, so the job ends `failed` with the refusal
as its reason. MLflow's exceptions are recognised by their shape (`get_http_status_code`), so services that
never talk to MLflow do not import it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import requests
from boto3.exceptions import RetriesExceededError
from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError, IncompleteReadError
from botocore.exceptions import ConnectionError as BotoConnectionError
from nats import errors as nats_errors
from nats.js import errors as js_errors

__all__ = ["Fault", "classify", "is_outage"]

RETRYABLE_4XX = frozenset({408, 429})
"""Request timeout and too many requests: the service asks to be asked again later."""
MAX_DETAIL_CHARS = 300


@dataclass(frozen=True)
class Fault:
    transient: bool
    reason: str
    """What happened, for the job's error or log: names the service and what it refused."""


def is_outage(exc: BaseException) -> bool:
    fault = classify(exc)
    return fault is not None and fault.transient


def classify(exc: BaseException) -> Fault | None:
    """The fault of a backing service behind `exc` (or the errors it was raised from); None: none of theirs."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        fault = _classify_one(current)
        if fault is not None:
            return fault
        last = getattr(current, "last_exception", None) if isinstance(current, RetriesExceededError) else None
        if isinstance(last, BaseException):
            current = last
            continue
        # boto3's S3UploadFailedError is raised while handling the ClientError it replaces.
        current = current.__cause__ or current.__context__
    return None


def _classify_one(exc: BaseException) -> Fault | None:
    if callable(getattr(exc, "get_http_status_code", None)) and hasattr(exc, "error_code"):
        return _mlflow(exc)
    if isinstance(exc, requests.HTTPError) and exc.response is not None:  # MLflow's artifact uploads
        return _by_status("MLflow", exc.response.status_code, str(exc))
    if isinstance(exc, requests.RequestException):  # connection refused or reset, timeouts
        return Fault(True, f"MLflow unavailable: {_short(exc)}")
    if isinstance(exc, ClientError):
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        code = exc.response.get("Error", {}).get("Code", "?")
        return _by_status("the store", status, f"{exc.operation_name}: {code}: {_short(exc)}")
    if isinstance(exc, BotoConnectionError | HTTPClientError | IncompleteReadError):
        return Fault(True, f"the store is unavailable: {_short(exc)}")
    if isinstance(exc, BotoCoreError):  # a request the client itself refuses to send (bad parameters)
        return Fault(False, f"the store client refused the request: {_short(exc)}")
    if isinstance(exc, nats_errors.MaxPayloadError):
        return Fault(False, f"NATS refused the message as too large: {_short(exc)}")
    if isinstance(exc, js_errors.APIError) and not isinstance(exc, js_errors.ServiceUnavailableError):
        status = exc.code if isinstance(exc.code, int) else None
        if status is not None and 400 <= status < 500 and status not in RETRYABLE_4XX:
            return Fault(False, f"NATS refused the request ({status}): {exc.description}")
        return Fault(True, f"NATS unavailable: {_short(exc)}")
    if isinstance(exc, nats_errors.Error | ConnectionError | TimeoutError):
        return Fault(True, f"unavailable: {_short(exc)}")
    return None


def _mlflow(exc: Any) -> Fault:
    """A RestException carries the server's error code (INVALID_PARAMETER_VALUE: 400); a connection error
    or a timeout in MLflow's client is a plain MlflowException with INTERNAL_ERROR (500)."""
    status = exc.get_http_status_code()
    return _by_status("MLflow", status, f"{exc.error_code}: {exc.message}")


def _by_status(service: str, status: int | None, detail: str) -> Fault:
    if isinstance(status, int) and 400 <= status < 500 and status not in RETRYABLE_4XX:
        return Fault(False, f"{service} refused the request ({status} {_cut(detail)})")
    return Fault(True, f"{service} unavailable ({status or 'no answer'}: {_cut(detail)})")


def _short(exc: BaseException) -> str:
    return _cut(f"{type(exc).__name__}: {exc}")


def _cut(text: str) -> str:
    return text if len(text) <= MAX_DETAIL_CHARS else text[: MAX_DETAIL_CHARS - 3] + "..."
