"""Terminal output: tables for people (rich, on stdout), messages on stderr, plain JSON for scripts."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from leadersboard.liveness import waiting_for_scores
from leadersboard.models.records import JobRecord, JobStatus
from leadersboard.models.scores import PIXEL_METRICS, Scores

__all__ = [
    "STATUS_STYLE",
    "ago",
    "benchmark_text",
    "console",
    "duration",
    "err",
    "human_bytes",
    "job_status_text",
    "job_table",
    "json_or",
    "metrics_table",
    "print_json",
    "progress_bars",
    "report",
    "scores_text",
    "status_text",
    "when",
    "write",
]

console = Console(highlight=False)
err = Console(stderr=True, highlight=False, soft_wrap=True)

STATUS_STYLE = {
    JobStatus.PENDING: "yellow",
    JobStatus.RUNNING: "cyan",
    JobStatus.COMPLETED: "green",
    JobStatus.FAILED: "red",
    JobStatus.CANCELLED: "magenta",
}


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, default=str) + "\n")
    sys.stdout.flush()


def json_or(as_json: bool, result: BaseModel, show: Callable[[], object]) -> int:
    """A command's result: with --json the model as JSON on stdout (for scripts), else `show()` renders it for
    people. The exit code: 0."""
    if as_json:
        print_json(result.model_dump(mode="json"))
    else:
        show()
    return 0


def write(text: str) -> None:
    """Raw text (a job's log) on stdout, without markup or wrapping."""
    sys.stdout.write(text)
    sys.stdout.flush()


@contextmanager
def progress_bars(*, sized: bool = True, stopped: Callable[[Progress], str] | None = None) -> Iterator[Progress]:
    """Byte progress bars on stderr, one task a file. `sized=False` for tasks without a total (the bytes sent so
    far): no percentage and no time left, which would only be wrong there. On success the bars' last state stays;
    on a failure (or Ctrl-C) they are removed (half-finished bars above the error would read as the outcome) and
    `stopped(bars)`, one line of what was done, takes their place."""
    columns: list[ProgressColumn] = [TextColumn("{task.description}", justify="left"), BarColumn()]
    if sized:
        columns.append(TextColumn("{task.percentage:>3.0f}%"))
    columns += [DownloadColumn(binary_units=True), TransferSpeedColumn()]
    if sized:
        columns.append(TimeRemainingColumn())
    bars = Progress(*columns, console=err, transient=False)
    bars.start()
    try:
        yield bars
    except BaseException:
        bars.live.transient = True  # its stop() erases the bars on a terminal and does not print them elsewhere
        bars.live.stop()  # not bars.stop(): off a terminal that prints an empty line after the (absent) bars
        if stopped is not None:
            err.print(stopped(bars))
        raise
    bars.stop()


def status_text(status: JobStatus) -> str:
    return f"[{STATUS_STYLE[status]}]{status.value}[/]"


def job_status_text(record: JobRecord) -> str:
    """The status, and for a benchmark job whose run ended, that the scorer has it."""
    return status_text(record.status) + (" (scoring)" if waiting_for_scores(record) else "")


def benchmark_text(record: JobRecord) -> str:
    """`<name> v<version>` for a benchmark job; empty for the guide's self-reported path."""
    return "" if record.benchmark is None else f"{record.benchmark} v{record.benchmark_version}"


def scores_text(scores: Scores) -> str:
    """The platform's scores averaged over categories, one metric a line, with their 95% intervals."""
    names = ("image_AUROC", "image_F1Max", *PIXEL_METRICS)
    found = [(name, getattr(scores, name)) for name in names if getattr(scores, name) is not None]
    return "\n".join(f"{name} = {m.value:.4f} [{m.ci_low:.4f}, {m.ci_high:.4f}]" for name, m in found)


def when(moment: datetime | str | None) -> str:
    if moment is None:
        return ""
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment.replace("Z", "+00:00"))
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def ago(moment: datetime | str | None) -> str:
    if moment is None:
        return "never"
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment.replace("Z", "+00:00"))
    seconds = (datetime.now(UTC) - moment).total_seconds()
    if seconds < 0:
        return f"in {duration(-seconds)}"
    return f"{duration(seconds)} ago"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds // 60:.0f} min {seconds % 60:02.0f} s"
    if seconds < 86400 * 2:
        return f"{seconds // 3600:.0f} h {seconds % 3600 // 60:02.0f} min"
    return f"{seconds // 86400:.0f} days"


def human_bytes(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"


def job_table(records: list[JobRecord], *, show_user: bool, title: str | None = None) -> Table:
    table = Table(title=title, header_style="bold")
    table.add_column("id", no_wrap=True)
    if show_user:
        table.add_column("user")
    table.add_column("status", no_wrap=True)
    table.add_column("submitted", no_wrap=True)
    table.add_column("duration", justify="right", no_wrap=True)
    table.add_column("dataset / benchmark")
    table.add_column("metrics / reason", overflow="fold")
    for r in records:
        if r.metrics:
            detail = ", ".join(f"{k}={v:.4g}" for k, v in list(r.metrics.items())[:3])
        else:
            detail = (r.error or "").splitlines()[0][:100] if r.error else ""
        row = [r.submission_id, *([r.user] if show_user else []), job_status_text(r), when(r.created_at)]
        table.add_row(*row, duration(r.duration_s), benchmark_text(r) or r.dataset or "", detail)
    return table


def metrics_table(metrics: Mapping[str, float]) -> Table:
    table = Table(header_style="bold")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in metrics.items():
        table.add_row(name, f"{value:.6g}")
    return table


def report(record: JobRecord) -> int:
    """The end of a followed job: metrics on stdout and exit 0 if it completed, else the reason and exit 1."""
    if record.status is JobStatus.COMPLETED:
        console.print(f"[green]completed[/green]: {record.submission_id} (dataset {record.dataset or 'default'})")
        console.print(metrics_table(record.metrics))
        if record.mlflow_run_url:
            console.print(f"MLflow run: {record.mlflow_run_url}")
        return 0
    err.print(f"[red]{record.status.value}[/red]: {record.error or 'no reason given'}")
    return 1
