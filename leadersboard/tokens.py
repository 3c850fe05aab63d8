"""API tokens: shown once, stored only as their SHA-256 in a NATS key-value bucket."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta

from nats.js.errors import NoKeysError
from nats.js.kv import KeyValue

from leadersboard.models import Role, TokenRecord, utcnow
from leadersboard.nats_io import kv_read

__all__ = ["TOKEN_PREFIX", "TokenStore", "hash_token", "new_token"]

TOKEN_PREFIX = "lbt_"
TOKEN_ID_CHARS = 12
LAST_USED_RESOLUTION = timedelta(minutes=1)


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class TokenStore:
    def __init__(self, kv: KeyValue) -> None:
        self._kv = kv

    async def create(
        self,
        user: str,
        *,
        role: Role = Role.USER,
        expires_at: datetime | None = None,
        token: str | None = None,
    ) -> tuple[str, TokenRecord]:
        """Issue a token (or register `token`, for a bootstrap admin); returns it with its record."""
        token = token or new_token()
        digest = hash_token(token)
        record = TokenRecord(token_id=digest[:TOKEN_ID_CHARS], user=user, role=role, expires_at=expires_at)
        await self._kv.put(digest, record.model_dump_json().encode())
        return token, record

    async def ensure(self, token: str, user: str, role: Role) -> TokenRecord:
        """Register `token` unless it is already known (kept revoked if it was revoked)."""
        existing = await self._get(hash_token(token))
        if existing is not None:
            return existing
        return (await self.create(user, role=role, token=token))[1]

    async def verify(self, token: str) -> TokenRecord | None:
        """The token's record if it is known, unrevoked and unexpired."""
        if not token or len(token) > 200:
            return None
        digest = hash_token(token)
        record = await self._get(digest)
        # The lookup is by digest; compare again in constant time so no branch depends on the secret.
        if record is None or not hmac.compare_digest(digest[:TOKEN_ID_CHARS], record.token_id):
            return None
        now = utcnow()
        if not record.usable(now):
            return None
        if record.last_used_at is None or now - record.last_used_at > LAST_USED_RESOLUTION:
            # At most one write a minute per token: "last used" for admins, not a write per request.
            record.last_used_at = now
            await self._kv.put(digest, record.model_dump_json().encode())
        return record

    async def list_records(self) -> list[TokenRecord]:
        try:
            keys = await self._kv.keys()
        except NoKeysError:
            return []
        records = [await self._get(key) for key in keys]
        return sorted((r for r in records if r is not None), key=lambda r: r.created_at)

    async def revoke(self, token_id: str) -> TokenRecord | None:
        try:
            keys = await self._kv.keys()
        except NoKeysError:
            return None
        for key in keys:
            if key.startswith(token_id) and len(token_id) >= 8:
                record = await self._get(key)
                if record is None:
                    continue
                record.revoked = True
                await self._kv.put(key, record.model_dump_json().encode())
                return record
        return None

    async def _get(self, digest: str) -> TokenRecord | None:
        found = await kv_read(self._kv, digest)
        return None if found is None else TokenRecord.model_validate_json(found[0])
