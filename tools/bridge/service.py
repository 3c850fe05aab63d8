"""The bridge's main loop: `weed filer.meta.tail` -> MinIO-shaped events on the JetStream events stream.

Delivery is at least once, never lossy: an event's tsNs becomes the checkpoint only after its
publish was acked, the tail resumes a little before the checkpoint, and every message carries a
`Nats-Msg-Id` so that the stream drops what a replay publishes twice within its duplicate window.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import logging
import time
from collections.abc import Awaitable
from pathlib import Path
from typing import Any, TypeVar

import nats.errors
import nats.js.errors
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext

from leadersboard import nats_io
from leadersboard.models.s3_events import S3EventEnvelope
from leadersboard.waiting import wait_set
from tools.bridge.checkpoint import load_checkpoint, save_checkpoint
from tools.bridge.settings import BridgeSettings
from tools.bridge.translate import EventStreamParser, event_ts_ns, to_minio_event
from tools.stack import procs

__all__ = ["run"]

log = logging.getLogger(__name__)

READ_CHUNK_BYTES = 64 * 1024
CHECKPOINT_INTERVAL_S = 0.2
PUBLISH_TIMEOUT_S = 5.0
RETRY_MIN_S = 0.2
RETRY_MAX_S = 5.0
TAIL_STOP_GRACE_S = 2.0
DRAIN_TIMEOUT_S = 5.0
# Everything a publish can raise while NATS is down, restarting or missing the stream
# (asyncio.TimeoutError is an OSError since Python 3.11).
PUBLISH_ERRORS = (nats.errors.Error, OSError)

T = TypeVar("T")


async def run(settings: BridgeSettings, *, stop: asyncio.Event | None = None) -> None:
    """Bridge until `stop` is set, then kill the tail, save the checkpoint and drain NATS."""
    if stop is None:
        stop = asyncio.Event()
    nc = await _connect(settings, stop)
    if nc is None:
        return
    bridge = _Bridge(settings, nc.jetstream(), stop)
    try:
        await bridge.run()
    finally:
        bridge.checkpoint.save()
        await _close(nc)
    log.info("bridge stopped at tsNs=%s", bridge.checkpoint.last_ts_ns)


class _Checkpoint:
    """The last handled tsNs, in memory at once and on disk at most every CHECKPOINT_INTERVAL_S."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.last_ts_ns = load_checkpoint(path)
        self._saved_ts_ns = self.last_ts_ns
        self._saved_at_s = time.monotonic()

    def advance(self, ts_ns: int) -> None:
        self.last_ts_ns = ts_ns

    def maybe_save(self) -> None:
        if time.monotonic() - self._saved_at_s >= CHECKPOINT_INTERVAL_S:
            self.save()

    def save(self) -> None:
        if self.last_ts_ns is None or self.last_ts_ns == self._saved_ts_ns:
            return
        try:
            save_checkpoint(self.path, self.last_ts_ns)
        except OSError as exc:
            # Not fatal: a stale checkpoint only means a longer replay, deduplicated downstream.
            log.warning("cannot save checkpoint %s: %s", self.path, exc)
            return
        self._saved_ts_ns = self.last_ts_ns
        self._saved_at_s = time.monotonic()


class _Bridge:
    def __init__(self, settings: BridgeSettings, js: JetStreamContext, stop: asyncio.Event) -> None:
        self.settings = settings
        self.js = js
        self.stop = stop
        self.checkpoint = _Checkpoint(settings.checkpoint_path)

    async def run(self) -> None:
        while not self.stop.is_set():
            await self._tail_once()
            # The tail exits (rc=0 too) whenever the filer stops or is unreachable: start it again.
            await _sleep_unless_stopped(self.stop, self.settings.restart_backoff_s)

    def tail_argv(self) -> list[str]:
        weed = self.settings.weed_binary or procs.bin_path("weed")
        return [
            weed,
            "filer.meta.tail",
            f"-filer={self.settings.filer_address}",
            f"-pathPrefix=/buckets/{self.settings.bucket}",
            f"-timeAgo={self._time_ago_s():.3f}s",
        ]

    def _time_ago_s(self) -> float:
        """Replay from a little before the checkpoint; events up to it are then skipped by tsNs."""
        last_ts_ns = self.checkpoint.last_ts_ns
        if last_ts_ns is None:
            return self.settings.initial_lookback_s
        behind_s = max(time.time_ns() - last_ts_ns, 0) / 1e9
        return behind_s + self.settings.replay_margin_s

    async def _tail_once(self) -> None:
        argv = self.tail_argv()
        log.info("starting %s", " ".join(argv[1:]))
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                cwd=self.settings.seaweed_security_dir,  # weed reads its client certificate's security.toml here
            )
        except OSError as exc:
            log.warning("cannot start %s: %s", argv[0], exc)
            return
        try:
            await self._pump(proc)
        finally:
            await _terminate(proc)
        if not self.stop.is_set():
            log.warning("filer.meta.tail exited with rc=%s; restarting", proc.returncode)

    async def _pump(self, proc: asyncio.subprocess.Process) -> None:
        """Read the tail until EOF or stop; wake every CHECKPOINT_INTERVAL_S to flush the checkpoint."""
        assert proc.stdout is not None
        parser = EventStreamParser()
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        stopped: asyncio.Future[Any] = asyncio.ensure_future(self.stop.wait())
        read: asyncio.Future[Any] | None = None
        try:
            while True:
                if read is None:
                    read = asyncio.ensure_future(proc.stdout.read(READ_CHUNK_BYTES))
                done, _ = await asyncio.wait(
                    {read, stopped}, timeout=CHECKPOINT_INTERVAL_S, return_when=asyncio.FIRST_COMPLETED
                )
                self.checkpoint.maybe_save()
                if stopped in done:
                    return
                if read not in done:
                    continue
                chunk: bytes = read.result()
                read = None
                at_eof = not chunk
                for event in parser.feed(decoder.decode(chunk, final=at_eof)):
                    if not await self._handle(event):
                        return
                if at_eof:
                    break
        finally:
            for future in (read, stopped):
                if future is not None:
                    future.cancel()
        leftover = parser.reset()
        if leftover.strip():
            log.warning("filer.meta.tail ended mid-output: %.200s", leftover.strip())

    async def _handle(self, event: dict[str, Any]) -> bool:
        """Publish the event if it is new content; False when stopped before it could be published."""
        ts_ns = event_ts_ns(event)
        if ts_ns is None:
            log.warning("filer event without tsNs skipped: %.200s", event)
            return True
        last_ts_ns = self.checkpoint.last_ts_ns
        if last_ts_ns is not None and ts_ns <= last_ts_ns:
            return True  # replayed from before the checkpoint, or repeated by the tail
        try:
            envelope = to_minio_event(event, bucket=self.settings.bucket)
        except Exception:  # a poison event must not stall the bridge forever
            log.warning("cannot translate filer event tsNs=%d; skipped", ts_ns, exc_info=True)
            envelope = None
        if envelope is not None and not await self._publish(envelope, ts_ns):
            return False
        self.checkpoint.advance(ts_ns)
        self.checkpoint.maybe_save()
        return True

    async def _publish(self, envelope: S3EventEnvelope, ts_ns: int) -> bool:
        """Publish until acked (never skip an event); False if stopped first."""
        payload = envelope.model_dump_json().encode()
        headers = {"Nats-Msg-Id": f"{envelope.Key}@{ts_ns}"}
        delay_s = RETRY_MIN_S
        while not self.stop.is_set():
            publish = self.js.publish(self.settings.events_subject, payload, timeout=PUBLISH_TIMEOUT_S, headers=headers)
            try:
                # Abandoning an unacked publish on stop is safe: the event stays after the
                # checkpoint, so the next run publishes it again under the same Nats-Msg-Id.
                if await _unless_stopped(publish, self.stop) is None:
                    return False
            except PUBLISH_ERRORS as exc:
                log.warning("publish of %s failed (%r); retrying in %.1f s", envelope.Key, exc, delay_s)
                if isinstance(exc, nats.js.errors.NoStreamResponseError):
                    # NATS came back without its storage. Declaring streams is the admin's right, not the
                    # events user's: the event waits here (behind the checkpoint) until the stack does.
                    log.warning("no stream captures %s: restart the stack to declare it", self.settings.events_subject)
            else:
                log.debug("published %s %s tsNs=%d", envelope.EventName, envelope.Key, ts_ns)
                return True
            await _sleep_unless_stopped(self.stop, delay_s)
            delay_s = min(delay_s * 2, RETRY_MAX_S)
        return False


async def _connect(settings: BridgeSettings, stop: asyncio.Event) -> NATS | None:
    """Connect, retrying until it works; None if stopped first. The stack declares the topology."""
    delay_s = RETRY_MIN_S
    while not stop.is_set():
        nc: NATS | None = None
        try:
            nc = await _unless_stopped(nats_io.connect(settings, name="leadersboard-bridge"), stop)
            return nc
        except PUBLISH_ERRORS as exc:
            log.warning("NATS at %s not usable (%r); retrying in %.1f s", settings.nats_url, exc, delay_s)
            if nc is not None:
                await _close(nc)
        await _sleep_unless_stopped(stop, delay_s)
        delay_s = min(delay_s * 2, RETRY_MAX_S)
    return None


async def _unless_stopped(awaitable: Awaitable[T], stop: asyncio.Event) -> T | None:
    """The awaitable's result, or None (the awaitable cancelled) if `stop` is set first."""
    task = asyncio.ensure_future(awaitable)
    stopped = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopped.cancel()
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, *PUBLISH_ERRORS):
                await task
    if task.cancelled():
        return None
    return task.result()


async def _sleep_unless_stopped(stop: asyncio.Event, delay_s: float) -> None:
    await wait_set(stop, delay_s)


async def _terminate(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), timeout=TAIL_STOP_GRACE_S)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
    await proc.wait()


async def _close(nc: NATS) -> None:
    """Drain (flush what is pending) if NATS answers, else just close."""
    try:
        await asyncio.wait_for(nc.drain(), timeout=DRAIN_TIMEOUT_S)
    except (*PUBLISH_ERRORS, TimeoutError) as exc:
        log.warning("NATS drain failed (%r); closing", exc)
        with contextlib.suppress(*PUBLISH_ERRORS):
            await nc.close()
