"""The token store against a real nats-server: tokens are shown once and stored only as digests."""

from __future__ import annotations

from datetime import timedelta

import pytest
from nats.aio.client import Client as NATS
from nats.js.errors import NotFoundError

from leadersboard.models.base import utcnow
from leadersboard.models.records import Role
from leadersboard.settings import NatsSettings
from leadersboard.tokens import TOKEN_PREFIX, TokenStore, new_token

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def store(nc: NATS) -> TokenStore:
    return TokenStore(await nc.jetstream().key_value(NatsSettings().tokens_kv_bucket))


async def _everything_stored(nc: NATS) -> list[bytes]:
    """Every key and value of the bucket, and every raw message left in its stream."""
    bucket = NatsSettings().tokens_kv_bucket
    js = nc.jetstream()
    kv = await js.key_value(bucket)
    stored: list[bytes] = []
    for key in await kv.keys():
        entry = await kv.get(key)
        stored += [key.encode(), entry.value or b""]
    stream = f"KV_{bucket}"
    info = await js.stream_info(stream)
    for seq in range(info.state.first_seq, info.state.last_seq + 1):
        try:
            msg = await js.get_msg(stream, seq)
        except NotFoundError:
            continue
        stored += [(msg.subject or "").encode(), msg.data or b""]
    return stored


async def test_create_then_verify_returns_the_record(store: TokenStore) -> None:
    token, record = await store.create("alice")
    admin_token, admin_record = await store.create("root", role=Role.ADMIN)
    assert token.startswith(TOKEN_PREFIX) and token != admin_token
    verified = await store.verify(token)
    assert verified is not None
    assert (verified.user, verified.role, verified.token_id) == ("alice", Role.USER, record.token_id)
    verified_admin = await store.verify(admin_token)
    assert verified_admin is not None
    assert (verified_admin.user, verified_admin.role) == ("root", Role.ADMIN)
    assert admin_record.token_id != record.token_id


async def test_the_clear_token_is_never_stored(nc: NATS, store: TokenStore) -> None:
    tokens = [(await store.create(user))[0] for user in ("alice", "bob")]
    tokens.append(new_token())
    await store.ensure(tokens[-1], "admin", Role.ADMIN)
    await store.revoke((await store.list_records())[0].token_id)
    stored = await _everything_stored(nc)
    assert len(stored) >= 6
    secrets = [t.encode() for t in tokens] + [t.removeprefix(TOKEN_PREFIX).encode() for t in tokens]
    for blob in stored:
        for secret in secrets:
            assert secret not in blob


async def test_a_wrong_token_is_refused(store: TokenStore) -> None:
    token, _ = await store.create("alice")
    assert await store.verify(new_token()) is None
    assert await store.verify(token[:-1] + ("A" if token[-1] != "A" else "B")) is None
    assert await store.verify(token.removeprefix(TOKEN_PREFIX)) is None
    assert await store.verify("") is None
    assert await store.verify(token) is not None


async def test_a_revoked_token_is_refused(store: TokenStore) -> None:
    token, record = await store.create("alice")
    other, _ = await store.create("bob")
    revoked = await store.revoke(record.token_id)
    assert revoked is not None and revoked.revoked and revoked.user == "alice"
    assert await store.verify(token) is None
    assert await store.verify(other) is not None
    assert await store.revoke("nosuchid0000") is None


async def test_an_expired_token_is_refused(store: TokenStore) -> None:
    expired, _ = await store.create("alice", expires_at=utcnow() - timedelta(seconds=1))
    current, _ = await store.create("alice", expires_at=utcnow() + timedelta(hours=1))
    assert await store.verify(expired) is None
    assert await store.verify(current) is not None


async def test_ensure_is_idempotent_and_does_not_unrevoke(store: TokenStore) -> None:
    token = new_token()
    first = await store.ensure(token, "admin", Role.ADMIN)
    second = await store.ensure(token, "admin", Role.ADMIN)
    assert second == first
    assert len(await store.list_records()) == 1
    await store.revoke(first.token_id)
    again = await store.ensure(token, "admin", Role.ADMIN)
    assert again.revoked
    assert await store.verify(token) is None
    assert len(await store.list_records()) == 1
