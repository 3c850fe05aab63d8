"""API tokens: shown once, stored only as their SHA-256 in a NATS key-value bucket.

The bucket holds three kinds of keys:

- `<sha256 of the token>`: the token's record (a key without dots);
- `ids.<token id>`: the digest of the token with that id, so a token is found by id in two reads
  (the dispatcher does so for every submission, to refuse one whose token was revoked);
- `users.<name>`: a user an admin disabled; no token is issued to them until they are enabled.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import re
import secrets
from datetime import datetime, timedelta

from nats.js.errors import KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from leadersboard.models.base import utcnow
from leadersboard.models.records import DisabledUser, Role, TokenRecord
from leadersboard.nats_io import kv_keys, kv_read

__all__ = ["TOKEN_PREFIX", "TokenStore", "UserDisabledError", "hash_token", "new_token"]

TOKEN_PREFIX = "lbt_"
TOKEN_ID_CHARS = 12
MIN_TOKEN_ID_PREFIX_CHARS = 8
"""`revoke` also takes the start of an id, at least this long (as the CLI's table may show it cut)."""
LAST_USED_RESOLUTION = timedelta(minutes=1)
ID_PREFIX = "ids."
USER_PREFIX = "users."
_HEX = re.compile(r"^[0-9a-f]+$")


class UserDisabledError(Exception):
    """A token was asked for a user an admin disabled."""

    def __init__(self, state: DisabledUser) -> None:
        super().__init__(
            f"user {state.user!r} was disabled by {state.disabled_by} at {state.disabled_at:%Y-%m-%d %H:%M UTC}; "
            f"enable it first (`leadersboard admin user enable {state.user}`)"
        )
        self.state = state


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
        """Issue a token (or register `token`, for a bootstrap admin); returns it with its record.

        Raises UserDisabledError for a disabled user. The token is stored before the check: a `disable_user`
        running at the same moment either revokes it or is seen here, so none slips through.
        """
        token = token or new_token()
        digest = hash_token(token)
        record = TokenRecord(token_id=digest[:TOKEN_ID_CHARS], user=user, role=role, expires_at=expires_at)
        await self._kv.put(digest, _encode(record))
        await self._kv.put(ID_PREFIX + record.token_id, digest.encode())
        state = await self.disabled(user)
        if state is not None:
            record.revoked = True
            await self._kv.put(digest, _encode(record))
            raise UserDisabledError(state)
        return token, record

    async def ensure(self, token: str, user: str, role: Role) -> TokenRecord:
        """Register `token` unless it is already known (kept revoked if it was revoked)."""
        existing = await self._get(hash_token(token))
        if existing is not None:
            return existing[0]
        return (await self.create(user, role=role, token=token))[1]

    async def verify(self, token: str) -> TokenRecord | None:
        """The token's record if it is known, unrevoked and unexpired."""
        if not token or len(token) > 200:
            return None
        digest = hash_token(token)
        found = await self._get(digest)
        # The lookup is by digest; compare again in constant time so no branch depends on the secret.
        if found is None or not hmac.compare_digest(digest[:TOKEN_ID_CHARS], found[0].token_id):
            return None
        record, revision = found
        now = utcnow()
        if not record.usable(now):
            return None
        if record.last_used_at is None or now - record.last_used_at > LAST_USED_RESOLUTION:
            # At most one write a minute per token: "last used" for admins, not a write per request.
            # Compare-and-set: a plain put here could overwrite a revocation made since the read.
            record.last_used_at = now
            # Changed meanwhile (revoked, or used by another request): "last used" can wait.
            with contextlib.suppress(KeyWrongLastSequenceError):
                await self._kv.update(digest, _encode(record), last=revision)
        return record

    async def list_records(self) -> list[TokenRecord]:
        records = [found[0] for found in [await self._get(key) for key in await kv_keys(self._kv, "*")] if found]
        return sorted(records, key=lambda r: r.created_at)

    async def find(self, token_id: str) -> tuple[str, TokenRecord] | None:
        """The digest and record of the token with this id (or, for `revoke`, whose id starts with it)."""
        if len(token_id) < MIN_TOKEN_ID_PREFIX_CHARS or not _HEX.match(token_id):
            return None
        indexed = await kv_read(self._kv, ID_PREFIX + token_id) if len(token_id) == TOKEN_ID_CHARS else None
        # Tokens issued before the index existed, and shortened ids, are looked for among all digests.
        candidates = [indexed[0].decode()] if indexed else await kv_keys(self._kv, "*")
        for digest in candidates:
            if digest.startswith(token_id):
                found = await self._get(digest)
                if found is not None:
                    return digest, found[0]
        return None

    async def revoke(self, token_id: str) -> TokenRecord | None:
        found = await self.find(token_id)
        if found is None:
            return None
        digest, record = found
        record.revoked = True
        await self._kv.put(digest, _encode(record))
        return record

    async def revoke_user(self, user: str) -> list[TokenRecord]:
        """Revoke every token of `user` still usable; returns them."""
        revoked = []
        for record in await self.list_records():
            if record.user == user and not record.revoked:
                again = await self.revoke(record.token_id)
                if again is not None:
                    revoked.append(again)
        return revoked

    async def disable_user(self, user: str, *, by: str) -> list[TokenRecord]:
        """Refuse new tokens for `user`, then revoke its tokens (in this order: see `create`)."""
        state = DisabledUser(user=user, disabled_by=by)
        await self._kv.put(USER_PREFIX + user, state.model_dump_json().encode())
        return await self.revoke_user(user)

    async def enable_user(self, user: str) -> bool:
        """Issue tokens to `user` again (its revoked tokens stay revoked); False if it was not disabled."""
        if await self.disabled(user) is None:
            return False
        await self._kv.delete(USER_PREFIX + user)
        return True

    async def disabled(self, user: str) -> DisabledUser | None:
        found = await kv_read(self._kv, USER_PREFIX + user)
        return None if found is None else DisabledUser.model_validate_json(found[0])

    async def _get(self, digest: str) -> tuple[TokenRecord, int] | None:
        found = await kv_read(self._kv, digest)
        return None if found is None else (TokenRecord.model_validate_json(found[0]), found[1])


def _encode(record: TokenRecord) -> bytes:
    return record.model_dump_json().encode()
