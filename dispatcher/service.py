"""The dispatcher process: consume bucket events, keep the job view, release jobs, sweep lost ones, and keep the
leaderboard view (dispatcher/board.py) from the job view.

An event whose handling fails is delivered again after a delay that doubles each time. When it keeps failing
the same way (`max_event_deliveries`, or `max_event_outage_s` of outage), its submission is recorded `failed`
with the error and the event is terminated: the owner sees why, and nothing is redelivered forever.
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.kv import KeyValue

from dispatcher.board import BoardKeeper
from dispatcher.faults import GAVE_UP, describe, is_outage, repeated_failure
from dispatcher.intake import CREATED_EVENTS, Intake
from dispatcher.recovery import Recovery
from dispatcher.release import Releaser
from dispatcher.settings import DispatcherSettings
from dispatcher.view import JobView
from leadersboard import nats_io
from leadersboard.consume import DONE, GIVE_UP, Outcome, RetryLater, consume
from leadersboard.issued import IssuedStore
from leadersboard.jobs import JobStore
from leadersboard.quotas import QuotaStore
from leadersboard.s3 import make_client
from leadersboard.tokens import TokenStore
from leadersboard.waiting import stop_tasks

__all__ = ["CREATED_EVENTS", "Dispatcher", "run"]

log = logging.getLogger("dispatcher")

RETRY_DELAY_S = 2.0


class Dispatcher:
    """Intake and release around one job view; `handle_event` is the consumer's entry point."""

    def __init__(
        self,
        settings: DispatcherSettings,
        js: JetStreamContext,
        jobs_kv: KeyValue,
        quotas_kv: KeyValue,
        issued_kv: KeyValue,
        tokens_kv: KeyValue,
        *,
        view: JobView | None = None,
    ) -> None:
        self.settings = settings
        self.jobs = JobStore(jobs_kv)
        self.quotas = QuotaStore(quotas_kv)
        self.tokens = TokenStore(tokens_kv)
        self.s3 = make_client(settings)
        self.view = view or JobView()
        self.intake = Intake(settings, self.jobs, self.quotas, self.tokens, self.s3, self.view)
        self.releaser = Releaser(settings, js, self.jobs, self.quotas, self.tokens, self.view)
        self.recovery = Recovery(settings, IssuedStore(issued_kv), self.s3, self.view, self.intake)
        self._jobs_kv = jobs_kv

    async def handle_event(self, data: bytes) -> None:
        await self.intake.handle_event(data)

    async def handle_message(self, message: Msg) -> Outcome:
        """Handle one event: done, retried with a growing delay, or, once it has failed the same way too
        often, its submissions recorded failed and the event given up."""
        try:
            await self.handle_event(message.data)
        except Exception as exc:
            return await self._handle_failure(message, exc)
        return DONE

    async def _handle_failure(self, message: Msg, exc: Exception) -> Outcome:
        delivered, published_at = message.metadata.num_delivered, message.metadata.timestamp
        if is_outage(exc):
            log.warning("event failed on delivery %d: %s", delivered, describe(exc))
        else:  # a bug or a refusal: the traceback is what the admins need
            log.exception("event failed on delivery %d of at most %d", delivered, self.settings.max_event_deliveries)
        reason = _give_up_reason(self.settings, exc, delivered, published_at)
        if reason is not None and await self._dead_letter(message.data, reason):
            return GIVE_UP
        delay_s = min(self.settings.event_retry_delay_s * 2 ** (delivered - 1), self.settings.event_retry_max_delay_s)
        return RetryLater(delay_s)

    async def _dead_letter(self, data: bytes, reason: str) -> bool:
        """Record every submission of the event failed; False only when an outage prevents it (retried)."""
        submissions = self.intake.manifests_in(data)
        try:
            for where in submissions:
                await self.intake.dead_letter(where, reason)
        except Exception as exc:
            if is_outage(exc):
                log.warning("could not record an event's submission as failed (%s); retrying", describe(exc))
                return False
            # Even the smallest record is refused: nothing more to try. The log names what is lost.
            names = ", ".join(f"{w.submission_id} of {w.user}" for w in submissions)
            log.exception("dropping the event of %s: not even a failed record could be stored (%s)", names, reason)
        return True

    async def start_view(self) -> asyncio.Task[None]:
        task = asyncio.create_task(self.view.follow(self._jobs_kv))
        await asyncio.wait_for(self.view.ready.wait(), self.settings.view_load_timeout_s)
        return task

    async def release_forever(self, stop: asyncio.Event) -> None:
        stopping = asyncio.create_task(stop.wait())
        recover_at = time.monotonic() + self.settings.recover_interval_s
        while not stop.is_set():
            changed = asyncio.create_task(self.view.changed.wait())
            timeout_s = self.settings.sweep_interval_s
            await asyncio.wait({changed, stopping}, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
            changed.cancel()
            if stop.is_set():
                return
            self.view.changed.clear()
            try:
                await self.releaser.release_due()
                await self.releaser.fail_lost()
                if time.monotonic() >= recover_at:
                    recover_at = time.monotonic() + self.settings.recover_interval_s
                    await self.recovery.recover_unseen()
            except Exception as exc:  # NATS down for a moment: the next pass retries
                log.warning("release pass failed: %r", exc)
                await asyncio.sleep(RETRY_DELAY_S)


async def run(settings: DispatcherSettings, *, stop: asyncio.Event | None = None) -> None:
    stop = stop or asyncio.Event()
    # Validation is store round trips in threads: more threads than cores, since they mostly wait.
    asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(settings.store_threads))
    view = JobView()

    async def resync_view() -> None:
        view.resync.set()

    nc = await nats_io.connect(settings, name="dispatcher", on_reconnect=resync_view)
    js = nc.jetstream()  # the topology is the admin's to declare (nats_io.ensure_topology): here we only bind
    dispatcher = Dispatcher(
        settings,
        js,
        await js.key_value(settings.jobs_kv_bucket),
        await js.key_value(settings.quotas_kv_bucket),
        await js.key_value(settings.issued_kv_bucket),
        await js.key_value(settings.tokens_kv_bucket),
        view=view,
    )
    keeper = BoardKeeper(
        await js.key_value(settings.board_kv_bucket), view, writes_in_flight=settings.board_writes_in_flight,
        retry_delay_s=settings.board_retry_delay_s,
    )  # fmt: skip
    view_task = await dispatcher.start_view()
    keeping = asyncio.create_task(keeper.run())
    releasing = asyncio.create_task(dispatcher.release_forever(stop))
    subscription = await js.pull_subscribe(
        settings.events_subject,
        durable=settings.consumer_name,
        stream=settings.events_stream,
        config=ConsumerConfig(
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=settings.ack_wait_s,
            deliver_policy=DeliverPolicy.ALL,
            max_ack_pending=10_000,
        ),
    )
    log.info("dispatcher consuming %s", settings.events_subject)

    async def drained() -> bool:  # burst: no event left to fetch, and nothing left to release
        return settings.burst and await dispatcher.releaser.release_due() == 0

    try:
        await consume(
            subscription, dispatcher.handle_message, what="events", stop=stop, batch=settings.fetch_batch,
            fetch_timeout_s=settings.fetch_timeout_s, retry_s=RETRY_DELAY_S, idle=drained,
        )  # fmt: skip
    finally:
        stop.set()
        await releasing
        await stop_tasks(keeping, view_task)
        await subscription.unsubscribe()
        await nc.drain()


def _give_up_reason(settings: DispatcherSettings, exc: Exception, delivered: int, published_at: datetime) -> str | None:
    """Why the event's submissions end failed now, or None while another delivery may succeed."""
    if not is_outage(exc):
        if delivered < settings.max_event_deliveries:
            return None
        return repeated_failure(delivered, exc)
    waited_s = (datetime.now(UTC) - published_at).total_seconds()
    if waited_s < settings.max_event_outage_s:
        return None
    return f"{GAVE_UP}: the store or NATS kept failing for {waited_s:.0f} s ({describe(exc)}); submit again"
