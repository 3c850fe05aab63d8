"""`leadersboard check PATH`: run a submission locally the way the runner does, before spending a submission.

The run and its verdict are the runner's own (gpu_runner.check); this module is the command line and the
terminal: the steps and the job's log as they come, then the verdict and the metrics.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from leadersboard.client import collect_files
from tools.cli.output import console, err, metrics_table, write

if TYPE_CHECKING:
    from gpu_runner.check import CheckResult

__all__ = ["add_parser"]


def add_parser(sub: Any) -> None:
    check = sub.add_parser("check", help="run a submission locally as the runner would and validate metrics.json")
    check.add_argument("paths", nargs="+", metavar="PATH")
    check.add_argument("--entrypoint", default="main.py")
    check.add_argument("--config", default="config.yaml")
    check.add_argument("--timeout-s", type=float, help="default: the runner's job timeout")
    check.add_argument("--keep", action="store_true", help="keep the working directory and print where it is")
    check.set_defaults(func=cmd_check)


def cmd_check(args: argparse.Namespace) -> int:
    from gpu_runner.check import run_check  # the runner's modules load only for this command

    files = collect_files(args.paths)
    result = run_check(
        files,
        entrypoint=args.entrypoint,
        config=args.config,
        timeout_s=args.timeout_s,
        keep=args.keep,
        progress=_Terminal(),
    )
    status = _show(result)
    if args.keep and result.workspace is not None:
        err.print(f"working directory kept: {result.workspace.root}")
    return status


class _Terminal:
    """The check's progress on the terminal: steps and warnings on stderr, the job's output on stdout."""

    def step(self, line: str) -> None:
        err.print(line)

    def warn(self, line: str) -> None:
        err.print(f"[yellow]note[/yellow]: {line}")

    def output(self, text: str) -> None:
        write(text)


def _show(result: CheckResult) -> int:
    metrics = result.verdict.metrics
    if metrics is None:  # a run that completed always has its metrics
        err.print(f"[red]check failed[/red]: {result.verdict.error}")
        return 1
    console.print(f"[green]check passed[/green]: metrics.json is valid (dataset {result.dataset})")
    console.print(metrics_table(metrics.metrics))
    if metrics.params:
        console.print("params: " + ", ".join(f"{k}={v}" for k, v in metrics.params.items()))
    return 0
