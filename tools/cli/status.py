"""`leadersboard status`: every service of the local stack with its pid, uptime, restarts, health and memory."""

from __future__ import annotations

import argparse
from typing import Any

from rich import box
from rich.table import Table

from tools.cli.output import console, duration, err, human_bytes, print_json

__all__ = ["add_parser"]


def add_parser(sub: Any) -> None:
    status = sub.add_parser(
        "status",
        help="the local stack's services: pid, uptime, restarts, health (exit 1 when one is down or failing)",
    )
    status.add_argument("--data-dir", help="default $LB_STACK_DATA_DIR or .leadersboard")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.set_defaults(func=cmd_status)


def cmd_status(args: argparse.Namespace) -> int:
    from tools.stack.health import NoStackError, read_status, service_views
    from tools.stack.settings import StackSettings

    settings = StackSettings(**({"data_dir": args.data_dir} if args.data_dir else {}))
    try:
        views = service_views(read_status(settings.data_dir))
    except NoStackError as exc:
        err.print(f"[red]error[/red]: {exc}")
        return 2
    if args.json:
        rows = [
            {**view.status.model_dump(mode="json"), "alive": view.alive, "health": view.health,
             "uptime_s": view.uptime_s, "memory_bytes": view.memory_bytes}
            for view in views
        ]  # fmt: skip
        print_json(rows)
    else:
        table = Table(title=f"LeadersBoard local stack ({settings.data_dir.resolve()})", box=box.SIMPLE)
        for column in ("service", "state", "pid", "uptime", "restarts", "health", "memory", "last exit"):
            table.add_column(column, no_wrap=column in ("service", "pid"), overflow="fold")
        for view in views:
            s = view.status
            table.add_row(
                s.name, s.state.value, str(s.pid), duration(view.uptime_s) or "-", str(s.restarts), view.health,
                human_bytes(view.memory_bytes) if view.alive else "-", s.last_exit or "-",
            )  # fmt: skip
        console.print(table)
    return 0 if all(view.healthy for view in views) else 1
