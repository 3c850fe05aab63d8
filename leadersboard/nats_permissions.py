"""Who may do what on NATS: one description, rendered into the local stack's server config and compose's nats.conf.

Every service connects as its own user (docs/architecture.md, "NATS users"). In NATS a JetStream or KV
operation is a publish to a subject, so a permission is a list of subjects:

- a KV put/update/delete is a publish to `$KV.<bucket>.<key>`;
- a KV get is a request to `$JS.API.DIRECT.GET.KV_<bucket>...` or `$JS.API.STREAM.MSG.GET.KV_<bucket>`;
- binding to a bucket (`js.key_value`) is `$JS.API.STREAM.INFO.KV_<bucket>`;
- a KV watch (and `keys()`) is an ordered push consumer: create, delete, and flow-control replies;
- a pull consumer is consumer create/info, `MSG.NEXT` requests and acks to `$JS.ACK.<stream>...`;
- every reply (request answers, publish acks, pushed messages) arrives on the client's inbox.

Each user has its own inbox prefix (`_INBOX_<user>`), so no user can subscribe to another's replies
(a runner cannot read the token records ingest fetches). The one exception is MinIO's notifier, which
cannot change the default `_INBOX.` prefix of its NATS client: the events user may subscribe there,
and no LeadersBoard client ever uses that prefix.

    python -m leadersboard.nats_permissions    # prints compose's `authorization` block (infra/nats/nats.conf)
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

from leadersboard.keys import BOARD_REBUILD_KEY
from leadersboard.settings import NatsSettings

__all__ = [
    "ADMIN",
    "DISPATCHER",
    "DISPATCHER_CONSUMER",
    "EVENTS",
    "INGEST",
    "RUNNER",
    "RUNNER_CONSUMER",
    "SCORER",
    "SCORER_CONSUMER",
    "USERS",
    "Grant",
    "compose_password_var",
    "grants",
    "inbox_prefix",
    "render_authorization",
]

ADMIN = "admin"
"""Declares the topology (streams, KV buckets) and bootstraps tokens: the stack itself, compose's nats-init."""
INGEST = "ingest"
DISPATCHER = "dispatcher"
RUNNER = "runner"
SCORER = "scorer"
"""Scores a finished benchmark job against the reference part (the scorer service)."""
EVENTS = "events"
"""Publishes bucket events: the SeaweedFS bridge locally, MinIO's notifier in compose."""
USERS = (ADMIN, INGEST, DISPATCHER, RUNNER, SCORER, EVENTS)

# The durable consumers' names: the defaults of the dispatcher's, the runners' and the scorer's consumer settings
# (tests/test_compose_nats.py).
DISPATCHER_CONSUMER = "dispatcher"
RUNNER_CONSUMER = "runners"
SCORER_CONSUMER = "scorer"

# nats.go's default inbox (MinIO's notifier); LeadersBoard clients use `inbox_prefix(user)` instead.
DEFAULT_INBOX = "_INBOX"


@dataclass(frozen=True)
class Grant:
    """Subjects a user may publish to and subscribe to; everything else is a permissions violation."""

    publish: tuple[str, ...]
    subscribe: tuple[str, ...]


def inbox_prefix(user: str | None) -> str:
    return DEFAULT_INBOX if user is None else f"{DEFAULT_INBOX}_{user}"


def compose_password_var(user: str) -> str:
    """The .env variable holding `user`'s password in docker-compose (`NATS_INGEST_PASSWORD`, ...)."""
    return f"NATS_{user.upper()}_PASSWORD"


def grants(settings: NatsSettings) -> dict[str, Grant | None]:
    """Each user's grant; None = every subject (the admin only)."""
    s = settings
    return {
        ADMIN: None,
        INGEST: _grant(
            INGEST,
            _kv_read(
                s.tokens_kv_bucket,
                s.quotas_kv_bucket,
                s.issued_kv_bucket,
                s.jobs_kv_bucket,
                s.benchmarks_kv_bucket,
                s.board_kv_bucket,
            ),
            # Tokens are created and revoked, quotas set and rate-counted, submissions noted as
            # issued, a job record is marked cancelled, and benchmarks are registered here. In the leaderboard
            # view it only asks for a rebuild (`meta.rebuild`); the dispatcher keeps the entries.
            _kv_write(
                s.tokens_kv_bucket, s.quotas_kv_bucket, s.issued_kv_bucket, s.jobs_kv_bucket, s.benchmarks_kv_bucket
            ),
            (f"$KV.{s.board_kv_bucket}.{BOARD_REBUILD_KEY}",),
            # An admin's rescore asks the scorer again for every job of a benchmark.
            (s.scoring_subject,),
        ),
        DISPATCHER: _grant(
            DISPATCHER,
            _consume(s.events_stream, DISPATCHER_CONSUMER),
            # Tokens only to read: a submission whose token was revoked before its upload is failed.
            _kv_read(s.jobs_kv_bucket, s.quotas_kv_bucket, s.issued_kv_bucket, s.tokens_kv_bucket, s.board_kv_bucket),
            # Issued notes are purged once the submission is accounted for. It keeps the leaderboard view.
            _kv_write(s.jobs_kv_bucket, s.issued_kv_bucket, s.board_kv_bucket),
            (s.jobs_subject,),
        ),
        # A runner only reads and compare-and-sets records by key: no watch, so no consumer on the bucket.
        # It reads a benchmark's record (its public part) and asks for the scoring of a benchmark job.
        RUNNER: _grant(
            RUNNER,
            _consume(s.jobs_stream, RUNNER_CONSUMER),
            _kv_get(s.jobs_kv_bucket, s.benchmarks_kv_bucket),
            _kv_write(s.jobs_kv_bucket),
            (s.scoring_subject,),
        ),
        # Like the runner, by key only: it settles a job's record and reads its benchmark's (the reference part).
        SCORER: _grant(
            SCORER,
            _consume(s.scoring_stream, SCORER_CONSUMER),
            _kv_get(s.jobs_kv_bucket, s.benchmarks_kv_bucket),
            _kv_write(s.jobs_kv_bucket),
        ),
        EVENTS: Grant(
            publish=(s.events_subject,),
            subscribe=(f"{DEFAULT_INBOX}.>", f"{inbox_prefix(EVENTS)}.>"),
        ),
    }


def _grant(user: str, *publish: tuple[str, ...]) -> Grant:
    return Grant(
        publish=tuple(subject for group in publish for subject in group), subscribe=(f"{inbox_prefix(user)}.>",)
    )


def _kv_get(*buckets: str) -> tuple[str, ...]:
    """Bind and get keys (`js.key_value`, `kv.get`, `nats_io.kv_keys`): no consumer."""
    subjects: list[str] = []
    for bucket in buckets:
        stream = f"KV_{bucket}"
        subjects += [
            f"$JS.API.STREAM.INFO.{stream}",
            f"$JS.API.STREAM.MSG.GET.{stream}",
            f"$JS.API.DIRECT.GET.{stream}.>",
        ]
    return tuple(subjects)


def _kv_read(*buckets: str) -> tuple[str, ...]:
    """Get and watch: `kv.watch()` and `kv.keys()` are an ordered push consumer, re-created after a gap.

    Granted only where a service watches: a push consumer's creator picks its deliver subject, and
    nats-server 2.15 does not check the creator may publish there (nats-io/nats-server#8274).
    """
    subjects = list(_kv_get(*buckets))
    for bucket in buckets:
        stream = f"KV_{bucket}"
        subjects += [
            f"$JS.API.CONSUMER.CREATE.{stream}",
            f"$JS.API.CONSUMER.CREATE.{stream}.>",
            f"$JS.API.CONSUMER.INFO.{stream}.>",
            f"$JS.API.CONSUMER.DELETE.{stream}.>",
            f"$JS.FC.{stream}.>",
        ]
    return tuple(subjects)


def _kv_write(*buckets: str) -> tuple[str, ...]:
    return tuple(f"$KV.{bucket}.>" for bucket in buckets)


def _consume(stream: str, durable: str) -> tuple[str, ...]:
    """The durable pull consumer `durable` on `stream` (created by the service on first start), and no other.

    Only that name: no second consumer, so no push consumer delivering the stream elsewhere; and the
    server refuses to turn the existing pull consumer into a push one.
    """
    return (
        f"$JS.API.STREAM.INFO.{stream}",
        f"$JS.API.CONSUMER.INFO.{stream}.{durable}",
        f"$JS.API.CONSUMER.CREATE.{stream}.{durable}",
        f"$JS.API.CONSUMER.CREATE.{stream}.{durable}.>",
        f"$JS.API.CONSUMER.DURABLE.CREATE.{stream}.{durable}",
        f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{durable}",
        f"$JS.ACK.{stream}.{durable}.>",
    )


def render_authorization(settings: NatsSettings, passwords: Mapping[str, str]) -> str:
    """nats-server's `authorization` block. A password is a literal, or `$VAR` (read from the environment)."""
    lines = ["authorization {", "  users = ["]
    for user, grant in grants(settings).items():
        password = passwords[user]
        secret = password if password.startswith("$") else json.dumps(password)
        lines.append(f"    {{user: {json.dumps(user)}, password: {secret}")
        if grant is not None:
            lines.append("      permissions: {")
            lines += _allow("publish", grant.publish)
            lines += _allow("subscribe", grant.subscribe)
            lines.append("      }")
        lines.append("    }")
    lines += ["  ]", "}"]
    return "\n".join(lines) + "\n"


def _allow(direction: str, subjects: tuple[str, ...]) -> list[str]:
    # Quoted: nats-server would take an unquoted `$JS...` for a variable reference.
    return [f"        {direction}: {{allow: [", *(f"          {json.dumps(s)}" for s in subjects), "        ]}"]


if __name__ == "__main__":
    print(render_authorization(NatsSettings(), {user: f"${compose_password_var(user)}" for user in USERS}), end="")
