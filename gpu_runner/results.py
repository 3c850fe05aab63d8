"""What a finished job leaves behind: its metrics.json judged, its files uploaded to results/."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from leadersboard import keys
from leadersboard.models import JobRecord, MetricsFile
from leadersboard.s3 import S3Client

__all__ = ["BadMetrics", "dataset_name", "output_files", "read_metrics", "upload_results"]


class BadMetrics(Exception):
    """metrics.json is missing or malformed; the message is the reason shown to the user."""


def read_metrics(output: Path, *, max_bytes: int) -> MetricsFile:
    path = output / "metrics.json"
    if not path.is_file():
        raise BadMetrics(
            "the job exited successfully but wrote no metrics.json in the --output directory; "
            'write {"params": {...}, "metrics": {"name": number}} to <--output>/metrics.json'
        )
    size = path.stat().st_size
    if size > max_bytes:
        raise BadMetrics(f"metrics.json is {size} bytes; the limit is {max_bytes} bytes")
    try:
        return MetricsFile.model_validate_json(path.read_bytes())
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "metrics.json"
        raise BadMetrics(f"metrics.json is malformed: {where}: {first['msg']}") from exc


def dataset_name(record: JobRecord, metrics: MetricsFile | None, config_path: Path) -> str:
    """The dataset the job ranks under: metadata, then metrics.json params, then the config."""
    for candidate in (record.metadata.get("dataset"), metrics.params.get("dataset") if metrics else None):
        if candidate:
            return str(candidate)[:100]
    data = _config_data_section(config_path)
    init_args = data.get("init_args")
    if not isinstance(init_args, dict):
        init_args = {}
    for candidate in (init_args.get("name"), data.get("name")):
        if candidate:
            return str(candidate)[:100]
    return "default"


def _config_data_section(config_path: Path) -> dict[str, Any]:
    try:
        config = yaml.safe_load(config_path.read_text())
    except (OSError, yaml.YAMLError, UnicodeDecodeError):
        return {}
    data = config.get("data") if isinstance(config, dict) else None
    return data if isinstance(data, dict) else {}


def output_files(output: Path, *, max_bytes: int) -> tuple[list[Path], list[Path]]:
    """The output files to keep (up to `max_bytes` in all, smallest first) and the ones left out."""
    files = sorted((p for p in output.rglob("*") if p.is_file() and not p.is_symlink()), key=lambda p: p.stat().st_size)
    kept, skipped, total = [], [], 0
    for path in files:
        size = path.stat().st_size
        if total + size > max_bytes:
            skipped.append(path)
            continue
        kept.append(path)
        total += size
    return kept, skipped


def upload_results(client: S3Client, bucket: str, record: JobRecord, *, log: Path, output: Path,
                   outputs: list[Path]) -> None:  # fmt: skip
    user, sid = record.user, record.submission_id
    client.upload_file(str(log), bucket, keys.result_key(user, sid, "job.log"))
    metrics = output / "metrics.json"
    if metrics.is_file():
        client.upload_file(str(metrics), bucket, keys.result_key(user, sid, "metrics.json"))
    for path in outputs:
        relative = path.relative_to(output).as_posix()
        client.upload_file(str(path), bucket, keys.result_key(user, sid, f"output/{relative}"))
