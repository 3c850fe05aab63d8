"""`leadersboard admin token|user|quota|benchmark|leaderboard|jobs|cancel|delete|retention|usage` (with an admin
token)."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from rich.table import Table

from leadersboard.api_types import TokenInfo
from tools.cli import benchmarks, boards, housekeeping
from tools.cli.config import client_for
from tools.cli.jobs import cmd_cancel, cmd_jobs
from tools.cli.output import ago, console, err, print_json, when, write

__all__ = ["add_parser"]


def add_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    admin = sub.add_parser("admin", help="administration (needs an admin token)")
    areas = admin.add_subparsers(
        dest="area",
        required=True,
        metavar="{token,user,quota,benchmark,leaderboard,jobs,cancel,delete,retention,usage}",
    )

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

    user = areas.add_parser("user", help="user accounts").add_subparsers(dest="action", required=True)
    disable = user.add_parser(
        "disable", parents=[common], help="revoke a user's tokens, refuse new ones, cancel its pending and running jobs"
    )
    enable = user.add_parser("enable", parents=[common], help="let a disabled user be issued tokens again")
    for action, func in ((disable, cmd_user_disable), (enable, cmd_user_enable)):
        action.add_argument("name")
        action.add_argument("--json", action="store_true")
        action.set_defaults(func=func)

    quota = areas.add_parser("quota", help="submission limits").add_subparsers(dest="action", required=True)
    qset = quota.add_parser("set", parents=[common], help="set a user's limits or the defaults")
    target = qset.add_mutually_exclusive_group(required=True)
    target.add_argument("--user", help="override this user's limits")
    target.add_argument("--default", action="store_true", help="change the default limits of every user")
    qset.add_argument("--per-hour", type=int, help="submissions per rolling hour")
    qset.add_argument("--concurrent", type=int, help="jobs running at once (more wait as pending)")
    qset.add_argument("--timeout-s", dest="job_timeout_s", type=int, help="time limit of each job, in seconds")
    qset.add_argument("--disk-gib", dest="job_disk_gib", type=float, help="disk of each job (working and output dirs)")
    qset.add_argument("--memory-gib", dest="job_memory_gib", type=float, help="memory of each job (all its processes)")
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

    benchmarks.add_admin_parser(areas, common)
    boards.add_admin_parser(areas, common)

    jobs = areas.add_parser("jobs", parents=[common], help="every user's submissions")
    jobs.add_argument("--json", action="store_true")
    jobs.set_defaults(func=lambda args: cmd_jobs(args, everyone=True))
    cancel = areas.add_parser("cancel", parents=[common], help="cancel anyone's pending or running job")
    cancel.add_argument("id")
    cancel.add_argument("--json", action="store_true")
    cancel.set_defaults(func=cmd_cancel)
    housekeeping.add_admin_parsers(areas, common)


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


def cmd_user_disable(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        state = client.disable_user(args.name)
    if args.json:
        print_json(state)
        return 0
    tokens, jobs = len(state["revoked_tokens"]), state["cancelled"]
    err.print(f"disabled [bold]{state['user']}[/bold]: {tokens} token(s) revoked, {len(jobs)} job(s) cancelled")
    for submission_id in jobs:
        write(submission_id + "\n")
    return 0


def cmd_user_enable(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        state = client.enable_user(args.name)
    if args.json:
        print_json(state)
        return 0
    err.print(
        f"enabled [bold]{state['user']}[/bold]: its revoked tokens stay revoked; issue a new one with "
        f"`leadersboard admin token create --user {state['user']}`"
    )
    return 0


LIMITS = ("per_hour", "concurrent", "job_timeout_s", "job_disk_gib", "job_memory_gib")
LIMIT_HEADERS = ("per hour", "concurrent", "time limit", "disk", "memory")
UNITS = {"job_timeout_s": "s", "job_disk_gib": "GiB", "job_memory_gib": "GiB"}


def _limit_text(name: str, value: Any) -> str:
    if name in UNITS:
        return "runner default" if value is None else f"{value:g} {UNITS[name]}"
    return str(value)


def _describe(limits: Mapping[str, Any]) -> str:
    per_job = [
        f"{what} {_limit_text(name, limits.get(name))}"
        for name, what in (("job_timeout_s", "time"), ("job_disk_gib", "disk"), ("job_memory_gib", "memory"))
    ]
    return (
        f"{limits['per_hour']} submissions/hour, {limits['concurrent']} running at once, per job: {', '.join(per_job)}"
    )


def cmd_quota_set(args: argparse.Namespace) -> int:
    given = {name: getattr(args, name) for name in LIMITS}
    if all(value is None for value in given.values()):
        err.print("[red]error[/red]: give --per-hour, --concurrent, --timeout-s, --disk-gib and/or --memory-gib")
        return 2
    with client_for(args) as client:
        if args.default:
            limits = client.set_default_quota(**given)
            result: dict[str, Any] = {"default": limits}
            message = f"default: {_describe(limits)}"
        else:
            quota = client.set_user_quota(args.user, **given)
            result = dict(quota)
            message = f"{args.user}: {_describe(quota['effective'])}"
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
        err.print(f"{args.user}: defaults apply ({_describe(quota['effective'])})")
    return 0


def _cells(values: Mapping[str, Any], default: Mapping[str, Any]) -> list[str]:
    """One cell per limit: the user's own value, or the default's marked as such."""
    return [
        _limit_text(name, default[name]) + " (default)" if values.get(name) is None else _limit_text(name, values[name])
        for name in LIMITS
    ]


def cmd_quota_show(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        if args.user:
            quota = client.user_quota(args.user)
            if args.json:
                print_json(quota)
                return 0
            table = Table("user", *LIMIT_HEADERS, "source", header_style="bold")
            own: Mapping[str, Any] = quota["override"] or {}
            table.add_row(quota["user"], *_cells(own, quota["effective"]), "override" if own else "defaults")
            console.print(table)
            return 0
        overview = client.quotas()
    if args.json:
        print_json(overview)
        return 0
    default = overview["default"]
    table = Table("user", *LIMIT_HEADERS, title="Quotas", header_style="bold")
    table.add_row("[bold](default)[/bold]", *(_limit_text(name, dict(default).get(name)) for name in LIMITS))
    for user, limits in overview["users"].items():
        table.add_row(user, *_cells(limits, default))
    console.print(table)
    return 0
