"""The `leadersboard` command: run the local stack, submit, follow jobs, administer tokens."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from pathlib import Path
from typing import Any

from pydantic_settings import BaseSettings, SettingsConfigDict
from rich.console import Console
from rich.table import Table

from leadersboard.client import ApiError, Client, collect_files
from leadersboard.stack.procs import StartupError

__all__ = ["main"]

console = Console()
err = Console(stderr=True)


class CliSettings(BaseSettings):
    """`LEADERSBOARD_URL` and `LEADERSBOARD_TOKEN`, overridden by --url/--token."""

    model_config = SettingsConfigDict(env_prefix="LEADERSBOARD_")

    url: str = "http://127.0.0.1:8000"
    token: str = ""


def _client(args: argparse.Namespace) -> Client:
    settings = CliSettings()
    token = args.token or settings.token
    if not token:
        raise SystemExit("no API token: pass --token or set LEADERSBOARD_TOKEN (ask an administrator for one)")
    return Client(args.url or settings.url, token)


def cmd_up(args: argparse.Namespace) -> int:
    from leadersboard.stack.settings import StackSettings
    from leadersboard.stack.up import Stack

    settings = StackSettings(**({"data_dir": args.data_dir} if args.data_dir else {}))
    stack = Stack(settings.data_dir, ports=settings.ports())
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        with err.status("starting NATS, SeaweedFS, MLflow, ingest, dispatcher, runner, frontend..."):
            info = stack.start()
        _print_stack(info)
        while all(p.alive for p in stack.processes):
            time.sleep(0.5)
        for process in stack.processes:
            if not process.alive:
                err.print(f"[red]{process.name} exited ({process.returncode}):[/red]\n{process.log_tail(20)}")
        return 1
    except KeyboardInterrupt:
        err.print("stopping...")
        return 0
    finally:
        stack.stop()


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def _print_stack(info: dict[str, Any]) -> None:
    table = Table(title="LeadersBoard local stack", show_header=False)
    for name, url in info["urls"].items():
        table.add_row(name, url)
    table.add_row("admin token", info["admin_token"])
    table.add_row(f"user token ({info['demo_user']})", info["demo_token"])
    table.add_row("data and logs", info["data_dir"])
    console.print(table)
    console.print(f"Also written to {info['data_dir']}/stack.json. Ctrl-C stops everything.")


def cmd_submit(args: argparse.Namespace) -> int:
    metadata = _metadata(args.metadata)
    with _client(args) as client:
        files = collect_files(args.paths)
        created = client.create_submission(files, entrypoint=args.entrypoint, config=args.config, metadata=metadata)
        total = sum(p.stat().st_size for p in files.values())
        from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

        with Progress("{task.description}", BarColumn(), DownloadColumn(), TransferSpeedColumn(), console=err) as bar:
            task = bar.add_task(f"uploading {len(files)} files", total=total)
            client.upload(created, files, lambda _name, sent: bar.advance(task, sent))
        console.print(f"submitted [bold]{created.submission_id}[/bold]")
        if not args.wait:
            return 0
        record = client.wait(created.submission_id, on_log=lambda text: console.out(text, end=""))
        return _report(record)


def _report(record: Any) -> int:
    if record.status.value == "completed":
        console.print(f"[green]completed[/green] {json.dumps(record.metrics, indent=2)}")
        if record.mlflow_run_url:
            console.print(f"MLflow run: {record.mlflow_run_url}")
        return 0
    err.print(f"[red]{record.status.value}[/red]: {record.error}")
    return 1


def _metadata(raw: str | None) -> dict[str, Any]:
    if not raw:
        return {}
    text = Path(raw[1:]).read_text() if raw.startswith("@") else raw
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SystemExit(f"--metadata is not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise SystemExit('--metadata must be a JSON object, e.g. \'{"method": "padim"}\'')
    return value


def cmd_jobs(args: argparse.Namespace) -> int:
    with _client(args) as client:
        records = client.jobs(everyone=getattr(args, "all", False))
    if args.json:
        console.out(json.dumps([r.model_dump(mode="json") for r in records], indent=2))
        return 0
    table = Table("id", "user", "status", "submitted", "duration", "metrics / reason")
    for r in records:
        detail = ", ".join(f"{k}={v:.4g}" for k, v in list(r.metrics.items())[:3]) or (r.error or "")[:80]
        duration = f"{r.duration_s:.0f} s" if r.duration_s is not None else ""
        table.add_row(
            r.submission_id, r.user, r.status.value, r.created_at.strftime("%Y-%m-%d %H:%M"), duration, detail
        )
    console.print(table)
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    with _client(args) as client:
        console.out(client.get(args.id).model_dump_json(indent=2))
    return 0


def cmd_logs(args: argparse.Namespace) -> int:
    with _client(args) as client:
        if args.follow:
            return _report(client.wait(args.id, on_log=lambda text: console.out(text, end="")))
        text, _, _ = client.logs(args.id)
        console.out(text, end="")
    return 0


def cmd_cancel(args: argparse.Namespace) -> int:
    with _client(args) as client:
        console.print(f"{args.id}: {client.cancel(args.id).status.value}")
    return 0


def cmd_leaderboard(args: argparse.Namespace) -> int:
    with _client(args) as client:
        board = client.leaderboard(dataset=args.dataset, metric=args.metric)
    if args.json:
        console.out(json.dumps(board, indent=2))
        return 0
    table = Table("#", "user", "dataset", "method", f"{board['metric']} ↑", "submission", title="Leaderboard")
    for e in board["entries"]:
        table.add_row(
            str(e["rank"]),
            e["user"],
            e["dataset"] or "",
            e["method"] or "",
            f"{e['value']:.4f}",
            e["submission_id"],
        )
    console.print(table)
    return 0


def cmd_token_create(args: argparse.Namespace) -> int:
    with _client(args) as client:
        created = client.create_token(args.user, role=args.role, expires_in_s=args.expires_in_s)
    console.print(f"token for {created['user']} ({created['role']}), shown once:")
    console.out(created["token"])
    return 0


def cmd_token_list(args: argparse.Namespace) -> int:
    with _client(args) as client:
        tokens = client.list_tokens()
    table = Table("id", "user", "role", "created", "expires", "revoked")
    for t in tokens:
        table.add_row(
            t["token_id"],
            t["user"],
            t["role"],
            t["created_at"][:19],
            (t["expires_at"] or "never")[:19],
            str(t["revoked"]),
        )
    console.print(table)
    return 0


def cmd_token_revoke(args: argparse.Namespace) -> int:
    with _client(args) as client:
        revoked = client.revoke_token(args.token_id)
    console.print(f"revoked token {revoked['token_id']} of {revoked['user']}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="leadersboard", description=__doc__)
    parser.add_argument("--url", help="API address (default $LEADERSBOARD_URL or http://127.0.0.1:8000)")
    parser.add_argument("--token", help="API token (default $LEADERSBOARD_TOKEN)")
    sub = parser.add_subparsers(dest="command", required=True)

    up = sub.add_parser("up", help="run the whole local stack in the foreground")
    up.add_argument("--data-dir", help="default $LB_STACK_DATA_DIR or .leadersboard")
    up.set_defaults(func=cmd_up)

    submit = sub.add_parser("submit", help="upload a submission (files and/or directories)")
    submit.add_argument("paths", nargs="+")
    submit.add_argument("--entrypoint", default="main.py")
    submit.add_argument("--config", default="config.yaml")
    submit.add_argument("--metadata", help="JSON object, or @file.json")
    submit.add_argument("--wait", action="store_true", help="follow the job; exit 0 only if it completed")
    submit.set_defaults(func=cmd_submit)

    jobs = sub.add_parser("jobs", help="your submissions")
    jobs.add_argument("--all", action="store_true", help="everyone's (admins)")
    jobs.add_argument("--json", action="store_true")
    jobs.set_defaults(func=cmd_jobs)
    for name, func, help_text in (
        ("show", cmd_show, "one submission"),
        ("cancel", cmd_cancel, "cancel a job"),
    ):
        command = sub.add_parser(name, help=help_text)
        command.add_argument("id")
        command.set_defaults(func=func)
    logs = sub.add_parser("logs", help="a job's log")
    logs.add_argument("id")
    logs.add_argument("-f", "--follow", action="store_true")
    logs.set_defaults(func=cmd_logs)
    board = sub.add_parser("leaderboard", help="ranked completed submissions")
    board.add_argument("--dataset")
    board.add_argument("--metric", default="image_AUROC")
    board.add_argument("--json", action="store_true")
    board.set_defaults(func=cmd_leaderboard)

    admin = sub.add_parser("admin", help="administration (admin token)").add_subparsers(dest="area", required=True)
    token = admin.add_parser("token", help="API tokens").add_subparsers(dest="action", required=True)
    create = token.add_parser("create")
    create.add_argument("--user", required=True)
    create.add_argument("--role", choices=["user", "admin"], default="user")
    create.add_argument("--expires-in-s", type=int)
    create.set_defaults(func=cmd_token_create)
    token.add_parser("list").set_defaults(func=cmd_token_list)
    revoke = token.add_parser("revoke")
    revoke.add_argument("token_id")
    revoke.set_defaults(func=cmd_token_revoke)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        sys.exit(args.func(args))
    except ApiError as exc:
        err.print(f"[red]error {exc.status} ({exc.code})[/red]: {exc.message}")
        if exc.retry_after_s:
            err.print(f"retry after {exc.retry_after_s:.0f} s")
        sys.exit(2)
    except FileNotFoundError as exc:
        err.print(f"[red]error[/red]: {exc}")
        sys.exit(2)
    except StartupError as exc:
        err.print(f"[red]the stack could not start[/red]: {exc}")
        sys.exit(1)
