"""What the runner and the scorer share about MLflow: the platform's tag names and the client's retry policy."""

from __future__ import annotations

from typing import Protocol

__all__ = [
    "TAG_BENCHMARK",
    "TAG_BENCHMARK_VERSION",
    "TAG_SCORER_VERSION",
    "TAG_VERIFICATION",
    "TAG_VERIFIED",
    "VERIFIED_PREFIX",
    "MlflowRetrySettings",
    "client_environment",
]

TAG_BENCHMARK = "leadersboard.benchmark"
TAG_BENCHMARK_VERSION = "leadersboard.benchmark_version"
TAG_SCORER_VERSION = "leadersboard.scorer_version"
TAG_VERIFICATION = "leadersboard.verification"
"""How a verified run's scores are shown: "verified (public test labels)" or "verified" (leadersboard/models/scores)."""
TAG_VERIFIED = "leadersboard.verified"
""""true" on a run the platform scored; "false" on self-reported runs and on runs whose scoring failed."""
VERIFIED_PREFIX = "verified_"
"""The platform's own metrics; any other metric of a run is what the job said of itself."""


class MlflowRetrySettings(Protocol):
    @property
    def mlflow_http_max_retries(self) -> int: ...
    @property
    def mlflow_http_backoff_factor(self) -> float: ...
    @property
    def mlflow_http_timeout_s(self) -> float: ...


def client_environment(settings: MlflowRetrySettings) -> dict[str, str]:
    """MLflow's client takes its retry policy from these variables only."""
    return {
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": str(settings.mlflow_http_max_retries),
        "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": str(settings.mlflow_http_backoff_factor),
        "MLFLOW_HTTP_REQUEST_TIMEOUT": str(settings.mlflow_http_timeout_s),
    }
