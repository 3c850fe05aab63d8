"""`leadersboard login|logout|jobs (list)|show|logs|cancel` (the leaderboard: tools/cli/boards.py)."""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import Any

from rich.table import Table

from leadersboard.client import ApiError, Client
from leadersboard.models.leaderboard import MAX_PAGE_LIMIT
from leadersboard.models.records import JobRecord
from tools.cli.config import DEFAULT_URL, client_for, config_path, connection, given_token, save_config
from tools.cli.output import (
    benchmark_text,
    console,
    duration,
    err,
    human_bytes,
    job_status_text,
    job_table,
    json_or,
    print_json,
    report,
    scores_text,
    status_text,
    when,
    write,
)
from tools.cli.settings import cli_settings

__all__ = ["add_parsers", "cmd_cancel", "cmd_jobs"]


def add_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    login = sub.add_parser("login", parents=[common], help=f"check a token and save it (default API {DEFAULT_URL})")
    login.add_argument("--stdin", action="store_true", help="read the token from standard input")
    login.set_defaults(func=cmd_login)
    sub.add_parser("logout", help="forget the saved token").set_defaults(func=cmd_logout)

    jobs = sub.add_parser("jobs", aliases=["list"], parents=[common], help="your submissions, newest first")
    jobs.add_argument("--all", action="store_true", help="everyone's (admins)")
    jobs.add_argument("--limit", type=int, help=f"one page of at most this many (1-{MAX_PAGE_LIMIT}); default: all")
    jobs.add_argument("--cursor", help="the page after this submission id (the `next page` a page names)")
    jobs.add_argument("--json", action="store_true", help="a list; with --limit or --cursor, the page object")
    jobs.set_defaults(func=cmd_jobs)

    show = sub.add_parser("show", parents=[common], help="one submission in detail")
    show.add_argument("id")
    show.add_argument("--json", action="store_true")
    show.set_defaults(func=cmd_show)

    logs = sub.add_parser("logs", parents=[common], help="a job's log")
    logs.add_argument("id")
    logs.add_argument("-f", "--follow", action="store_true", help="follow until the job ends (exit 0 if completed)")
    logs.add_argument("--json", action="store_true", help='{"submission_id", "status", "next_offset", "text"}')
    logs.set_defaults(func=cmd_logs)

    cancel = sub.add_parser("cancel", parents=[common], help="cancel a pending or running job")
    cancel.add_argument("id")
    cancel.add_argument("--json", action="store_true")
    cancel.set_defaults(func=cmd_cancel)


def cmd_login(args: argparse.Namespace) -> int:
    conn = connection(args)
    _, token = given_token(args, cli_settings())  # never the saved one: login checks the token it saves
    if not token:
        if args.stdin or not sys.stdin.isatty():
            token = sys.stdin.readline().strip()
        else:
            token = getpass.getpass(f"API token for {conn.url}: ").strip()
    if not token:
        err.print("[red]error[/red]: no token given")
        return 2
    with Client(conn.url, token, timeout_s=conn.timeout_s) as client:
        try:
            me = client.whoami()
        except ApiError as exc:
            if exc.status >= 500:
                raise  # the API failed; the token was not judged
            err.print(f"[red]not saved[/red]: {conn.url} refused the token ({exc.status} {exc.code}: {exc.message})")
            return 1
    path = save_config(conn.url, token)
    expiry = f", expires {when(me['expires_at'])}" if me["expires_at"] else ""
    err.print(f"logged in to {conn.url} as [bold]{me['user']}[/bold] ({me['role']}{expiry}); saved in {path}")
    return 0


def cmd_logout(args: argparse.Namespace) -> int:
    path = config_path()
    if path.exists():
        path.unlink()
        err.print(f"removed {path}")
    else:
        err.print("not logged in")
    return 0


def cmd_jobs(args: argparse.Namespace, *, everyone: bool | None = None) -> int:
    everyone = args.all if everyone is None else everyone
    limit, cursor = getattr(args, "limit", None), getattr(args, "cursor", None)
    next_cursor = None
    with client_for(args) as client:
        if limit is None and cursor is None:
            records = client.jobs(everyone=everyone)
        else:
            page = client.job_page(limit=limit or 100, cursor=cursor, everyone=everyone)
            records, next_cursor = page.submissions, page.next_cursor
            if args.json:
                print_json(page.model_dump(mode="json"))
                return 0
    if args.json:
        print_json([r.model_dump(mode="json") for r in records])
        return 0
    if records:
        title = "All submissions" if everyone else "Your submissions"
        console.print(job_table(records, show_user=everyone, title=title))
    else:
        err.print("no submissions yet" if cursor is None else "no submissions after that one")
    if next_cursor is not None:
        err.print(f"next page: --cursor {next_cursor}")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        record = client.get(args.id)
    return json_or(args.json, record, lambda: console.print(_detail(record)))


def _detail(r: JobRecord) -> Table:
    table = Table(show_header=False, title=f"submission {r.submission_id}", title_justify="left")
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    rows: list[tuple[str, str]] = [
        ("user", r.user),
        ("status", job_status_text(r)),
        ("dataset", r.dataset or ""),
        ("benchmark", benchmark_text(r)),
        ("submitted", when(r.created_at)),
        ("started", when(r.started_at)),
        ("finished", when(r.finished_at)),
        ("duration", duration(r.duration_s)),
        ("command", f"python {r.entrypoint} --config {r.config} --output <dir>"),
        ("files", ", ".join(f"{f.path} ({human_bytes(f.size)})" for f in r.files)),
        ("metadata", ", ".join(f"{k}={v}" for k, v in r.metadata.items())),
        ("params", ", ".join(f"{k}={v}" for k, v in r.params.items())),
        ("metrics", "\n".join(f"{k} = {v:.6g}" for k, v in r.metrics.items())),
        (r.scores.label if r.scores else "verified", scores_text(r.scores) if r.scores else ""),
        ("exit code", "" if r.exit_code is None else str(r.exit_code)),
        ("attempts", str(r.attempts)),
        ("runner", r.runner or ""),
        ("reason", r.error or ""),
        ("MLflow run", r.mlflow_run_url or ""),
    ]
    for name, value in rows:
        if value:
            table.add_row(name, value)
    return table


def cmd_logs(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        if args.follow:
            record = client.wait(args.id, on_log=None if args.json else write)
            if args.json:
                text, offset, status = client.logs(args.id)
                print_json({"submission_id": args.id, "status": status, "next_offset": offset, "text": text})
                return 0 if record.status.value == "completed" else 1
            return report(record)
        text, offset, status = client.logs(args.id)
    if args.json:
        print_json({"submission_id": args.id, "status": status, "next_offset": offset, "text": text})
    else:
        write(text)
        if not text:
            err.print(f"(no log yet; the job is {status})")
    return 0


def cmd_cancel(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        record = client.cancel(args.id)
    return json_or(args.json, record, lambda: console.print(f"{record.submission_id}: {status_text(record.status)}"))
