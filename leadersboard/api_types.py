"""Typed shapes of the API's JSON answers that have no model of their own (tokens, quotas; the leaderboard's are
models: leadersboard/models/leaderboard.py)."""

from __future__ import annotations

from typing import TypedDict

__all__ = [
    "CreatedToken",
    "Limits",
    "QuotaOverview",
    "TokenInfo",
    "UserQuota",
    "UserState",
    "WhoAmI",
]


class TokenInfo(TypedDict):
    token_id: str
    user: str
    role: str
    created_at: str
    expires_at: str | None
    revoked: bool
    last_used_at: str | None


class CreatedToken(TokenInfo):
    token: str
    """Shown once; only its SHA-256 is stored."""


class WhoAmI(TypedDict):
    user: str
    role: str
    token_id: str
    expires_at: str | None


class Limits(TypedDict):
    per_hour: int
    concurrent: int
    job_timeout_s: int | None
    job_disk_gib: float | None
    job_memory_gib: float | None


class Override(TypedDict):
    per_hour: int | None
    concurrent: int | None
    job_timeout_s: int | None
    job_disk_gib: float | None
    job_memory_gib: float | None


class QuotaOverview(TypedDict):
    default: Limits
    users: dict[str, Override]


class UserQuota(TypedDict):
    user: str
    effective: Limits
    override: Override | None


class UserState(TypedDict):
    """The answer of `admin/users/{user}/disable` and `/enable`."""

    user: str
    disabled: bool
    disabled_at: str | None
    disabled_by: str | None
    revoked_tokens: list[str]
    """Ids of the tokens this call revoked."""
    cancelled: list[str]
    """Submissions (pending or running) this call cancelled."""
