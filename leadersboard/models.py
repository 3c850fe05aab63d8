"""Every message and record of the platform, versioned, in one place.

Whatever crosses a process boundary (HTTP bodies, the manifest in the store, S3 events on NATS,
jobs on the work queue, records in the NATS key-value buckets, the job's metrics.json) is one
of these models and is validated where it arrives.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    SerializerFunctionWrapHandler,
    Tag,
    field_validator,
    model_serializer,
    model_validator,
)

from leadersboard import keys
from leadersboard.limits import (
    MAX_DATASET_CHARS,
    MAX_METADATA_BYTES,
    MAX_METADATA_DEPTH,
    MAX_METADATA_KEYS,
    MAX_METADATA_VALUE_CHARS,
    MAX_NAME_CHARS,
    MAX_PARAM_VALUE_CHARS,
)
from leadersboard.metadata import check_metadata

__all__ = [
    "USER_NAME_PATTERN",
    "CreateSubmissionRequest",
    "CreateSubmissionResponse",
    "DisabledUser",
    "ErrorBody",
    "FileSpec",
    "JobMessage",
    "JobRecord",
    "JobStatus",
    "Manifest",
    "MetricsFile",
    "MultipartUpload",
    "PresentFile",
    "PresignedRequest",
    "Quota",
    "QuotaOverride",
    "RateLedger",
    "Role",
    "S3EventEnvelope",
    "TokenRecord",
    "UploadItem",
    "UploadPart",
    "utcnow",
]

USER_NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"
_SAFE_PATH = re.compile(r"^[A-Za-z0-9._][A-Za-z0-9._ +\-/]{0,255}$")
MAX_FILES = 200
MAX_OBJECT_BYTES = 5 * 1024**4
"""S3's largest object (5 TiB): no declared file can be larger, whatever ingest's own limit."""


def utcnow() -> datetime:
    return datetime.now(UTC)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def check_relative_path(path: str) -> str:
    """A submitted file path: relative, no `..`, no empty parts, printable ASCII."""
    if not _SAFE_PATH.match(path):
        raise ValueError("must be a relative path of letters, digits, '.', '_', '-', ' ', '+' and '/' (max 256 chars)")
    parts = path.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise ValueError("must not contain empty, '.' or '..' parts")
    return path


class FileSpec(_Strict):
    path: str = Field(
        pattern=_SAFE_PATH.pattern,
        description="Path of the file inside the submission, e.g. `main.py`; no empty, `.` or `..` parts.",
    )
    size: int = Field(ge=0, le=MAX_OBJECT_BYTES, description="Size in bytes.")
    sha256: str | None = Field(
        default=None,
        pattern=r"^[0-9a-f]{64}$",
        description="SHA-256 of the content (lowercase hex). A file declaring one is stored content-addressed under "
        "`blobs/<user>/sha256/<hex>` and not uploaded again when that blob is already there.",
    )
    blob: bool = Field(
        default=False,
        description="Set by ingest (its value in a request is ignored): the file lives at "
        "`blobs/<user>/sha256/<sha256>` instead of `submissions/<user>/<id>/files/<path>`. Omitted when false.",
    )

    @field_validator("path")
    @classmethod
    def _relative(cls, path: str) -> str:
        return check_relative_path(path)

    @model_validator(mode="after")
    def _blob_has_hash(self) -> FileSpec:
        if self.blob and self.sha256 is None:
            raise ValueError("blob: a blob must declare its sha256")
        return self

    @model_serializer(mode="wrap")
    def _without_default_blob(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # Files that are not blobs serialize exactly as before `blob` existed: earlier signatures stay valid.
        data: dict[str, Any] = handler(self)
        if not self.blob:
            data.pop("blob", None)
        return data

    def store_key(self, user: str, submission_id: str) -> str:
        """Where this file of submission `submission_id` of `user` is in the bucket."""
        if self.blob and self.sha256 is not None:
            return keys.blob_key(user, self.sha256)
        return keys.file_key(user, submission_id, self.path)


_METADATA_SCHEMA: dict[str, Any] = {
    "maxProperties": MAX_METADATA_KEYS,
    "propertyNames": {"pattern": r"^[\w.\- :][/\w.\- :]*$", "maxLength": MAX_NAME_CHARS},
    "properties": {
        "dataset": {"type": "string", "pattern": r"^[\w.\- :][/\w.\- :]*$", "maxLength": MAX_DATASET_CHARS},
        "method": {"type": "string", "maxLength": MAX_METADATA_VALUE_CHARS},
        "description": {"type": "string", "maxLength": MAX_METADATA_VALUE_CHARS},
    },
}


class CreateSubmissionRequest(_Strict):
    """The body of `POST /api/v1/submissions`. Ingest validates it strictly (`"size": "10"` is no integer)
    and bounds every field, so that nothing accepted here is refused, or stops a service, later on."""

    entrypoint: str = Field(default="main.py", pattern=_SAFE_PATH.pattern, description="Path of the script to run.")
    config: str = Field(default="config.yaml", pattern=_SAFE_PATH.pattern, description="Path of its config.")
    metadata: dict[str, Any] = Field(
        default_factory=dict,
        description=f"At most {MAX_METADATA_KEYS} keys, each a valid MLflow tag name (letters, digits, `_ - . : /` "
        f"and spaces, at most {MAX_NAME_CHARS} characters); objects and lists nested at most {MAX_METADATA_DEPTH} "
        f"levels; strings at most {MAX_METADATA_VALUE_CHARS} characters; at most {MAX_METADATA_BYTES} bytes "
        f"as compact JSON. `dataset` (an MLflow experiment name, at most {MAX_DATASET_CHARS} characters), "
        "`method` and `description` are strings.",
        json_schema_extra=_METADATA_SCHEMA,
    )
    files: list[FileSpec] = Field(min_length=1, max_length=MAX_FILES)

    @field_validator("entrypoint", "config")
    @classmethod
    def _relative(cls, path: str) -> str:
        return check_relative_path(path)

    @field_validator("metadata")
    @classmethod
    def _bounded(cls, metadata: dict[str, Any]) -> dict[str, Any]:
        check_metadata(metadata)
        return metadata

    @field_validator("files")
    @classmethod
    def _unique_paths(cls, files: list[FileSpec]) -> list[FileSpec]:
        seen: set[str] = set()
        for spec in files:
            if spec.path in seen:
                raise ValueError(f"duplicate path {spec.path!r}")
            seen.add(spec.path)
        return files

    def missing_declared_files(self) -> list[str]:
        paths = {spec.path for spec in self.files}
        return [name for name in (self.entrypoint, self.config) if name not in paths]


class PresignedRequest(BaseModel):
    path: str | None = None
    method: str = "PUT"
    url: str
    headers: dict[str, str] = Field(default_factory=dict)
    body: str | None = Field(default=None, description="For the manifest: the exact bytes to PUT.")


class UploadPart(BaseModel):
    part_number: int = Field(ge=1, le=10_000)
    size: int = Field(ge=0, description="Bytes of this part: `part_size`, except the last one.")
    url: str = Field(description="Presigned PUT of this part; its Content-Length is signed.")


class MultipartUpload(BaseModel):
    """A large file as a presigned S3 multipart upload: PUT every part (in parallel, retrying failed ones), then
    POST `<CompleteMultipartUpload>` with the parts' ETags to `complete.url`. `url` is a presigned PUT of the
    whole file, for clients that do not do multipart (e.g. curl)."""

    path: str
    method: Literal["MULTIPART"] = "MULTIPART"
    url: str = Field(description="Alternative: one presigned PUT of the whole file (S3 limit 5 GiB).")
    headers: dict[str, str] = Field(default_factory=dict)
    upload_id: str
    part_size: int
    parts: list[UploadPart]
    complete: PresignedRequest = Field(description="Presigned POST of the CompleteMultipartUpload XML.")


class PresentFile(BaseModel):
    """A deduplicated file: the user's blob with this sha256 is already in the store; nothing to upload."""

    path: str
    status: Literal["present"] = "present"


def _upload_kind(value: Any) -> str:
    if isinstance(value, dict):
        if value.get("status") == "present":
            return "present"
        return "multipart" if value.get("method") == "MULTIPART" else "put"
    if isinstance(value, PresentFile):
        return "present"
    return "multipart" if isinstance(value, MultipartUpload) else "put"


UploadItem = Annotated[
    Annotated[PresignedRequest, Tag("put")] | Annotated[MultipartUpload, Tag("multipart")]
    | Annotated[PresentFile, Tag("present")],
    Discriminator(_upload_kind),
]  # fmt: skip
"""One entry of `uploads`: a presigned PUT, a multipart upload, or `{"path", "status": "present"}`."""


class CreateSubmissionResponse(BaseModel):
    submission_id: str
    uploads: list[UploadItem]
    manifest: PresignedRequest
    expires_at: datetime


class Manifest(_Strict):
    """`submissions/<user>/<id>/manifest.json`: its creation is the only trigger of a job."""

    version: Literal[1] = 1
    submission_id: str = Field(pattern=r"^[0-9a-z]{8,40}$")
    user: str = Field(pattern=USER_NAME_PATTERN)
    entrypoint: str
    config: str
    metadata: dict[str, Any] = Field(default_factory=dict)
    files: list[FileSpec] = Field(min_length=1, max_length=MAX_FILES)
    created_at: datetime
    token_id: str | None = Field(
        default=None, description="The id of the token that created the submission: a revoked one stops it."
    )
    signature: str | None = Field(
        default=None, description="HMAC-SHA256 by ingest over the other fields: edits are detected."
    )

    @model_serializer(mode="wrap")
    def _without_missing_token(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # Manifests written before `token_id` existed serialize as they did: their signatures stay valid.
        data: dict[str, Any] = handler(self)
        if self.token_id is None:
            data.pop("token_id", None)
        return data


class JobStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED)


class JobRecord(BaseModel):
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

    @property
    def duration_s(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()


class JobMessage(_Strict):
    """One job on the JetStream work queue; the runner reads the rest from the job record."""

    version: Literal[1] = 1
    submission_id: str
    user: str
    timeout_s: float | None = None
    """The owner's time limit at release (None: the runner's default); the runner copies it into the record."""
    queued_at: datetime | None = None
    """When it was released; copied into the record by whichever comes first, the dispatcher or the runner."""
    disk_gib: float | None = None
    """The owner's per-job disk limit at release (None: the runner's default)."""
    memory_gib: float | None = None
    """The owner's per-job memory limit at release (None: the runner's default)."""


class IssuedSubmission(BaseModel):
    """A submission ingest issued upload URLs for, until its job exists (the dispatcher's safety net)."""

    version: Literal[1] = 1
    user: str
    submission_id: str
    issued_at: datetime
    uploads_expire_at: datetime | None = None
    """When its upload URLs expire: a manifest still missing some time after that never comes."""


class MetricsFile(BaseModel):
    """The job's `<output>/metrics.json`, as the guide defines it."""

    params: dict[str, Any] = Field(default_factory=dict)
    metrics: dict[str, float]

    @field_validator("metrics", mode="before")
    @classmethod
    def _numbers_only(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            raise ValueError("must be an object of name -> number")
        for name, number in value.items():
            if isinstance(number, bool) or not isinstance(number, int | float):
                raise ValueError(f"metric {name!r} is {number!r}, not a number")
            if not math.isfinite(number):
                raise ValueError(f"metric {name!r} is {number!r}, not a finite number")
        return value

    def params_as_strings(self) -> dict[str, str]:
        """Every param as the string stored in the record and MLflow, cut at MAX_PARAM_VALUE_CHARS."""
        return {str(k): str(v)[:MAX_PARAM_VALUE_CHARS] for k, v in self.params.items()}

    def long_params(self) -> list[str]:
        """The params whose values `params_as_strings` cuts (the runner notes them in the job's log)."""
        return [str(k) for k, v in self.params.items() if len(str(v)) > MAX_PARAM_VALUE_CHARS]


class Quota(_Strict):
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


class QuotaOverride(_Strict):
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


class RateLedger(BaseModel):
    """When a user's submissions of the last hour were accepted (epoch seconds), for the rolling limit."""

    version: Literal[1] = 1
    accepted_at_s: list[float] = Field(default_factory=list)


class Role(StrEnum):
    USER = "user"
    ADMIN = "admin"


class TokenRecord(BaseModel):
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


class DisabledUser(BaseModel):
    """A user an admin disabled (`users.<name>` in the tokens bucket): no token is issued to them until enabled."""

    version: Literal[1] = 1
    user: str = Field(pattern=USER_NAME_PATTERN)
    disabled_at: datetime = Field(default_factory=utcnow)
    disabled_by: str

    @property
    def cancel_reason(self) -> str:
        """The reason on each of the user's jobs stopped by the disabling."""
        return f"cancelled by {self.disabled_by}: user {self.user} was disabled"


class S3Object(BaseModel):
    key: str
    size: int = 0
    eTag: str = ""
    contentType: str = ""
    userMetadata: dict[str, str] = Field(default_factory=dict)
    versionId: str = ""
    sequencer: str = ""


class S3Bucket(BaseModel):
    name: str
    ownerIdentity: dict[str, str] = Field(default_factory=dict)
    arn: str = ""


class S3Entity(BaseModel):
    s3SchemaVersion: str = "1.0"
    configurationId: str = "Config"
    bucket: S3Bucket
    object: S3Object


class S3EventRecord(BaseModel):
    eventVersion: str = "2.0"
    eventSource: str = "minio:s3"
    awsRegion: str = ""
    eventTime: str
    eventName: str
    userIdentity: dict[str, str] = Field(default_factory=dict)
    requestParameters: dict[str, str] = Field(default_factory=dict)
    responseElements: dict[str, str] = Field(default_factory=dict)
    s3: S3Entity
    source: dict[str, str] = Field(default_factory=dict)


class S3EventEnvelope(BaseModel):
    """What MinIO publishes to NATS for a bucket event (and what our SeaweedFS bridge imitates)."""

    EventName: str
    Key: str = Field(description="`<bucket>/<url-unescaped object key>`")
    Records: list[S3EventRecord] = Field(min_length=1)


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorBody(BaseModel):
    error: ErrorDetail
