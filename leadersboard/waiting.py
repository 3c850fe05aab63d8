"""Bounded waits that keep cancellations: for an event, and for the end of tasks being stopped.

`asyncio.wait_for` on Python 3.11 loses the cancellation of the task awaiting it when the awaited result and the
`cancel()` land in the same turn of the loop: it returns the result and the task goes on (CPython gh-86296, fixed
in 3.12). nats-py makes every request with it, so a service's background task (a KV mirror's watch, a keeper)
stopped while a NATS answer arrives can carry on, and a cleanup that then awaits the task's end waits forever
(a test's teardown hung that way on a loaded machine). Hence:

- `wait_set` waits with `asyncio.timeout`, which tells its own expiry from a cancellation from outside;
- `stop_tasks` cancels again every `RECANCEL_S` while a task goes on, and gives up with a warning after
  `timeout_s`: stopping never hangs.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

__all__ = ["STOP_TIMEOUT_S", "stop_tasks", "wait_set"]

log = logging.getLogger("leadersboard.waiting")

STOP_TIMEOUT_S = 10.0
RECANCEL_S = 1.0
"""Long enough for a task's own cleanup after a cancellation (unsubscribing a watch), short enough to matter."""


async def wait_set(event: asyncio.Event, timeout_s: float) -> bool:
    """Waits until `event` is set or `timeout_s` has passed; whether it is set. A cancellation propagates."""
    try:
        async with asyncio.timeout(timeout_s):
            await event.wait()
    except TimeoutError:
        return event.is_set()
    return True


async def stop_tasks(*tasks: asyncio.Task[Any], timeout_s: float = STOP_TIMEOUT_S) -> None:
    """Cancels the tasks and waits for their end, cancelling again those that go on; after `timeout_s` those
    still running are logged and left. Their own exceptions are not raised (the caller is stopping)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    pending = {task for task in tasks if not task.done()}
    while pending:
        left_s = deadline - loop.time()
        if left_s <= 0:
            names = ", ".join(sorted(task.get_name() for task in pending))
            log.warning("%d task(s) did not stop within %.1f s: %s", len(pending), timeout_s, names)
            return
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=min(RECANCEL_S, left_s))
    for task in tasks:  # retrieved, so that asyncio does not log "exception was never retrieved"
        if task.done() and not task.cancelled():
            task.exception()
