"""leadersboard/waiting.py: bounded waits that keep a cancellation, and stopping tasks that never hangs."""

from __future__ import annotations

import asyncio
import logging
import sys

import pytest

from leadersboard.waiting import stop_tasks, wait_set


async def landing_together(awaited: asyncio.Future[str], task: asyncio.Task[str]) -> None:
    """The awaited result and a cancel() in the same turn of the loop, as a NATS answer and a service's stop."""
    await asyncio.sleep(0)  # the task is waiting now
    awaited.set_result("answer")
    task.cancel()


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="CPython gh-86296 is fixed in 3.12")
async def test_wait_for_on_this_python_drops_a_cancellation_that_lands_with_its_result() -> None:
    """Why the module exists: nats-py awaits every request with `asyncio.wait_for`."""
    awaited: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(asyncio.wait_for(awaited, 5))
    await landing_together(awaited, task)
    assert await task == "answer"  # the cancellation is gone: the task went on


async def test_wait_set_keeps_a_cancellation_that_lands_as_the_event_is_set() -> None:
    event = asyncio.Event()
    task = asyncio.create_task(wait_set(event, 5))
    await asyncio.sleep(0)
    event.set()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_wait_set_answers_whether_the_event_was_set() -> None:
    event = asyncio.Event()
    assert await wait_set(event, 0.01) is False
    event.set()
    assert await wait_set(event, 5) is True


async def test_stop_tasks_cancels_again_a_task_that_went_on() -> None:
    awaited: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    steps: list[str] = []

    async def service() -> None:
        steps.append(await asyncio.wait_for(awaited, 5))  # its cancellation dropped (on 3.11)
        await asyncio.Event().wait()  # then it waits for ever, as a watch would

    task = asyncio.create_task(service())
    await asyncio.sleep(0)
    awaited.set_result("answer")
    await stop_tasks(task, timeout_s=30)
    assert task.cancelled()
    assert steps == (["answer"] if sys.version_info < (3, 12) else [])


async def test_stop_tasks_gives_up_on_a_task_that_never_stops(caplog: pytest.LogCaptureFixture) -> None:
    let_go = asyncio.Event()

    async def stubborn() -> None:
        while not let_go.is_set():
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                continue

    task = asyncio.create_task(stubborn(), name="stubborn")
    await asyncio.sleep(0)
    with caplog.at_level(logging.WARNING, logger="leadersboard.waiting"):
        await stop_tasks(task, timeout_s=0.2)
    assert not task.done()
    assert "1 task(s) did not stop within 0.2 s: stubborn" in caplog.text
    let_go.set()
    task.cancel()
    await asyncio.wait({task})
    assert task.done()


async def test_stop_tasks_leaves_a_failed_tasks_exception_retrieved() -> None:
    async def failing() -> None:
        raise RuntimeError("boom")

    task = asyncio.create_task(failing())
    await asyncio.sleep(0)
    await stop_tasks(task)  # does not raise: the caller is stopping
    assert isinstance(task.exception(), RuntimeError)
