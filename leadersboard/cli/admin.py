"""`leadersboard admin token|quota|jobs|cancel` (with an admin token)."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import Any

from rich.table import Table

from leadersboard.api_types import TokenInfo
from leadersboard.cli.config import client_for
from leadersboard.cli.jobs import cmd_cancel, cmd_jobs
from leadersboard.cli.output import ago, console, err, print_json, when, write

__all__ = ["add_parser"]


def add_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    admin = sub.add_parser("admin", help="administration (needs an admin token)")
    areas = admin.add_subparsers(dest="area", required=True, metavar="{token,quota,jobs,cancel}")

    token = areas.add_parser("token", help="API tokens").add_subparsers(dest="action", required=True)
    create = token.add_parser("create", parents=[common], help="issue a token (shown once)")
    create.add_argument("--user", required=True)
    create.add_argument("--role", choices=["user", "admin"], default="user")
    create.add_argument("--expires-in-s", type=int, help="lifetime in seconds (default: no expiry)")
    create.add_argument("--json", action="store_true")
    create.set_defaults(func=cmd_token_create)
    listing = token.add_parser("list", parents=[common], help="every token (never the tokens themselves)")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(func=cmd_token_list)
    revoke = token.add_parser("revoke", parents=[common], help="revoke a token by its id")
    revoke.add_argument("token_id")
    revoke.set_defaults(func=cmd_token_revoke)

    quota = areas.add_parser("quota", help="submission limits").add_subparsers(dest="action", required=True)
    qset = quota.add_parser("set", parents=[common], help="set a user's limits or the defaults")
    target = qset.add_mutually_exclusive_group(required=True)
    target.add_argument("--user", help="override this user's limits")
    target.add_argument("--default", action="store_true", help="change the default limits of every user")
    qset.add_argument("--per-hour", type=int, help="submissions per rolling hour")
    qset.add_argument("--concurrent", type=int, help="jobs running at once (more wait as pending)")
    qset.add_argument("--json", action="store_true")
    qset.set_defaults(func=cmd_quota_set)
    reset = quota.add_parser("reset", parents=[common], help="drop a user's override: the defaults apply")
    reset.add_argument("--user", required=True)
    reset.add_argument("--json", action="store_true")
    reset.set_defaults(func=cmd_quota_reset)
    show = quota.add_parser("show", parents=[common], help="the defaults and every override, or one user's")
    show.add_argument("--user")
    show.add_argument("--json", action="store_true")
    show.set_defaults(func=cmd_quota_show)

    jobs = areas.add_parser("jobs", parents=[common], help="every user's submissions")
    jobs.add_argument("--json", action="store_true")
    jobs.set_defaults(func=lambda args: cmd_jobs(args, everyone=True))
    cancel = areas.add_parser("cancel", parents=[common], help="cancel anyone's pending or running job")
    cancel.add_argument("id")
    cancel.add_argument("--json", action="store_true")
    cancel.set_defaults(func=cmd_cancel)


def cmd_token_create(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        created = client.create_token(args.user, role=args.role, expires_in_s=args.expires_in_s)
    if args.json:
        print_json(created)
        return 0
    expiry = f", expires {when(created['expires_at'])}" if created["expires_at"] else ", no expiry"
    who = f"[bold]{created['user']}[/bold] ({created['role']}{expiry})"
    err.print(f"token {created['token_id']} for {who}, shown once:")
    write(created["token"] + "\n")
    return 0


def _state(token: TokenInfo) -> str:
    if token["revoked"]:
        return "[red]revoked[/red]"
    expires = token["expires_at"]
    if expires and datetime.fromisoformat(expires.replace("Z", "+00:00")) <= datetime.now(UTC):
        return "[yellow]expired[/yellow]"
    return "[green]active[/green]"


def cmd_token_list(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        tokens = client.list_tokens()
    if args.json:
        print_json(tokens)
        return 0
    table = Table("id", "user", "role", "created", "last used", "expires", "state", header_style="bold")
    for t in tokens:
        expires = f"{when(t['expires_at'])} ({ago(t['expires_at'])})" if t["expires_at"] else "never"
        table.add_row(t["token_id"], t["user"], t["role"], when(t["created_at"]), ago(t["last_used_at"]), expires,
                      _state(t))  # fmt: skip
    console.print(table)
    return 0


def cmd_token_revoke(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        revoked = client.revoke_token(args.token_id)
    err.print(f"revoked token {revoked['token_id']} of {revoked['user']}")
    return 0


def cmd_quota_set(args: argparse.Namespace) -> int:
    if args.per_hour is None and args.concurrent is None:
        err.print("[red]error[/red]: give --per-hour and/or --concurrent")
        return 2
    with client_for(args) as client:
        if args.default:
            limits = client.set_default_quota(per_hour=args.per_hour, concurrent=args.concurrent)
            result: dict[str, Any] = {"default": limits}
            message = f"default: {limits['per_hour']} submissions/hour, {limits['concurrent']} running at once"
        else:
            quota = client.set_user_quota(args.user, per_hour=args.per_hour, concurrent=args.concurrent)
            result = dict(quota)
            eff = quota["effective"]
            message = f"{args.user}: {eff['per_hour']} submissions/hour, {eff['concurrent']} running at once"
    if args.json:
        print_json(result)
    else:
        err.print(message)
    return 0


def cmd_quota_reset(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        quota = client.set_user_quota(args.user, reset=True)
    if args.json:
        print_json(quota)
    else:
        eff = quota["effective"]
        err.print(f"{args.user}: defaults apply ({eff['per_hour']}/hour, {eff['concurrent']} at once)")
    return 0


def cmd_quota_show(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        if args.user:
            quota = client.user_quota(args.user)
            if args.json:
                print_json(quota)
                return 0
            table = Table("user", "per hour", "concurrent", "source", header_style="bold")
            eff, override = quota["effective"], quota["override"]
            own_rate = override is not None and override["per_hour"] is not None
            own_concurrency = override is not None and override["concurrent"] is not None
            table.add_row(
                quota["user"],
                str(eff["per_hour"]) + ("" if own_rate else " (default)"),
                str(eff["concurrent"]) + ("" if own_concurrency else " (default)"),
                "override" if quota["override"] else "defaults",
            )
            console.print(table)
            return 0
        overview = client.quotas()
    if args.json:
        print_json(overview)
        return 0
    default = overview["default"]
    table = Table("user", "per hour", "concurrent", title="Quotas", header_style="bold")
    table.add_row("[bold](default)[/bold]", str(default["per_hour"]), str(default["concurrent"]))
    for user, limits in overview["users"].items():
        per_hour, concurrent = limits["per_hour"], limits["concurrent"]
        table.add_row(user, f"{default['per_hour']} (default)" if per_hour is None else str(per_hour),
                      f"{default['concurrent']} (default)" if concurrent is None else str(concurrent))  # fmt: skip
    console.print(table)
    return 0
