"""`leadersboard delete ID` and `leadersboard admin delete ID|retention show|set|sweep|usage`."""

from __future__ import annotations

import argparse
from typing import Any

from rich.table import Table

from leadersboard.client_housekeeping import KEEP
from leadersboard.models.housekeeping import MAX_RETENTION_DAYS, DeletionReport, RetentionPolicy, UsageReport
from tools.cli.config import client_for
from tools.cli.output import console, err, human_bytes, json_or, print_json, when, write

__all__ = ["add_admin_parsers", "add_parser"]


def add_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    delete = sub.add_parser(
        "delete", parents=[common], help="delete one of your finished submissions: files, results, MLflow run"
    )
    delete.add_argument("id")
    delete.add_argument("--json", action="store_true")
    delete.set_defaults(func=cmd_delete)


def _days(text: str) -> int:
    """A number of days, or `keep` (for ever)."""
    if text == "keep":
        return KEEP
    try:
        days = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is neither a number of days nor 'keep'") from None
    if not 1 <= days <= MAX_RETENTION_DAYS:
        raise argparse.ArgumentTypeError(f"{days}: give 1 to {MAX_RETENTION_DAYS} days, or 'keep'")
    return days


def add_admin_parsers(areas: Any, common: argparse.ArgumentParser) -> None:
    """`admin delete`, `admin retention show|set|sweep`, `admin usage`."""
    delete = areas.add_parser("delete", parents=[common], help="delete anyone's finished submission")
    delete.add_argument("id")
    delete.add_argument("--json", action="store_true")
    delete.set_defaults(func=cmd_delete)

    retention = areas.add_parser("retention", help="how long submissions are kept")
    actions = retention.add_subparsers(dest="action", required=True)
    show = actions.add_parser("show", parents=[common], help="the retention policy")
    show.add_argument("--json", action="store_true")
    show.set_defaults(func=cmd_retention_show)
    change = actions.add_parser("set", parents=[common], help="change the retention policy (days after a job ended)")
    change.add_argument(
        "--submission-files-days", type=_days, metavar="DAYS|keep",
        help="keep submitted files N days ('keep': for ever); records, results and MLflow runs stay",
    )  # fmt: skip
    change.add_argument(
        "--results-days", type=_days, metavar="DAYS|keep",
        help="keep whole submissions N days ('keep': for ever, the default); then they are deleted as "
        "`admin delete` does",
    )  # fmt: skip
    change.add_argument("--json", action="store_true")
    change.set_defaults(func=cmd_retention_set)
    sweep = actions.add_parser("sweep", parents=[common], help="apply the policy now (ingest also does it hourly)")
    sweep.add_argument("--json", action="store_true")
    sweep.set_defaults(func=cmd_retention_sweep)

    usage = areas.add_parser("usage", parents=[common], help="storage per user (submissions, blobs, results)")
    usage.add_argument("--json", action="store_true")
    usage.set_defaults(func=cmd_usage)


def cmd_delete(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        report = client.delete(args.id)
    return json_or(args.json, report, lambda: err.print(_deleted(report)))


def _deleted(report: DeletionReport) -> str:
    kept = f", {report.blobs_kept} shared file(s) kept for other submissions" if report.blobs_kept else ""
    run = {"deleted": "its MLflow run deleted", "already gone": "no MLflow run left", "none": "no MLflow run"}
    return (
        f"deleted submission {report.submission_id} of {report.user}: {report.objects_deleted} object(s) removed"
        f"{kept}, {run[report.mlflow_run]}"
    )


def _policy_text(policy: RetentionPolicy) -> str:
    files = "for ever" if policy.submission_files_days is None else f"{policy.submission_files_days} days"
    whole = "for ever" if policy.results_days is None else f"{policy.results_days} days"
    changed = f" (set {when(policy.updated_at)} by {policy.updated_by})" if policy.updated_at else ""
    return f"submitted files kept {files}; submissions with results and MLflow runs kept {whole}{changed}"


def cmd_retention_show(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        policy = client.retention()
    return json_or(args.json, policy, lambda: write(_policy_text(policy) + "\n"))


def cmd_retention_set(args: argparse.Namespace) -> int:
    if args.submission_files_days is None and args.results_days is None:
        err.print("[red]error[/red]: give --submission-files-days and/or --results-days (a number, or 'keep')")
        return 2
    with client_for(args) as client:
        policy = client.set_retention(submission_files_days=args.submission_files_days, results_days=args.results_days)
    return json_or(args.json, policy, lambda: err.print(_policy_text(policy)))


def cmd_retention_sweep(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        report = client.sweep()
    if args.json:
        print_json(report.model_dump(mode="json"))
        return 0 if not report.failures else 1
    err.print(
        f"files deleted of {len(report.files_expired)} submission(s), {len(report.submissions_deleted)} "
        f"submission(s) deleted, {report.objects_deleted} object(s) and {report.orphan_blobs_deleted} unused "
        f"blob(s) removed, {report.uploads_aborted} abandoned upload(s) aborted, files of "
        f"{report.abandoned_submissions_deleted} submission(s) without a manifest and results of "
        f"{report.orphan_results_deleted} without a record deleted"
    )
    for failure in report.failures:
        err.print(f"[red]not done[/red] (tried again on the next sweep): {failure}")
    return 0 if not report.failures else 1


def cmd_usage(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        report = client.usage()
    return json_or(args.json, report, lambda: console.print(_usage_table(report)))


def _usage_table(report: UsageReport) -> Table:
    table = Table("user", "submissions", "blobs", "results", "total", title="Storage", header_style="bold")
    for user, use in sorted(report.users.items(), key=lambda item: -item[1].total_bytes):
        cells = [f"{human_bytes(area.bytes)} ({area.objects})" for area in (use.submissions, use.blobs, use.results)]
        table.add_row(user, *cells, human_bytes(use.total_bytes))
    return table
