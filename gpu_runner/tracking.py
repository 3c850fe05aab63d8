"""One MLflow run per finished job, in an experiment per dataset or benchmark; idempotent by submission id.

How it reads in MLflow (experiment names, descriptions and view, run names) is leadersboard/experiments.py.

What is sent always fits MLflow's own limits (leadersboard/limits.py): metric names and param keys were
checked in metrics.json already (gpu_runner/results.py), values are cut to MLflow's lengths, batches hold at
most MLFLOW_MAX_PARAMS_PER_BATCH params, and a metadata tag whose key MLflow would refuse is left out (the
record keeps it). So a big but valid outcome is logged, never refused.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from leadersboard.experiments import TAG_NOTE, TAG_RUN_NAME, experiment_tags, run_description, run_name
from leadersboard.limits import (
    MLFLOW_MAX_PARAM_VALUE_CHARS,
    MLFLOW_MAX_PARAMS_PER_BATCH,
    MLFLOW_MAX_TAG_VALUE_CHARS,
    mlflow_name_problem,
)
from leadersboard.models.metrics import MetricsFile
from leadersboard.models.records import JobRecord
from leadersboard.tracking import TAG_BENCHMARK, TAG_BENCHMARK_VERSION, TAG_VERIFIED

__all__ = ["SubmissionLinks", "TrackedRun", "log_run"]

T = TypeVar("T")
MAX_METRICS_PER_BATCH = 1000
"""MLflow's log_batch takes at most 1000 metrics (and 1000 entities in all)."""


@dataclass(frozen=True)
class TrackedRun:
    run_id: str
    experiment_id: str


@dataclass(frozen=True)
class SubmissionLinks:
    """The public addresses a run's description links to (the web page's and the API's)."""

    web_url: str
    api_url: str


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
    links: SubmissionLinks,
) -> TrackedRun:
    """`dataset`: the experiment's name, as results.dataset_name spelled it."""
    client = MlflowClient(tracking_uri)
    experiment_id = _experiment(client, dataset, experiment_tags(dataset, benchmark_version=record.benchmark_version))
    name = _run_name(record, metrics, dataset)
    run_id = _run_for(client, experiment_id, record, name)
    strings = metrics.params_as_strings() if metrics else {}
    params = [Param(k, v[:MLFLOW_MAX_PARAM_VALUE_CHARS]) for k, v in strings.items()]
    now_ms = int(time.time() * 1000)
    values = [Metric(k, float(v), now_ms, 0) for k, v in (metrics.metrics if metrics else {}).items()]
    values.append(Metric("wall_time_s", wall_time_s, now_ms, 0))
    tags = [RunTag(k, str(v)[:MLFLOW_MAX_TAG_VALUE_CHARS]) for k, v in _tags(record, dataset, links).items()]
    tags.append(RunTag(TAG_RUN_NAME, name))  # also on the run a crashed attempt created
    client.log_batch(run_id, tags=tags)
    for some_params in _chunks(params, MLFLOW_MAX_PARAMS_PER_BATCH):
        client.log_batch(run_id, params=some_params)
    for some_metrics in _chunks(values, MAX_METRICS_PER_BATCH):
        client.log_batch(run_id, metrics=some_metrics)
    for path in artifacts:
        client.log_artifact(run_id, str(path))
    for path in outputs:
        parent = path.parent.relative_to(output_root).as_posix()
        client.log_artifact(run_id, str(path), "output" if parent == "." else f"output/{parent}")
    client.set_terminated(run_id, status="FINISHED" if succeeded else "FAILED")
    return TrackedRun(run_id, experiment_id)


def _run_name(record: JobRecord, metrics: MetricsFile | None, dataset: str) -> str:
    """The method as the leaderboard shows it (the submission's label, else the job's `method` param)."""
    method = record.metadata.get("method") or (metrics.params.get("method") if metrics else None)
    where = record.benchmark if record.benchmark is not None else dataset
    return run_name(method=None if method is None else str(method), where=where, submission_id=record.submission_id)


def _tags(record: JobRecord, dataset: str, links: SubmissionLinks) -> dict[str, object]:
    tags: dict[str, object] = {
        "submission_id": record.submission_id,
        "user": record.user,
        "dataset": dataset,
        "entrypoint": record.entrypoint,
        "mlflow.user": record.user,
    }
    for key, value in record.metadata.items():
        if mlflow_name_problem(str(key)) is None:  # a key from before the edge checked them: skip, not fail
            tags[f"metadata.{key}"] = value
    for key in ("method", "description"):
        if key in record.metadata:
            tags[key] = record.metadata[key]
    description = record.metadata.get("description")
    tags[TAG_NOTE] = run_description(
        record.submission_id, web_url=links.web_url, api_url=links.api_url,
        description=None if description is None else str(description),
    )  # fmt: skip
    if record.benchmark is None:
        tags[TAG_VERIFIED] = "false"  # what the job says of itself; the scorer tags its own "true"
    else:
        tags[TAG_BENCHMARK] = record.benchmark
        tags[TAG_BENCHMARK_VERSION] = record.benchmark_version
    return tags


def _chunks(items: Sequence[T], size: int) -> list[Sequence[T]]:
    return [items[start : start + size] for start in range(0, len(items), size)]


def _experiment(client: MlflowClient, name: str, tags: dict[str, str]) -> str:
    """The experiment `name`, created with `tags`; an existing one (from before, or another runner's) gets the
    tags it lacks or holds otherwise."""
    found = client.get_experiment_by_name(name)
    if found is None:
        try:
            return str(client.create_experiment(name, tags=tags))
        except MlflowException:  # created by another runner meanwhile
            found = client.get_experiment_by_name(name)
            if found is None:
                raise
    for key, value in tags.items():
        if found.tags.get(key) != value:
            client.set_experiment_tag(found.experiment_id, key, value)
    return str(found.experiment_id)


def _run_for(client: MlflowClient, experiment_id: str, record: JobRecord, name: str) -> str:
    """The run of this submission if a crashed attempt already created it, else a new one."""
    found = client.search_runs(
        [experiment_id], filter_string=f"tags.submission_id = '{record.submission_id}'", max_results=1
    )
    if found:
        return str(found[0].info.run_id)
    run = client.create_run(experiment_id, run_name=name, tags={"submission_id": record.submission_id})
    return str(run.info.run_id)
