"""The verified scores on the job's own MLflow run, beside what the job reported about itself.

    verified_<metric>, verified_<metric>_ci_low, verified_<metric>_ci_high   the category averages
    verified_<metric>.<category>                                             each category's value (when the
                                                                             name passes MLflow's rule)
    tags leadersboard.benchmark, leadersboard.benchmark_version, leadersboard.scorer_version,
         leadersboard.verified ("true"; "false" once scoring failed)

A rescore logs the metrics again (MLflow shows the latest value) and sets the tags again.
"""

from __future__ import annotations

import logging
import time

from mlflow.entities import Metric, RunTag
from mlflow.tracking import MlflowClient

from leadersboard.limits import mlflow_name_problem
from leadersboard.models.scores import Interval, MetricSet, Scores
from leadersboard.tracking import (
    TAG_BENCHMARK,
    TAG_BENCHMARK_VERSION,
    TAG_SCORER_VERSION,
    TAG_VERIFICATION,
    TAG_VERIFIED,
    VERIFIED_PREFIX,
)

__all__ = ["log_unverified", "log_verified", "verified_metrics"]

log = logging.getLogger("scorer")


def verified_metrics(scores: Scores) -> dict[str, float]:
    """The MLflow metrics of `scores`, by name."""
    values: dict[str, float] = {}
    for metric, interval in _intervals(scores):
        name = VERIFIED_PREFIX + metric
        values |= {name: interval.value, f"{name}_ci_low": interval.ci_low, f"{name}_ci_high": interval.ci_high}
    for category, metric_set in scores.per_category.items():
        for metric, interval in _intervals(metric_set):
            name = f"{VERIFIED_PREFIX}{metric}.{category}"
            if mlflow_name_problem(name) is None:  # a category name MLflow refuses: the record still has it
                values[name] = interval.value
    return values


def _intervals(metric_set: MetricSet) -> list[tuple[str, Interval]]:
    found = ((name, getattr(metric_set, name)) for name in MetricSet.model_fields)
    return [(name, interval) for name, interval in found if isinstance(interval, Interval)]


def log_verified(tracking_uri: str, run_id: str, scores: Scores, *, benchmark: str, benchmark_version: int) -> None:
    now_ms = int(time.time() * 1000)
    metrics = [Metric(name, value, now_ms, 0) for name, value in verified_metrics(scores).items()]
    tags = [*_tags(benchmark, benchmark_version, scores.scorer_version, verified=True),
            RunTag(TAG_VERIFICATION, scores.label)]  # fmt: skip
    MlflowClient(tracking_uri).log_batch(run_id, metrics=metrics, tags=tags)


def log_unverified(
    tracking_uri: str, run_id: str, *, benchmark: str, benchmark_version: int, scorer_version: str
) -> None:
    """Mark the run as not verified (its scoring failed): best effort, the job's record says why."""
    try:
        tags = _tags(benchmark, benchmark_version, scorer_version, verified=False)
        MlflowClient(tracking_uri).log_batch(run_id, tags=tags)
    except Exception as exc:
        log.warning("could not tag MLflow run %s as not verified (%r)", run_id, exc)


def _tags(benchmark: str, benchmark_version: int, scorer_version: str, *, verified: bool) -> list[RunTag]:
    return [
        RunTag(TAG_BENCHMARK, benchmark),
        RunTag(TAG_BENCHMARK_VERSION, str(benchmark_version)),
        RunTag(TAG_SCORER_VERSION, scorer_version),
        RunTag(TAG_VERIFIED, "true" if verified else "false"),
    ]
