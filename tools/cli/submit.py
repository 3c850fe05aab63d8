"""`leadersboard submit`: hash datasets (cached), declare the files, upload them with progress bars, follow."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from rich.progress import Progress, TaskID

from leadersboard.client import Client, UploadStats, collect_files
from leadersboard.models.api import CreateSubmissionResponse, PresentFile
from leadersboard.models.submission import missing_declared
from tools.cli.config import client_for
from tools.cli.failures import UsageError
from tools.cli.output import err, human_bytes, print_json, progress_bars, report, write

__all__ = ["add_parser", "follow", "parse_metadata"]


def add_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    submit = sub.add_parser(
        "submit", parents=[common], help="upload a submission (files and/or directories) and start its job"
    )
    submit.add_argument("paths", nargs="+", metavar="PATH")
    submit.add_argument("--entrypoint", default="main.py", help="default main.py")
    submit.add_argument("--config", default="config.yaml", help="default config.yaml")
    submit.add_argument("--metadata", help='JSON object (e.g. \'{"method": "padim"}\') or @file.json')
    submit.add_argument(
        "--benchmark",
        metavar="NAME",
        help="an official benchmark (`leadersboard benchmarks` lists them): mounted read-only at benchmark/, "
        "the job writes <output>/predictions/scores.csv and the platform scores it (docs/benchmarks.md)",
    )
    submit.add_argument("--wait", action="store_true", help="follow the job and its log; exit 0 only if it completed")
    submit.add_argument("--no-dedup", action="store_true", help="upload every file even if already in the store")
    submit.add_argument("--workers", type=int, default=8, help="parallel part uploads (default 8)")
    submit.add_argument("--json", action="store_true", help="print the result as JSON")
    submit.set_defaults(func=cmd_submit)


def cmd_submit(args: argparse.Namespace) -> int:
    metadata = parse_metadata(args.metadata)
    files = collect_files(args.paths)
    missing = [file.name for file in missing_declared(args.entrypoint, args.config, files)]
    if missing:
        err.print(f"[red]error[/red]: {', '.join(missing)} not among the files ({', '.join(sorted(files)) or 'none'})")
        return 2
    with client_for(args) as client:
        digests = {} if args.no_dedup else _hash(client, files)
        created = client.create_submission(
            files,
            entrypoint=args.entrypoint,
            config=args.config,
            metadata=metadata,
            sha256=digests,
            benchmark=args.benchmark,
        )
        for item in created.uploads:
            if isinstance(item, PresentFile):
                err.print(f"{item.path}: already in the store (same sha256), not uploaded again")
        stats = _upload(client, created, files)
        sid = created.submission_id
        err.print(
            f"submitted [bold]{sid}[/bold]: {len(stats.uploaded)} files uploaded ({human_bytes(stats.sent_bytes)}), "
            f"{len(stats.present)} already present"
        )
        if not args.wait:
            if args.json:
                print_json(_summary(created, stats))
            else:
                write(sid + "\n")
            return 0
        return follow(client, sid, as_json=args.json, summary=_summary(created, stats))


def follow(client: Client, submission_id: str, *, as_json: bool = False, summary: dict[str, Any] | None = None) -> int:
    """Stream the job's log until it ends; the exit code says whether it completed."""
    if not as_json:
        err.print(f"following {submission_id} (Ctrl-C stops following; the job goes on)")
    record = client.wait(submission_id, on_log=None if as_json else write)
    if as_json:
        print_json({**(summary or {}), "job": record.model_dump(mode="json")})
        return 0 if record.status.value == "completed" else 1
    return report(record)


def parse_metadata(raw: str | None) -> dict[str, Any]:
    if not raw:
        return {}
    try:
        text = Path(raw[1:]).read_text() if raw.startswith("@") else raw
        value = json.loads(text)
    except OSError as exc:
        raise UsageError(f"--metadata: cannot read {raw[1:]}: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise UsageError(f"--metadata is not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise UsageError('--metadata must be a JSON object, e.g. \'{"method": "padim"}\'')
    return value


def _summary(created: CreateSubmissionResponse, stats: UploadStats) -> dict[str, Any]:
    return {
        "submission_id": created.submission_id,
        "uploaded": stats.uploaded,
        "present": stats.present,
        "multipart": stats.multipart,
        "sent_bytes": stats.sent_bytes,
        "retries": stats.retries,
    }


def _hash(client: Client, files: dict[str, Path]) -> dict[str, str]:
    with progress_bars() as bars:
        tasks: dict[str, TaskID] = {}

        def advance(name: str, n: int) -> None:
            if name not in tasks:
                tasks[name] = bars.add_task(f"sha256 {name}", total=files[name].stat().st_size)
            bars.advance(tasks[name], n)

        return client.hashes(files, progress=advance)


def _upload(client: Client, created: CreateSubmissionResponse, files: dict[str, Path]) -> UploadStats:
    sending = [item.path or "" for item in created.uploads if not isinstance(item, PresentFile)]
    sizes = {name: files[name].stat().st_size for name in sending}
    with progress_bars(stopped=_sent) as bars:
        total = bars.add_task(f"[bold]total ({len(sending)} files)[/bold]", total=sum(sizes.values()))  # first
        per_file = {name: bars.add_task(name, total=size) for name, size in sizes.items()}

        def advance(name: str, n: int) -> None:
            bars.advance(per_file[name], n)
            bars.advance(total, n)

        return client.upload(created, files, advance)


def _sent(bars: Progress) -> str:
    """A failed upload's one line in place of its bars: the bytes the store took, the files it has whole."""
    total, *per_file = bars.tasks
    whole = sum(1 for task in per_file if task.finished)
    return (
        f"upload stopped: {human_bytes(total.completed)} of {human_bytes(total.total or 0)} sent, "
        f"{whole} of {len(per_file)} files complete"
    )
