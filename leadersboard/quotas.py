"""Quotas in a NATS KV bucket: defaults, per-user overrides, and the rolling-hour ledger of submissions.

Keys: `default` -> Quota, `user.<name>` -> QuotaOverride, `rate.<name>` -> RateLedger. Every change is
read at the next decision, so admins' edits take effect without a restart. The ledger is updated
compare-and-set, so concurrent requests (from any number of ingest replicas) never exceed the limit.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from nats.js.errors import KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from leadersboard.models.records import Quota, QuotaOverride, RateLedger
from leadersboard.nats_io import kv_read, kv_values

__all__ = ["RATE_WINDOW_S", "QuotaStore", "RateDecision"]

RATE_WINDOW_S = 3600.0


@dataclass(frozen=True)
class RateDecision:
    allowed: bool
    limit: int
    retry_after_s: float = 0.0


class QuotaStore:
    def __init__(self, kv: KeyValue) -> None:
        self._kv = kv

    async def default(self) -> Quota:
        raw = await self._raw("default")
        return Quota() if raw is None else Quota.model_validate_json(raw[0])

    async def set_default(self, quota: Quota) -> None:
        await self._kv.put("default", quota.model_dump_json().encode())

    async def override(self, user: str) -> QuotaOverride | None:
        raw = await self._raw(f"user.{user}")
        return None if raw is None else QuotaOverride.model_validate_json(raw[0])

    async def set_override(self, user: str, override: QuotaOverride) -> None:
        await self._kv.put(f"user.{user}", override.model_dump_json().encode())

    async def overrides(self) -> dict[str, QuotaOverride]:
        values = await kv_values(self._kv, "user.*")
        return {key.removeprefix("user."): QuotaOverride.model_validate_json(value) for key, value in values.items()}

    async def effective(self, user: str) -> Quota:
        default = await self.default()
        override = await self.override(user)
        return default if override is None else override.apply(default)

    async def reserve(self, user: str, *, now_s: float | None = None) -> RateDecision:
        """Count one more submission in the user's rolling hour, unless that would pass the limit."""
        now_s = time.time() if now_s is None else now_s
        limit = (await self.effective(user)).per_hour
        key = f"rate.{user}"
        while True:
            raw = await self._raw(key)
            ledger = RateLedger() if raw is None else RateLedger.model_validate_json(raw[0])
            recent = sorted(t for t in ledger.accepted_at_s if t > now_s - RATE_WINDOW_S)
            if len(recent) >= limit:
                oldest_counted = recent[len(recent) - limit] if limit else now_s
                # A concurrent request may have counted itself a moment after `now_s`: never more than the window.
                wait_s = min(RATE_WINDOW_S, oldest_counted + RATE_WINDOW_S - now_s)
                return RateDecision(False, limit, max(1.0, wait_s))
            value = RateLedger(accepted_at_s=[*recent, now_s]).model_dump_json().encode()
            try:
                if raw is None:
                    await self._kv.create(key, value)
                else:
                    await self._kv.update(key, value, last=raw[1])
            except KeyWrongLastSequenceError:
                continue  # another request got there first: decide again on the new ledger
            return RateDecision(True, limit)

    async def _raw(self, key: str) -> tuple[bytes, int] | None:
        return await kv_read(self._kv, key)
