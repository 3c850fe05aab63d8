"""`leadersboard up`: the whole local stack in the foreground."""

from __future__ import annotations

import argparse
import signal
import time
from typing import Any

from rich.markup import escape
from rich.table import Table

from tools.cli.output import console, err

__all__ = ["add_parser"]

POLL_S = 0.5


def add_parser(sub: Any) -> None:
    up = sub.add_parser("up", help="run the whole local stack in the foreground")
    up.add_argument("--data-dir", help="default $LB_STACK_DATA_DIR or .leadersboard")
    up.set_defaults(func=cmd_up)


def cmd_up(args: argparse.Namespace) -> int:
    from tools.stack.settings import StackSettings
    from tools.stack.supervise import Supervisor, status_file
    from tools.stack.up import Stack

    settings = StackSettings(**({"data_dir": args.data_dir} if args.data_dir else {}))
    stack = Stack(settings.data_dir, ports=settings.ports())
    # SIGINT too: a shell starting us in the background without job control leaves it ignored.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _interrupt)
    supervisor: Supervisor | None = None
    try:
        with err.status("starting NATS, SeaweedFS, MLflow, ingest, dispatcher, runner, scorer, frontend..."):
            info = stack.start()
        supervisor = Supervisor(
            stack.processes, policy=settings.restart_policy(), report=_report, status_path=status_file(stack.data_dir)
        )
        _print_stack(info)
        while True:
            supervisor.poll()
            time.sleep(POLL_S)
    except KeyboardInterrupt:
        err.print("stopping...")
        return 0
    finally:
        stack.stop()
        if supervisor is not None:
            supervisor.remove_status()


def _report(message: str) -> None:
    """A service exited: say so on the terminal (its log tail may hold brackets, which are not markup)."""
    head, _, tail = message.partition("\n")
    err.print(f"[red]{escape(head)}[/red]")
    err.print(tail, markup=False, highlight=False)


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
    console.print(
        f"Also written to {info['data_dir']}/stack.json. A service that exits is restarted; "
        "`leadersboard status` lists them. Ctrl-C stops everything."
    )
