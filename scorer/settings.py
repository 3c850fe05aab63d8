from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from leadersboard.scoring.score import DEFAULT_RESAMPLES
from leadersboard.settings import NatsSettings, S3Settings

__all__ = ["ScorerSettings"]


class ScorerSettings(NatsSettings, S3Settings):
    """The scorer's S3 identity reads the main bucket (predictions), writes `results/*/*/scores.json` there,
    and reads the reference bucket: the one service that may."""

    model_config = SettingsConfigDict(env_prefix="LB_SCORER_")

    consumer_name: str = "scorer"
    """The durable pull consumer on the scoring stream (one work queue, shared by every scorer process)."""
    work_dir: Path = Path(".leadersboard/scorer")
    """References are extracted under `<work_dir>/references/<sha256>/` (kept: a cache per version), and each
    job's predictions are downloaded under `<work_dir>/predictions/` for the time of its scoring."""
    mlflow_tracking_uri: str = "http://127.0.0.1:5010"
    mlflow_username: str = "scorer"
    """The scorer's MLflow account (MLflow runs with basic auth; see leadersboard/mlflow_auth.py)."""
    mlflow_password: SecretStr | None = None
    mlflow_http_max_retries: int = Field(default=4, ge=0)
    mlflow_http_backoff_factor: int = Field(default=1, ge=0)
    """MLflow's client retries a failed request this often, waiting 1, 2, 4... times this (s) in between."""
    mlflow_http_timeout_s: int = Field(default=60, gt=0)
    ack_wait_s: float = Field(default=60.0, gt=0)
    """A request not settled this long after its delivery is delivered again (the scorer marks the one in hand
    in progress every third of it)."""
    fetch_timeout_s: float = Field(default=1.0, gt=0)
    max_deliveries: int = Field(default=5, ge=1)
    """A request that failed this many times for an outage (the store, MLflow or NATS away) ends its job
    `failed` with the outage as the reason; a refusal (a 4xx) ends it at once."""
    retry_delay_s: float = Field(default=5.0, gt=0)
    """Delay before a request that met an outage is delivered again; doubled on each delivery..."""
    retry_max_delay_s: float = Field(default=300.0, gt=0)
    """...up to this."""
    resamples: int = Field(default=DEFAULT_RESAMPLES, gt=0)
    """Bootstrap resamples per metric. Paired comparisons need the same number for every job of a benchmark."""
    max_predictions_bytes: int = Field(default=4 * 1024**3, gt=0)
    """A job's `predictions/` directory larger than this (all files together) is rejected, not downloaded."""
    max_prediction_files: int = Field(default=250_000, gt=0)
    """Files in a job's `predictions/` (scores.csv and one map per test image; VisA has 2,162 test images)."""
    burst: bool = False
    """Exit once no score request is waiting (tests, one-off catch-ups)."""
