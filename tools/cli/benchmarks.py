"""`leadersboard benchmarks` (the ready official benchmarks) and `leadersboard admin benchmark add|rescore`."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rich.progress import TaskID
from rich.table import Table

from leadersboard.benchmarks.archive import BadArchive
from leadersboard.benchmarks.source import LayoutError
from leadersboard.client import AddedBenchmark, Client
from leadersboard.models.api import BenchmarkView
from tools.cli.config import client_for
from tools.cli.output import console, err, human_bytes, print_json, progress_bars, when

__all__ = ["add_admin_parser", "add_parser"]


def add_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    listing = sub.add_parser("benchmarks", parents=[common], help="the official benchmarks a submission can name")
    listing.add_argument("--all", action="store_true", help="every version, not only the latest of each benchmark")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(func=cmd_benchmarks)


def add_admin_parser(areas: Any, common: argparse.ArgumentParser) -> None:
    """`admin benchmark add|rescore`."""
    actions = areas.add_parser("benchmark", help="official benchmarks").add_subparsers(dest="action", required=True)
    add = actions.add_parser(
        "add", parents=[common], help="register a dataset (directory or zip; MVTec AD, VisA or folder layout) "
        "as the next version of a benchmark; run it again to resume an interrupted upload",
    )  # fmt: skip
    add.add_argument("name", help="the benchmark's name (lowercase letters, digits, _ and -)")
    add.add_argument("path", type=Path, help="the dataset: a directory or a zip")
    add.add_argument("--description", default="", help="shown in `leadersboard benchmarks`")
    add.add_argument("--license", default="", help="the dataset's licence, e.g. CC BY-NC-SA 4.0")
    add.add_argument(
        "--private-test-labels", action="store_true",
        help="the test labels are published nowhere else (a split only the platform holds); by default results "
        "are labelled 'verified (public test labels)', as for MVTec AD and VisA",
    )  # fmt: skip
    add.add_argument("--json", action="store_true")
    add.set_defaults(func=cmd_benchmark_add)
    rescore = actions.add_parser(
        "rescore", parents=[common], help="score every job of a benchmark again from its stored predictions"
    )
    rescore.add_argument("name")
    rescore.add_argument("--json", action="store_true")
    rescore.set_defaults(func=cmd_benchmark_rescore)


def cmd_benchmarks(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        benchmarks = client.benchmarks(all_versions=args.all)
    if args.json:
        print_json([view.model_dump(mode="json") for view in benchmarks])
        return 0
    if not benchmarks:
        err.print("no benchmark is registered yet (admins: `leadersboard admin benchmark add NAME PATH`)")
        return 0
    table = Table("name", "version", "categories (train/test images)", "description", "licence", "registered",
                  header_style="bold")  # fmt: skip
    for view in benchmarks:
        table.add_row(view.name, f"v{view.version}", _categories(view), view.description, view.license,
                      when(view.created_at))  # fmt: skip
    console.print(table)
    return 0


def cmd_benchmark_add(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        try:
            added = _add(client, args)
        except (LayoutError, BadArchive) as exc:
            err.print(f"[red]error[/red]: {args.path} cannot be registered: {exc}")
            return 2
    view, stats = added.benchmark, added.stats
    if args.json:
        print_json({**view.model_dump(mode="json"), "resumed": added.resumed, "uploaded": stats.uploaded,
                    "present": stats.present, "sent_bytes": stats.sent_bytes})  # fmt: skip
        return 0
    err.print(
        f"{'resumed and ' if added.resumed else ''}uploaded {human_bytes(stats.sent_bytes)}"
        + (f" ({', '.join(stats.present)} already in the store)" if stats.present else "")
    )
    console.print(f"[green]ready[/green]: [bold]{view.name}[/bold] v{view.version} ({view.layout} layout)")
    table = Table("category", "train images", "test images", "masks", header_style="bold")
    for name, category in view.categories.items():
        table.add_row(name, str(category.train), str(category.test), "yes" if category.masks else "no")
    console.print(table)
    return 0


def _add(client: Client, args: argparse.Namespace) -> AddedBenchmark:
    with progress_bars(sized=False) as bars:
        tasks: dict[str, TaskID] = {}

        def advance(part: str, n: int) -> None:
            if part not in tasks:  # the bytes sent so far; a resumed upload skips what the store has
                tasks[part] = bars.add_task(f"upload {part}", total=None)
            bars.advance(tasks[part], n)

        return client.add_benchmark(
            args.name, args.path, description=args.description, license=args.license,
            test_labels_public=not args.private_test_labels, progress=advance,
            on_step=lambda text: bars.console.print(text),
        )  # fmt: skip


def cmd_benchmark_rescore(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        result = client.rescore_benchmark(args.name)
    if args.json:
        print_json(result.model_dump(mode="json"))
    else:
        err.print(f"{result.requested} job(s) of {result.benchmark} sent to the scorer again")
    return 0


def _categories(view: BenchmarkView) -> str:
    return ", ".join(f"{name} ({c.train}/{c.test})" for name, c in view.categories.items())
