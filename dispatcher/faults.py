"""How the dispatcher gives up on an event that fails the same way each time, and says so.

An outage (`leadersboard.faults.is_outage`: the store or NATS unreachable, a timeout, a 5xx, 408 or 429)
passes: the event is retried with a growing delay for as long as `max_event_outage_s`. Anything else (a 4xx
from the store, a NATS refusal such as a record over max_payload, a bug) will fail again on every delivery, so
after `max_event_deliveries` the submission ends `failed` with the error as its reason (the dead-letter path
in dispatcher/service.py).
"""

from __future__ import annotations

from nats.js import errors as js_errors

from leadersboard.faults import is_outage

__all__ = ["GAVE_UP", "describe", "is_outage", "repeated_failure"]

MAX_DESCRIPTION_CHARS = 300
GAVE_UP = "the dispatcher could not record this submission"


def describe(exc: BaseException) -> str:
    """`Type: message`, short enough for a job's reason."""
    text = f"{type(exc).__name__}: {exc}".strip().removesuffix(":")
    if isinstance(exc, js_errors.APIError) and exc.description:
        text = f"{type(exc).__name__}: NATS answered {exc.code}: {exc.description}"
    return text if len(text) <= MAX_DESCRIPTION_CHARS else text[: MAX_DESCRIPTION_CHARS - 3] + "..."


def repeated_failure(attempts: int, exc: BaseException) -> str:
    """The reason of a submission given up on after `attempts` that failed the same way."""
    return f"{GAVE_UP} after {attempts} attempts ({describe(exc)}); report the submission id to the admins"
