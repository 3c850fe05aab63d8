"""One MLflow run per finished job, in an experiment per dataset; idempotent by submission id."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from leadersboard.models import JobRecord, MetricsFile

__all__ = ["TrackedRun", "log_run"]


@dataclass(frozen=True)
class TrackedRun:
    run_id: str
    experiment_id: str


def log_run(
    tracking_uri: str,
    record: JobRecord,
    *,
    dataset: str,
    metrics: MetricsFile | None,
    wall_time_s: float,
    artifacts: list[Path],
    outputs: list[Path],
    output_root: Path,
    succeeded: bool,
) -> TrackedRun:
    client = MlflowClient(tracking_uri)
    experiment_id = _experiment(client, dataset)
    run_id = _run_for(client, experiment_id, record)
    params = [Param(k, v) for k, v in (metrics.params_as_strings() if metrics else {}).items()]
    now_ms = int(time.time() * 1000)
    values = [Metric(k, float(v), now_ms, 0) for k, v in (metrics.metrics if metrics else {}).items()]
    values.append(Metric("wall_time_s", wall_time_s, now_ms, 0))
    tags = [RunTag(k, str(v)[:5000]) for k, v in _tags(record, dataset).items()]
    client.log_batch(run_id, metrics=values, params=params, tags=tags)
    for path in artifacts:
        client.log_artifact(run_id, str(path))
    for path in outputs:
        parent = path.parent.relative_to(output_root).as_posix()
        client.log_artifact(run_id, str(path), "output" if parent == "." else f"output/{parent}")
    client.set_terminated(run_id, status="FINISHED" if succeeded else "FAILED")
    return TrackedRun(run_id, experiment_id)


def _tags(record: JobRecord, dataset: str) -> dict[str, object]:
    tags: dict[str, object] = {
        "submission_id": record.submission_id,
        "user": record.user,
        "dataset": dataset,
        "entrypoint": record.entrypoint,
        "mlflow.user": record.user,
    }
    for key, value in record.metadata.items():
        tags[f"metadata.{key}"] = value
    for key in ("method", "description"):
        if key in record.metadata:
            tags[key] = record.metadata[key]
    if "description" in record.metadata:
        tags["mlflow.note.content"] = record.metadata["description"]
    return tags


def _experiment(client: MlflowClient, dataset: str) -> str:
    existing = client.get_experiment_by_name(dataset)
    if existing is not None:
        return str(existing.experiment_id)
    try:
        return str(client.create_experiment(dataset))
    except MlflowException:  # created by another runner meanwhile
        found = client.get_experiment_by_name(dataset)
        if found is None:
            raise
        return str(found.experiment_id)


def _run_for(client: MlflowClient, experiment_id: str, record: JobRecord) -> str:
    """The run of this submission if a crashed attempt already created it, else a new one."""
    found = client.search_runs(
        [experiment_id], filter_string=f"tags.submission_id = '{record.submission_id}'", max_results=1
    )
    if found:
        return str(found[0].info.run_id)
    run = client.create_run(experiment_id, run_name=record.submission_id, tags={"submission_id": record.submission_id})
    return str(run.info.run_id)
