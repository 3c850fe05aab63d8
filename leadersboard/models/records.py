"""The records kept in the NATS key-value buckets: jobs, issued submissions, quotas and the rate ledger, tokens
and disabled users. Each is written and read only by the platform: unknown fields are refused."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import Field, computed_field, model_validator

from leadersboard.keys import USER_NAME_PATTERN
from leadersboard.models.base import StrictModel, utcnow
from leadersboard.models.scores import Scores
from leadersboard.models.submission import FileSpec

__all__ = [
    "DisabledUser",
    "IssuedSubmission",
    "JobRecord",
    "JobStatus",
    "Quota",
    "QuotaOverride",
    "RateLedger",
    "Role",
    "TokenRecord",
]


class JobStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED)


_DERIVED = frozenset({"duration_s", "verified"})


class JobRecord(StrictModel):
    """The state of one submission, kept in the NATS KV bucket of jobs under `<user>.<id>`."""

    version: Literal[1] = 1
    submission_id: str
    user: str
    status: JobStatus = JobStatus.PENDING
    entrypoint: str
    config: str
    metadata: dict[str, Any] = Field(default_factory=dict)
    files: list[FileSpec] = Field(default_factory=list)
    dataset: str | None = None
    created_at: datetime
    queued_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    runner: str | None = None
    heartbeat_at: datetime | None = None
    attempts: int = 0
    """Runs that counted against the job: a claim adds one, a hand-back gives it back (see `hand_backs`)."""
    exit_code: int | None = None
    params: dict[str, str] = Field(default_factory=dict)
    metrics: dict[str, float] = Field(default_factory=dict)
    error: str | None = None
    mlflow_run_id: str | None = None
    mlflow_run_url: str | None = None
    timeout_s: float | None = None
    """The owner's time limit when the job was released (None: the runner's default)."""
    disk_gib: float | None = None
    """The owner's disk limit for the job's working and output directories (None: the runner's default)."""
    memory_gib: float | None = None
    """The owner's memory limit for the job's whole process tree (None: the runner's default)."""
    hand_backs: int = 0
    """How many times a runner gave the job back to the queue (platform outage, shutdown); never reset."""
    benchmark: str | None = None
    """The official benchmark the job is scored on (None: the guide's self-reported path)."""
    benchmark_version: int | None = None
    scoring_requested_at: datetime | None = None
    """When the run ended well and its predictions went to the scorer; the job stays `running` until scored."""
    scores: Scores | None = None
    """The platform's own scores of the job's predictions (benchmark jobs), with 95% intervals."""
    files_deleted_at: datetime | None = None
    """When the retention sweep deleted the submission's files (ingest/retention.py); its results stay."""

    @model_validator(mode="before")
    @classmethod
    def _derived_fields_are_recomputed(cls, data: Any) -> Any:
        # The API shows `duration_s` and `verified` beside the stored fields; read back, they are derived again,
        # never trusted.
        if isinstance(data, dict) and _DERIVED & data.keys():
            return {key: value for key, value in data.items() if key not in _DERIVED}
        return data

    @computed_field  # type: ignore[prop-decorator]  # pydantic's documented form
    @property
    def verified(self) -> bool:
        """Whether the platform scored the job itself; otherwise its `metrics` are only what the job reported."""
        return self.scores is not None

    @computed_field  # type: ignore[prop-decorator]  # pydantic's documented form
    @property
    def duration_s(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()


class IssuedSubmission(StrictModel):
    """A submission ingest issued upload URLs for, until its job exists (the dispatcher's safety net)."""

    version: Literal[1] = 1
    user: str
    submission_id: str
    issued_at: datetime
    uploads_expire_at: datetime | None = None
    """When its upload URLs expire: a manifest still missing some time after that never comes."""


class Quota(StrictModel):
    """Limits of one user (or the defaults, from the guide: 50 submissions an hour, 2 running jobs)."""

    version: Literal[1] = 1
    per_hour: int = Field(default=50, ge=0, le=100_000)
    concurrent: int = Field(default=2, ge=1, le=1000)
    job_timeout_s: int | None = Field(default=None, ge=1, le=7 * 24 * 3600)
    """A job's time limit; None: the runner's own `LB_RUNNER_JOB_TIMEOUT_S`."""
    job_disk_gib: float | None = Field(default=None, gt=0, le=10_000)
    """A job's disk limit (working and output directories); None: the runner's own default."""
    job_memory_gib: float | None = Field(default=None, gt=0, le=10_000)
    """A job's memory limit (its whole process tree); None: the runner's own default."""


class QuotaOverride(StrictModel):
    """A user's own limits; a field left None falls back to the default."""

    version: Literal[1] = 1
    per_hour: int | None = Field(default=None, ge=0, le=100_000)
    concurrent: int | None = Field(default=None, ge=1, le=1000)
    job_timeout_s: int | None = Field(default=None, ge=1, le=7 * 24 * 3600)
    job_disk_gib: float | None = Field(default=None, gt=0, le=10_000)
    job_memory_gib: float | None = Field(default=None, gt=0, le=10_000)

    def apply(self, default: Quota) -> Quota:
        fields = ("per_hour", "concurrent", "job_timeout_s", "job_disk_gib", "job_memory_gib")
        return Quota(**{f: getattr(default, f) if getattr(self, f) is None else getattr(self, f) for f in fields})


class RateLedger(StrictModel):
    """When a user's submissions of the last hour were accepted (epoch seconds), for the rolling limit."""

    version: Literal[1] = 1
    accepted_at_s: list[float] = Field(default_factory=list)


class Role(StrEnum):
    USER = "user"
    ADMIN = "admin"


class TokenRecord(StrictModel):
    """A token as stored: never the token itself, only its SHA-256 (the KV key)."""

    version: Literal[1] = 1
    token_id: str
    user: str = Field(pattern=USER_NAME_PATTERN)
    role: Role = Role.USER
    created_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime | None = None
    revoked: bool = False
    last_used_at: datetime | None = None

    def usable(self, now: datetime) -> bool:
        return not self.revoked and (self.expires_at is None or now < self.expires_at)


class DisabledUser(StrictModel):
    """A user an admin disabled (`users.<name>` in the tokens bucket): no token is issued to them until enabled."""

    version: Literal[1] = 1
    user: str = Field(pattern=USER_NAME_PATTERN)
    disabled_at: datetime = Field(default_factory=utcnow)
    disabled_by: str

    @property
    def cancel_reason(self) -> str:
        """The reason on each of the user's jobs stopped by the disabling."""
        return f"cancelled by {self.disabled_by}: user {self.user} was disabled"

    def cancel(self, record: JobRecord) -> JobRecord | None:
        """`record` cancelled by this disabling (changed in place), or None when it has finished already.

        Both ingest's `user disable` and the dispatcher's release (which never releases a disabled user's job)
        apply it, whichever reaches a job first.
        """
        if record.status.terminal:
            return None
        record.status = JobStatus.CANCELLED
        record.error = self.cancel_reason
        record.finished_at = utcnow()
        return record

    def stopped(self, record: JobRecord) -> bool:
        """Whether `record` was cancelled by this disabling, by whoever applied it."""
        return (
            record.status is JobStatus.CANCELLED
            and record.error == self.cancel_reason
            and record.finished_at is not None
            and record.finished_at >= self.disabled_at
        )
