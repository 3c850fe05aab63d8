"""The dispatcher process: consume bucket events, keep the job view, release jobs, sweep lost ones."""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor

from botocore.exceptions import BotoCoreError, ClientError
from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.kv import KeyValue

from dispatcher.intake import CREATED_EVENTS, Intake
from dispatcher.recovery import Recovery
from dispatcher.release import Releaser
from dispatcher.settings import DispatcherSettings
from dispatcher.view import JobView
from leadersboard import nats_io
from leadersboard.issued import IssuedStore
from leadersboard.jobs import JobStore
from leadersboard.quotas import QuotaStore
from leadersboard.s3 import make_client

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
        view: JobView | None = None,
    ) -> None:
        self.settings = settings
        self.jobs = JobStore(jobs_kv)
        self.quotas = QuotaStore(quotas_kv)
        self.s3 = make_client(settings)
        self.view = view or JobView()
        self.intake = Intake(settings, self.jobs, self.quotas, self.s3, self.view)
        self.releaser = Releaser(settings, js, self.jobs, self.quotas, self.view)
        self.recovery = Recovery(settings, IssuedStore(issued_kv), self.s3, self.view, self.intake)
        self._jobs_kv = jobs_kv

    async def handle_event(self, data: bytes) -> None:
        await self.intake.handle_event(data)

    async def start_view(self) -> asyncio.Task[None]:
        task = asyncio.create_task(self.view.follow(self._jobs_kv))
        await asyncio.wait_for(self.view.ready.wait(), 30)
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
    js = nc.jetstream()
    await nats_io.ensure_topology(js, settings)
    dispatcher = Dispatcher(
        settings,
        js,
        await js.key_value(settings.jobs_kv_bucket),
        await js.key_value(settings.quotas_kv_bucket),
        await js.key_value(settings.issued_kv_bucket),
        view,
    )
    view_task = await dispatcher.start_view()
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
    try:
        while not stop.is_set():
            try:
                messages = await subscription.fetch(settings.fetch_batch, timeout=settings.fetch_timeout_s)
            except (NatsTimeoutError, TimeoutError):
                if settings.burst and await dispatcher.releaser.release_due() == 0:
                    break
                continue
            except Exception as exc:  # NATS restarting: the durable consumer is still there afterwards
                log.warning("fetching events failed (%r); retrying", exc)
                await asyncio.sleep(RETRY_DELAY_S)
                continue
            await asyncio.gather(*(_process(dispatcher, message) for message in messages))
    finally:
        stop.set()
        await releasing
        view_task.cancel()
        await asyncio.gather(view_task, return_exceptions=True)
        await subscription.unsubscribe()
        await nc.drain()


async def _process(dispatcher: Dispatcher, message: Msg) -> None:
    try:
        await dispatcher.handle_event(message.data)
    except (BotoCoreError, ClientError, NatsTimeoutError, ConnectionError) as exc:
        # The store or NATS is down: leave the event for later, nothing is lost.
        log.warning("will retry an event: %r", exc)
        await message.nak(delay=RETRY_DELAY_S)
        return
    except Exception:
        log.exception("unexpected error on an event; it will be redelivered")
        await message.nak(delay=RETRY_DELAY_S)
        return
    await message.ack()
