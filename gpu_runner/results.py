"""What a finished job leaves behind: its metrics.json judged (a benchmark job's predictions/ checked), its files
uploaded to results/."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from leadersboard import keys
from leadersboard.experiments import experiment_name
from leadersboard.keys import PREDICTIONS_DIR, SCORES_CSV
from leadersboard.limits import MAX_METRICS, MAX_PARAMS, mlflow_name_problem
from leadersboard.models.metrics import MetricsFile
from leadersboard.models.records import JobRecord
from leadersboard.s3 import S3Client

__all__ = [
    "NO_PREDICTIONS",
    "BadMetrics",
    "check_names",
    "dataset_name",
    "fit_record",
    "output_files",
    "predictions_problem",
    "read_metrics",
    "upload_results",
]


"""A benchmark job's predictions, in its output directory: what the scorer reads (docs/benchmarks.md)."""
NO_PREDICTIONS = (
    "the job wrote no predictions/scores.csv in the --output directory; a benchmark job writes one row per test "
    "image: image_id,score (docs/benchmarks.md)"
)


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
        metrics = MetricsFile.model_validate_json(path.read_bytes())
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "metrics.json"
        raise BadMetrics(f"metrics.json is malformed: {where}: {first['msg']}") from exc
    check_names(metrics)
    return metrics


def check_names(metrics: MetricsFile) -> None:
    """MLflow's own rules, before anything is logged: a name MLflow would refuse fails the job.

    Names are never rewritten: a rewritten metric name would silently change what ranks (decided in
    docs/failure-reasons.md).
    """
    for kind, names, limit in (("metric", metrics.metrics, MAX_METRICS), ("param", metrics.params, MAX_PARAMS)):
        if len(names) > limit:
            raise BadMetrics(f"metrics.json has {len(names)} {kind}s; at most {limit} are allowed")
        for name in names:
            problem = mlflow_name_problem(name)
            if problem is not None:
                raise BadMetrics(f"metrics.json: {kind} {name!r} is not a valid name: {problem}")


def dataset_name(record: JobRecord, metrics: MetricsFile | None, config_path: Path) -> str:
    """The dataset the job ranks under (and its MLflow experiment): a benchmark job's benchmark, else metadata,
    then metrics.json params, then the config, spelled one way (leadersboard/experiments.py)."""
    said = _said_dataset(record, metrics, config_path)
    return experiment_name(benchmark=record.benchmark, dataset=said or "")


def _said_dataset(record: JobRecord, metrics: MetricsFile | None, config_path: Path) -> str | None:
    for candidate in (record.metadata.get("dataset"), metrics.params.get("dataset") if metrics else None):
        if candidate:
            return str(candidate)
    data = _config_data_section(config_path)
    init_args = data.get("init_args")
    if not isinstance(init_args, dict):
        init_args = {}
    for candidate in (init_args.get("name"), data.get("name")):
        if candidate:
            return str(candidate)
    return None


def _config_data_section(config_path: Path) -> dict[str, Any]:
    try:
        config = yaml.safe_load(config_path.read_text())
    except (OSError, yaml.YAMLError, UnicodeDecodeError):
        return {}
    data = config.get("data") if isinstance(config, dict) else None
    return data if isinstance(data, dict) else {}


def _regular_files(directory: Path) -> list[Path]:
    """The regular files below `directory`; links are not followed (they may point at the runner's files)."""
    return [p for p in directory.rglob("*") if p.is_file() and not p.is_symlink()]


def predictions_problem(output: Path, *, max_bytes: int) -> str | None:
    """Why a benchmark job's `<output>/predictions/` cannot go to the scorer, or None (docs/benchmarks.md)."""
    predictions = output / PREDICTIONS_DIR
    scores = predictions / SCORES_CSV
    if predictions.is_symlink() or scores.is_symlink():
        return f"{PREDICTIONS_DIR}/{SCORES_CSV} is a symbolic link (or in one); write a regular file"
    if not scores.is_file():
        return NO_PREDICTIONS
    size = sum(p.stat().st_size for p in _regular_files(predictions))
    if size > max_bytes:
        return f"the {PREDICTIONS_DIR} directory is {size} bytes; the limit is {max_bytes} bytes"
    return None


def output_files(output: Path, *, max_bytes: int, whole: Path | None = None) -> tuple[list[Path], list[Path]]:
    """The output files to keep (up to `max_bytes` in all, smallest first) and the ones left out.

    `whole`: a directory below `output` kept whole, first, and not counted (a benchmark job's predictions,
    which the scorer bounds itself)."""
    every = _regular_files(output)
    first = sorted(p for p in every if whole is not None and p.is_relative_to(whole))
    files = sorted((p for p in every if whole is None or not p.is_relative_to(whole)), key=lambda p: p.stat().st_size)
    kept, skipped, total = first, [], 0
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


KEPT_ERROR_CHARS = 4000
KEPT_VALUE_CHARS = 200


def fit_record(record: JobRecord, max_bytes: int) -> JobRecord:
    """`record` if it fits in `max_bytes` as JSON; else a copy trimmed until it does, saying so in `error`.

    A record that does not fit is refused by NATS (max_payload) on every try: storing it cut is the only way
    the job ends and the runner is freed. Metrics (what ranks) go last; what was cut stays in the job's
    results (metrics.json, job.log) in the store.
    """
    if _size(record) <= max_bytes:
        return record
    fitted = record.model_copy(deep=True)
    cuts: list[str] = []
    for cut in _CUTS:
        before = _size(fitted)
        what = cut(fitted)
        if _size(fitted) < before:
            cuts.append(what)
        if _size(fitted) <= max_bytes - NOTE_ROOM_BYTES:
            break
    note = (
        f"[the job record was cut to fit {max_bytes} bytes: {'; '.join(cuts)}; "
        "the job's full results (metrics.json, job.log) are in its results]"
    )
    fitted.error = f"{fitted.error}\n{note}" if fitted.error else note
    return fitted


NOTE_ROOM_BYTES = 1024
"""Left for the note itself."""


def _cut_error(record: JobRecord) -> str:
    if record.error:
        record.error = record.error[:KEPT_ERROR_CHARS]
    return f"error cut to {KEPT_ERROR_CHARS} characters"


def _cut_metadata_values(record: JobRecord) -> str:
    for key, value in list(record.metadata.items()):
        text = value if isinstance(value, str) else json.dumps(value)
        if len(text) > KEPT_VALUE_CHARS:
            record.metadata[key] = text[:KEPT_VALUE_CHARS]
    return f"metadata values cut to {KEPT_VALUE_CHARS} characters"


def _cut_params(record: JobRecord) -> str:
    record.params = {k: v[:KEPT_VALUE_CHARS] for k, v in record.params.items()}
    return f"param values cut to {KEPT_VALUE_CHARS} characters"


def _drop_metadata(record: JobRecord) -> str:
    count = len(record.metadata)
    record.metadata = {k: v for k, v in record.metadata.items() if k in ("dataset", "method")}
    return f"{count - len(record.metadata)} metadata keys dropped"


def _drop_params(record: JobRecord) -> str:
    count, record.params = len(record.params), {}
    return f"{count} params dropped"


def _drop_metrics(record: JobRecord) -> str:
    count, record.metrics = len(record.metrics), {}
    return f"{count} metrics dropped"


def _drop_files(record: JobRecord) -> str:
    count, record.files = len(record.files), []
    return f"the list of {count} submitted files dropped"


_CUTS = (_cut_error, _cut_metadata_values, _cut_params, _drop_metadata, _drop_params, _drop_metrics, _drop_files)
"""Least harmful first: the error's tail and long strings, then whole fields; metrics (what ranks) last."""


def _size(record: JobRecord) -> int:
    return len(record.model_dump_json().encode())
