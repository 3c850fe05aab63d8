"""Connecting to NATS and declaring the streams and key-value buckets every service relies on."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import cast

import nats
import nats.errors
from nats.aio.client import Client as NATS
from nats.errors import NoServersError
from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import BucketNotFoundError, KeyNotFoundError
from nats.js.kv import KeyValue

from leadersboard.nats_permissions import inbox_prefix
from leadersboard.service import StartRefused
from leadersboard.settings import NatsSettings

__all__ = ["NatsCredentialsError", "connect", "ensure_topology", "kv_bucket", "kv_keys", "kv_read"]

log = logging.getLogger("leadersboard.nats")

EVENTS_MAX_AGE_S = 7 * 24 * 3600
DUPLICATE_WINDOW_S = 10 * 60
# An issued submission is looked for this long (longer than any upload URL lives), then forgotten.
ISSUED_TTL_S = 2 * 24 * 3600
CONNECT_RETRY_S = 1.0


class NatsCredentialsError(StartRefused):
    """nats-server refused the user or password (anonymous clients are refused too): the service cannot start."""


async def connect(
    settings: NatsSettings, *, name: str, on_reconnect: Callable[[], Awaitable[None]] | None = None
) -> NATS:
    """Connect, waiting for NATS if it is not up yet, and reconnect forever: services ride out restarts.

    As `settings.nats_user`, whose replies arrive under its own inbox prefix: the only one its
    permissions let it subscribe to (leadersboard/nats_permissions.py).
    """
    password = settings.nats_password.get_secret_value() if settings.nats_password else None
    connected = False

    async def on_error(exc: Exception) -> None:
        if not connected and "authorization violation" in str(exc).lower():
            # Wrong credentials do not heal by retrying (nats-py would, forever): raised out of
            # nats.connect, which awaits this callback. Later, a refused reconnect is only logged.
            raise NatsCredentialsError(
                f"{name}: NATS at {settings.nats_url} refused user {settings.nats_user!r}: check the service's "
                "NATS_USER and NATS_PASSWORD settings (docs/deploy.md, 'NATS users')"
            ) from exc
        log.warning("%s: NATS connection error: %r", name, exc)

    async def on_disconnect() -> None:
        log.info("%s: disconnected from NATS", name)

    async def on_reconnected() -> None:
        log.info("%s: reconnected to NATS", name)
        if on_reconnect is not None:
            await on_reconnect()

    while True:
        try:
            nc = await nats.connect(
                settings.nats_url,
                name=name,
                user=settings.nats_user,
                password=password,
                inbox_prefix=inbox_prefix(settings.nats_user),
                max_reconnect_attempts=-1,
                reconnect_time_wait=0.5,
                connect_timeout=5,
                allow_reconnect=True,
                error_cb=on_error,
                disconnected_cb=on_disconnect,
                reconnected_cb=on_reconnected,
            )
        except (NoServersError, OSError, TimeoutError) as exc:
            log.warning("%s: NATS at %s not reachable (%r); retrying", name, settings.nats_url, exc)
            await asyncio.sleep(CONNECT_RETRY_S)
        else:
            connected = True
            return nc


async def ensure_topology(js: JetStreamContext, settings: NatsSettings) -> None:
    """Idempotently declare the event stream, the job and scoring work queues and the KV buckets.

    Only the admin user may (the stack before it spawns services, compose's nats-init): services bind
    to what is declared and have no right to create streams or buckets.
    """
    await _ensure_stream(
        js,
        StreamConfig(
            name=settings.events_stream,
            subjects=[settings.events_subject],
            retention=RetentionPolicy.LIMITS,
            storage=StorageType.FILE,
            max_age=EVENTS_MAX_AGE_S,
            duplicate_window=DUPLICATE_WINDOW_S,
            num_replicas=settings.nats_replicas,
        ),
    )
    # Work queues: a message is removed once acked, so each job (each scoring request) is taken by one consumer.
    for stream, subject in (
        (settings.jobs_stream, settings.jobs_subject),
        (settings.scoring_stream, settings.scoring_subject),
    ):
        await _ensure_stream(
            js,
            StreamConfig(
                name=stream,
                subjects=[subject],
                retention=RetentionPolicy.WORK_QUEUE,
                storage=StorageType.FILE,
                discard=DiscardPolicy.OLD,
                duplicate_window=DUPLICATE_WINDOW_S,
                num_replicas=settings.nats_replicas,
            ),
        )
    for bucket in (
        settings.jobs_kv_bucket,
        settings.tokens_kv_bucket,
        settings.quotas_kv_bucket,
        settings.benchmarks_kv_bucket,
        settings.board_kv_bucket,
    ):
        await kv_bucket(js, bucket, replicas=settings.nats_replicas)
    await kv_bucket(js, settings.issued_kv_bucket, replicas=settings.nats_replicas, ttl_s=ISSUED_TTL_S)


async def kv_read(kv: KeyValue, key: str) -> tuple[bytes, int] | None:
    """A key's value and revision (for a compare-and-set update), or None when it is missing or deleted."""
    try:
        entry = await kv.get(key)
    except KeyNotFoundError:
        return None
    if not entry.value or entry.revision is None:
        return None
    return entry.value, entry.revision


async def kv_keys(kv: KeyValue, pattern: str = ">") -> list[str]:
    """The keys matching the subject `pattern` that hold a value or a delete marker, from one server request.

    Not `kv.keys()` or a watch: nats-py 2.16's watcher can report "no more entries" before the first one
    when the server pushed them all before the client's consumer-info answer (about 1 in 20 listings of a
    1,000-key bucket came back empty here). The stream's subject counts are exact. Deleted keys may be
    listed: read each with `kv_read`, which returns None for them.
    """
    # nats-py keeps the bucket's stream (KV_<bucket>), subject prefix ($KV.<bucket>.) and context private.
    prefix = kv._pre
    info = await kv._js.stream_info(kv._stream, subjects_filter=prefix + pattern)
    return sorted(subject[len(prefix) :] for subject in (info.state.subjects or {}))


async def kv_values(kv: KeyValue, pattern: str = ">") -> dict[str, bytes]:
    """The current value of every key matching the subject `pattern` (deleted keys left out)."""
    delivered, missed = await _current(kv, pattern, meta_only=False)
    values = {key: value for key, entry in delivered.items() if (value := put_value(entry)) is not None}
    for key in missed:
        found = await kv_read(kv, key)
        if found is not None:
            values[key] = found[0]
    return values


async def kv_live_keys(kv: KeyValue, pattern: str = ">") -> set[str]:
    """The keys matching the subject `pattern` that hold a value (deleted keys left out), without their values.

    Not `kv.keys()`: besides the early end of its watch (see `kv_keys`), it raises `NoKeysError` on an empty
    bucket and filters by substring, client-side, after listing the whole bucket. The watch here delivers headers
    only, so an emptied value (which `kv_values` leaves out) counts as held.
    """
    delivered, missed = await _current(kv, pattern, meta_only=True)
    live = {key for key, entry in delivered.items() if not removal(entry)}
    return live | {key for key in missed if await kv_read(kv, key) is not None}


def removal(entry: KeyValue.Entry) -> bool:
    """Whether a watched entry is a delete or purge marker (the key holds no value)."""
    return entry.operation in ("DEL", "PURGE")


def put_value(entry: KeyValue.Entry) -> bytes | None:
    """The value a watched entry puts; None for a delete or purge marker (or an emptied value)."""
    return None if removal(entry) or not entry.value else entry.value


async def _current(kv: KeyValue, pattern: str, *, meta_only: bool) -> tuple[dict[str, KeyValue.Entry], list[str]]:
    """The last entry of each key matching `pattern` (delete markers included) from one watch, and the keys the
    stream lists that it did not deliver.

    One watch delivers most entries in bulk, but nats-py's watcher can end before it has delivered every one (see
    `kv_keys`): the caller reads those it missed one by one. Delete markers are delivered rather than ignored so
    that a deleted key is not among them.
    """
    watcher = await kv.watch(pattern, meta_only=meta_only)
    delivered: dict[str, KeyValue.Entry] = {}
    try:
        async for entry in watcher:
            if entry is None:
                break
            delivered[entry.key] = entry
    finally:
        await stop_watcher(watcher)
    return delivered, [key for key in await kv_keys(kv, pattern) if key not in delivered]


async def stop_watcher(watcher: KeyValue.KeyWatcher) -> None:
    """Unsubscribe the watch and delete its consumer.

    nats-py only unsubscribes: the server would keep the ordered consumer until its inactive threshold (5 min,
    nats-py's default), one more for every watch a reload or a listing started. Deleting it is best effort (the
    server drops it anyway): it is gone with a restarted server, or the connection may be closed.
    """
    # nats-py keeps the watch's push subscription (its stream, its current consumer) private; kv.watch set it.
    sub = cast(JetStreamContext.PushSubscription, watcher._sub)
    await watcher.stop()  # type: ignore[no-untyped-call]  # nats-py leaves it unannotated
    with contextlib.suppress(nats.errors.Error):
        await sub._js.delete_consumer(sub._stream, sub._consumer)


async def next_update(watcher: KeyValue.KeyWatcher) -> KeyValue.Entry | None:
    """The watcher's next entry, waiting as long as it takes; None marks the end of the initial values."""
    entry: KeyValue.Entry | None = await watcher.updates(timeout=None)  # type: ignore[no-untyped-call]
    return entry


async def kv_bucket(js: JetStreamContext, bucket: str, *, replicas: int = 1, ttl_s: float | None = None) -> KeyValue:
    try:
        return await js.key_value(bucket)
    except BucketNotFoundError:
        from nats.js.api import KeyValueConfig

        return await js.create_key_value(KeyValueConfig(bucket=bucket, history=1, replicas=replicas, ttl=ttl_s))


async def _ensure_stream(js: JetStreamContext, config: StreamConfig) -> None:
    try:
        await js.stream_info(config.name or "")
    except nats.js.errors.NotFoundError:
        await js.add_stream(config)
