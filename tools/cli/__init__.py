"""The `leadersboard` command: run the local stack, submit and follow jobs, check a submission locally, administer.

    leadersboard login                                   # saves URL and token (XDG config, mode 0600)
    leadersboard submit DIR --metadata '{"method": "padim"}' --wait
    leadersboard jobs | show ID | logs ID -f | cancel ID              (--json for scripts; jobs --limit N: a page)
    leadersboard leaderboard --benchmark NAME [--metric M --category C]   # verified: intervals, ties, rank ranges
    leadersboard up | status                             # the local stack; status: its services
    leadersboard check DIR                               # run it locally as the runner would
    leadersboard admin token create|list|revoke, admin quota set|reset|show, admin jobs, admin cancel ID
    leadersboard delete ID | admin delete ID | admin retention show|set|sweep | admin usage
    leadersboard benchmarks                              # the official benchmarks (--all: every version)
    leadersboard admin benchmark add NAME PATH | admin benchmark rescore NAME

The API address and token come from --url/--token, else LEADERSBOARD_URL/LEADERSBOARD_TOKEN, else the
file `leadersboard login` wrote. Exit codes: 0 success, 1 the job (or check) failed, 2 usage or API error.
"""

from __future__ import annotations

import argparse
import sys

from tools.cli import admin, benchmarks, boards, check, housekeeping, jobs, status, submit, up
from tools.cli.failures import EXPECTED, failure_line

__all__ = ["build_parser", "main"]


def _common() -> argparse.ArgumentParser:
    """--url and --token, accepted before or after the command (SUPPRESS: a later default cannot erase them)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", default=argparse.SUPPRESS, help="API address (default $LEADERSBOARD_URL, the "
                        "saved login, or http://127.0.0.1:8000)")  # fmt: skip
    common.add_argument("--token", default=argparse.SUPPRESS, help="API token (default $LEADERSBOARD_TOKEN or "
                        "the saved login)")  # fmt: skip
    return common


def build_parser() -> argparse.ArgumentParser:
    common = _common()
    parser = argparse.ArgumentParser(
        prog="leadersboard", description=__doc__, parents=[common], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    up.add_parser(sub)
    status.add_parser(sub)
    submit.add_parser(sub, common)
    jobs.add_parsers(sub, common)
    boards.add_parser(sub, common)
    housekeeping.add_parser(sub, common)
    benchmarks.add_parser(sub, common)
    check.add_parser(sub)
    admin.add_parser(sub, common)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    from tools.stack.procs import StartupError

    try:
        sys.exit(args.func(args))
    except EXPECTED as exc:
        from tools.cli.output import err

        err.print(failure_line(exc))
        sys.exit(2)
    except StartupError as exc:
        from tools.cli.output import err

        err.print(f"[red]the stack could not start[/red]: {exc}")
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
