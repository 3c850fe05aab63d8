"""Consuming a JetStream pull subscription: fetch, handle, and settle each message by what its handler decided.

The handler returns a typed outcome; `settle` is the one place that turns it into JetStream's answer:

- `DONE` (handled, or nothing to do): ack, never delivered again;
- `RetryLater(delay_s)` (not now: an outage, a job handed back): nak, delivered again after `delay_s`;
- `GIVE_UP` (poison, or its failure already recorded): term, never delivered again.

A handler that raises leaves its message unsettled: it comes back after the consumer's ack wait. A long
handler calls `in_progress` to keep its message (it resets the ack wait). When NATS is away, a settle is
only logged: an unsettled message comes back after its ack wait, and every handler copes with a redelivery.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final

from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext

__all__ = ["DONE", "GIVE_UP", "Done", "GiveUp", "Outcome", "RetryLater", "consume", "in_progress", "settle"]

log = logging.getLogger("leadersboard.consume")


@dataclass(frozen=True)
class Done:
    """Handled, or nothing to do: acknowledged."""


@dataclass(frozen=True)
class RetryLater:
    """Not now: delivered again after `delay_s`."""

    delay_s: float


@dataclass(frozen=True)
class GiveUp:
    """Never to be handled: terminated, not delivered again."""


Outcome = Done | RetryLater | GiveUp
DONE: Final = Done()
GIVE_UP: Final = GiveUp()

Handler = Callable[[Msg], Awaitable[Outcome]]


async def settle(message: Msg, outcome: Outcome) -> None:
    """Ack, nak with a delay, or term the message; a failure is logged (the message then comes back)."""
    try:
        match outcome:
            case Done():
                await message.ack()
            case RetryLater(delay_s=delay_s):
                await message.nak(delay=delay_s)
            case GiveUp():
                await message.term()
    except Exception as exc:
        log.warning("could not settle a message of %s (%r); it will be delivered again", message.subject, exc)


async def in_progress(message: Msg) -> bool:
    """Tell JetStream the message is still being worked on; False (logged) when NATS did not take it."""
    try:
        await message.in_progress()
    except Exception as exc:
        log.warning("could not mark a message of %s in progress (%r)", message.subject, exc)
        return False
    return True


async def consume(
    subscription: JetStreamContext.PullSubscription,
    handle: Handler,
    *,
    what: str,
    stop: asyncio.Event,
    batch: int,
    fetch_timeout_s: float,
    retry_s: float,
    idle: Callable[[], Awaitable[bool]] | None = None,
) -> None:
    """Fetch up to `batch` messages at a time, handle them concurrently and settle each, until `stop` is set.

    `idle` is awaited when a fetch finds nothing: True ends the loop (burst mode). A failed fetch (NATS
    restarting: the durable consumer is still there afterwards) is logged with `what` (the messages' name)
    and retried after `retry_s`.
    """
    while not stop.is_set():
        try:
            messages = await subscription.fetch(batch, timeout=fetch_timeout_s)
        except (NatsTimeoutError, TimeoutError):
            if idle is not None and await idle():
                return
            continue
        except Exception as exc:
            log.warning("fetching %s failed (%r); retrying", what, exc)
            await asyncio.sleep(retry_s)
            continue
        await asyncio.gather(*(_handle_and_settle(message, handle) for message in messages))


async def _handle_and_settle(message: Msg, handle: Handler) -> None:
    try:
        outcome = await handle(message)
    except Exception as exc:  # comes back after the ack wait; the handler's own rules sort out the repeat
        log.warning("a message of %s was not handled (%r); it will be delivered again", message.subject, exc)
        return
    await settle(message, outcome)
