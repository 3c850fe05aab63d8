"""`leadersboard leaderboard` (a benchmark's verified board, or the self-reported one) and `leadersboard admin
leaderboard rebuild`."""

from __future__ import annotations

import argparse
from typing import Any

from rich.table import Table

from leadersboard.models.leaderboard import DEFAULT_METRIC, MAX_BOARD_LIMIT, METRICS, SelfReportedBoard, VerifiedBoard
from leadersboard.verified_ranking import VerifiedEntry
from tools.cli.config import client_for
from tools.cli.output import ago, console, err, print_json

__all__ = ["add_admin_parser", "add_parser", "rank_text", "tie_text"]

TIED = "≈ leader"
"""The mark of an entry statistically tied with the leader (the paired bootstrap's interval holds 0)."""


def add_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    board = sub.add_parser(
        "leaderboard", parents=[common],
        help="a benchmark's verified board (--benchmark: ranks with intervals and ties), else the self-reported one",
    )  # fmt: skip
    board.add_argument("--benchmark", help="the verified board of this benchmark (`leadersboard benchmarks`)")
    board.add_argument(
        "--metric", default=DEFAULT_METRIC, help=f"default {DEFAULT_METRIC}; verified: {', '.join(METRICS)}"
    )
    board.add_argument("--category", help="verified: one category's board (default: the category average)")
    board.add_argument("--version", type=int, help="verified: the benchmark version (default: the latest with entries)")
    board.add_argument("--all", action="store_true", help="every submission, not only each user's best")
    board.add_argument("--limit", type=int, help=f"verified: at most this many rows (1-{MAX_BOARD_LIMIT}, default 100)")
    board.add_argument("--offset", type=int, default=0, help="verified: skip this many rows")
    board.add_argument("--dataset", help="self-reported: one dataset's board")
    board.add_argument("--json", action="store_true")
    board.set_defaults(func=cmd_leaderboard)


def add_admin_parser(areas: Any, common: argparse.ArgumentParser) -> None:
    """`admin leaderboard rebuild`."""
    actions = areas.add_parser("leaderboard", help="the leaderboard view").add_subparsers(dest="action", required=True)
    rebuild = actions.add_parser("rebuild", parents=[common], help="rebuild the leaderboard view from the job records")
    rebuild.add_argument("--wait", action="store_true", help="until the dispatcher has rebuilt it")
    rebuild.add_argument("--timeout-s", type=float, default=600.0, help="how long --wait waits (default 600)")
    rebuild.add_argument("--json", action="store_true")
    rebuild.set_defaults(func=cmd_rebuild)


def cmd_leaderboard(args: argparse.Namespace) -> int:
    if args.benchmark is None:
        stray = [f"--{name}" for name in ("category", "version", "limit") if getattr(args, name) is not None]
        if stray or args.offset:
            err.print(f"[red]error[/red]: {', '.join(stray or ['--offset'])} needs --benchmark (a verified board)")
            return 2
        return _self_reported(args)
    if args.dataset is not None:
        err.print("[red]error[/red]: --dataset is for the self-reported board (without --benchmark)")
        return 2
    with client_for(args) as client:
        board = client.verified_board(
            args.benchmark, metric=args.metric, category=args.category, version=args.version, everyone=args.all,
            limit=args.limit, offset=args.offset,
        )  # fmt: skip
    if args.json:
        print_json(board.model_dump(mode="json"))
        return 0
    _print_verified(board)
    return 0


def rank_text(entry: VerifiedEntry) -> str:
    """`2`, or `2 (1-3)` when the rank is uncertain."""
    low, high = entry.rank_range
    return str(entry.rank) if low == high == entry.rank else f"{entry.rank} ({low}-{high})"


def tie_text(entry: VerifiedEntry) -> str:
    return TIED if entry.tied_with_leader else ""


def _print_verified(board: VerifiedBoard) -> None:
    title = (
        f"Verified leaderboard: {board.benchmark} v{board.benchmark_version}, {board.metric}, {board.category} "
        f"({board.label}; higher is better; {board.confidence:.0%} intervals)"
    )
    table = Table(title=title, header_style="bold")
    for column, justify in (("#", "right"), ("user", "left"), ("method", "left"), (board.metric, "right"),
                            ("95% interval", "left"), ("tie", "left"), ("submission", "left")):  # fmt: skip
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for e in board.entries:
        table.add_row(rank_text(e), e.user, e.method or "", f"{e.value:.4f}", f"[{e.ci_low:.4f}, {e.ci_high:.4f}]",
                      tie_text(e), e.submission_id)  # fmt: skip
    if board.entries:
        console.print(table)
        shown = f"{board.offset + 1}-{board.offset + len(board.entries)} of {board.total}"
        err.print(f"rows {shown}; {TIED}: the difference to the leader is within its {board.confidence:.0%} interval")
    else:
        err.print(f"no entry on this board (of {board.total})")
    if board.missing:
        err.print(f"{board.missing} submission(s) have no {board.metric} in {board.category}")
    err.print(f"categories: {', '.join(board.categories)} (--category); metrics: {', '.join(board.metrics)} (--metric)")


def _self_reported(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        board = client.self_reported_board(dataset=args.dataset, metric=args.metric, best_per_user=not args.all)
    if args.json:
        print_json(board.model_dump(mode="json"))
        return 0
    _print_self_reported(board)
    return 0


def _print_self_reported(board: SelfReportedBoard) -> None:
    where = f"dataset {board.dataset}" if board.dataset else "all datasets"
    title = f"Self-reported leaderboard: {board.metric} (as the jobs reported it; higher is better), {where}"
    table = Table(title=title, header_style="bold")
    for column, justify in (("#", "right"), ("user", "left"), ("dataset", "left"), ("method", "left"),
                            (board.metric, "right"), ("submitted", "left"), ("submission", "left")):  # fmt: skip
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for e in board.entries:
        table.add_row(str(e.rank), e.user, e.dataset or "", e.method or "", f"{e.value:.4f}", ago(e.submitted_at),
                      e.submission_id)  # fmt: skip
    if board.entries:
        console.print(table)
    else:
        err.print(f"no completed submission reported {board.metric} yet")
    if board.datasets and not board.dataset:
        err.print(f"datasets: {', '.join(board.datasets)} (filter with --dataset)")
    if board.benchmarks:
        err.print(f"verified boards: {', '.join(board.benchmarks)} (--benchmark NAME)")


def cmd_rebuild(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        request_id = client.request_rebuild()
        if not args.wait:
            if args.json:
                print_json({"request_id": request_id})
            else:
                err.print(f"rebuild requested ({request_id}); `--wait` waits for it")
            return 0
        built = client.wait_rebuild(request_id, timeout_s=args.timeout_s)
    if args.json:
        print_json(built.model_dump(mode="json"))
    else:
        err.print(f"the leaderboard view was rebuilt: {built.entries} entries in {built.took_s:.1f} s ({request_id})")
    return 0
