"""How a consumed message is settled (leadersboard/consume.py), observed on a real nats-server's stream.

Each handler outcome is checked by what JetStream then does: an acked message is never offered again, a
message retried later comes back only after its delay, a terminated one is never offered again (and the
server says so in its advisory), a handler that raises leaves its message to come back after the ack wait,
and `in_progress` keeps a message from coming back while its handler works longer than the ack wait.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, ConsumerInfo, StreamConfig

from leadersboard.consume import DONE, GIVE_UP, Outcome, RetryLater, consume, in_progress

STREAM, SUBJECT, CONSUMER = "SETTLE_T", "settle.t", "settle"
ACK_WAIT_S = 2.0
FETCH_TIMEOUT_S = 0.5
WAIT_S = 30.0
"""The most a test waits for a redelivery that takes a second or two."""

Handler = Callable[[Msg], Awaitable[Outcome]]


@pytest.fixture
async def subscription(nc: NATS) -> AsyncIterator[JetStreamContext.PullSubscription]:
    js = nc.jetstream()
    await js.add_stream(StreamConfig(name=STREAM, subjects=[SUBJECT]))
    config = ConsumerConfig(ack_policy=AckPolicy.EXPLICIT, ack_wait=ACK_WAIT_S)
    pull = await js.pull_subscribe(SUBJECT, durable=CONSUMER, stream=STREAM, config=config)
    yield pull
    await pull.unsubscribe()  # else the connection's drain waits out its full timeout


async def settled(nc: NATS) -> ConsumerInfo:
    """The consumer once it has taken every settle (an ack is sent without waiting for the server)."""
    deadline = time.monotonic() + WAIT_S
    while (info := await nc.jetstream().consumer_info(STREAM, CONSUMER)).num_ack_pending:
        assert time.monotonic() < deadline, f"{info.num_ack_pending} messages still unsettled"
        await asyncio.sleep(0.05)
    return info


async def publish(nc: NATS, *payloads: bytes) -> None:
    for payload in payloads:
        await nc.jetstream().publish(SUBJECT, payload)


async def consume_until(subscription: JetStreamContext.PullSubscription, handle: Handler, done: asyncio.Event) -> None:
    """Consume until `done` is set (by the handler), at most WAIT_S."""
    loop = consume(
        subscription, handle, what="test messages", stop=done, batch=4, fetch_timeout_s=FETCH_TIMEOUT_S, retry_s=0.1
    )
    await asyncio.wait_for(loop, WAIT_S)


async def consume_until_idle(subscription: JetStreamContext.PullSubscription, handle: Handler) -> None:
    """Consume until a fetch finds nothing to deliver."""

    async def idle() -> bool:
        return True

    loop = consume(
        subscription, handle, what="test messages", stop=asyncio.Event(), batch=4,
        fetch_timeout_s=FETCH_TIMEOUT_S, retry_s=0.1, idle=idle,
    )  # fmt: skip
    await asyncio.wait_for(loop, WAIT_S)


async def test_done_is_acked_and_give_up_terminated_neither_offered_again(
    nc: NATS, subscription: JetStreamContext.PullSubscription
) -> None:
    terminated = await nc.subscribe(f"$JS.EVENT.ADVISORY.CONSUMER.MSG_TERMINATED.{STREAM}.{CONSUMER}")
    await publish(nc, b"done", b"poison")
    deliveries: list[tuple[bytes, int]] = []

    async def handle(message: Msg) -> Outcome:
        deliveries.append((message.data, message.metadata.num_delivered))
        return DONE if message.data == b"done" else GIVE_UP

    await consume_until_idle(subscription, handle)
    info = await settled(nc)
    assert sorted(deliveries) == [(b"done", 1), (b"poison", 1)]
    assert (info.num_ack_pending, info.num_pending, info.num_redelivered) == (0, 0, 0)
    assert info.ack_floor is not None and info.ack_floor.stream_seq == 2, "both settled for good"
    advisory = json.loads((await terminated.next_msg(timeout=WAIT_S)).data)
    await terminated.unsubscribe()
    assert advisory["stream_seq"] == 2, "the poison message was terminated, not acked"
    with pytest.raises(NatsTimeoutError):  # nothing is left to offer: neither comes back
        await subscription.fetch(1, timeout=ACK_WAIT_S * 2)


async def test_retry_later_comes_back_after_its_delay(
    nc: NATS, subscription: JetStreamContext.PullSubscription
) -> None:
    await publish(nc, b"job")
    delay_s = 1.5  # a plain nak would bring it back at once
    delivered_at: list[tuple[int, float]] = []
    done = asyncio.Event()

    async def handle(message: Msg) -> Outcome:
        delivered_at.append((message.metadata.num_delivered, time.monotonic()))
        if len(delivered_at) == 1:
            return RetryLater(delay_s)
        done.set()
        return DONE

    await consume_until(subscription, handle, done)
    [(first, naked_at), (second, back_at)] = delivered_at
    assert (first, second) == (1, 2)
    assert back_at - naked_at >= delay_s, "offered again before its delay"
    assert (await settled(nc)).num_pending == 0


async def test_a_handler_that_raises_leaves_the_message_to_come_back_after_the_ack_wait(
    nc: NATS, subscription: JetStreamContext.PullSubscription
) -> None:
    await publish(nc, b"job")
    delivered_at: list[tuple[int, float]] = []
    done = asyncio.Event()

    async def handle(message: Msg) -> Outcome:
        delivered_at.append((message.metadata.num_delivered, time.monotonic()))
        if len(delivered_at) == 1:
            raise ConnectionError("the store is away")
        done.set()
        return DONE

    await consume_until(subscription, handle, done)
    [(first, failed_at), (second, back_at)] = delivered_at
    assert (first, second) == (1, 2)
    # Not nak'ed (that would bring it back within milliseconds): it waits out the ack wait, which runs from
    # its delivery, a little before the handler noted the time.
    assert back_at - failed_at >= ACK_WAIT_S / 2, f"back after {back_at - failed_at:.3f} s"


async def test_in_progress_keeps_a_message_longer_than_the_ack_wait(
    nc: NATS, subscription: JetStreamContext.PullSubscription
) -> None:
    probe = await nc.jetstream().pull_subscribe(SUBJECT, durable=CONSUMER, stream=STREAM)
    await publish(nc, b"long job")
    deliveries: list[int] = []

    async def handle(message: Msg) -> Outcome:
        deliveries.append(message.metadata.num_delivered)
        held_until = time.monotonic() + 2 * ACK_WAIT_S
        while time.monotonic() < held_until:
            assert await in_progress(message)
            await asyncio.sleep(ACK_WAIT_S / 10)
        with pytest.raises(NatsTimeoutError):  # past its ack wait, yet not offered to anyone else
            await probe.fetch(1, timeout=FETCH_TIMEOUT_S)
        return DONE

    await consume_until_idle(subscription, handle)
    await probe.unsubscribe()
    assert deliveries == [1]
    info = await settled(nc)
    assert (info.num_pending, info.num_redelivered) == (0, 0)
