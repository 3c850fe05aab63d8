"""The bodies of the HTTP API: the create request, the presigned uploads it answers with, and the error body."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Discriminator, Field, Tag, field_validator

from leadersboard.keys import BENCHMARK_NAME_PATTERN
from leadersboard.limits import (
    MAX_DATASET_CHARS,
    MAX_METADATA_BYTES,
    MAX_METADATA_DEPTH,
    MAX_METADATA_KEYS,
    MAX_METADATA_VALUE_CHARS,
    MAX_NAME_CHARS,
)
from leadersboard.metadata import check_metadata
from leadersboard.models.base import StrictModel
from leadersboard.models.submission import MAX_FILES, SAFE_PATH, FileSpec, check_relative_path, missing_declared

__all__ = [
    "CreateSubmissionRequest",
    "CreateSubmissionResponse",
    "ErrorBody",
    "ErrorDetail",
    "MultipartUpload",
    "PresentFile",
    "PresignedRequest",
    "UploadItem",
    "UploadPart",
]


_METADATA_SCHEMA: dict[str, Any] = {
    "maxProperties": MAX_METADATA_KEYS,
    "propertyNames": {"pattern": r"^[\w.\- :][/\w.\- :]*$", "maxLength": MAX_NAME_CHARS},
    "properties": {
        "dataset": {"type": "string", "pattern": r"^[\w.\- :][/\w.\- :]*$", "maxLength": MAX_DATASET_CHARS},
        "method": {"type": "string", "maxLength": MAX_METADATA_VALUE_CHARS},
        "description": {"type": "string", "maxLength": MAX_METADATA_VALUE_CHARS},
    },
}


class CreateSubmissionRequest(StrictModel):
    """The body of `POST /api/v1/submissions`. Ingest validates it strictly (`"size": "10"` is no integer)
    and bounds every field, so that nothing accepted here is refused, or stops a service, later on."""

    entrypoint: str = Field(default="main.py", pattern=SAFE_PATH.pattern, description="Path of the script to run.")
    config: str = Field(default="config.yaml", pattern=SAFE_PATH.pattern, description="Path of its config.")
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
    benchmark: str | None = Field(
        default=None,
        pattern=BENCHMARK_NAME_PATTERN,
        description="An official benchmark (`GET /api/v1/benchmarks`): its latest version's public part is mounted "
        "read-only at `benchmark/` and the platform scores `<output>/predictions/` against labels the job never "
        "sees. Omitted: the guide's path, with self-reported metrics.",
    )

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
        return [file.name for file in missing_declared(self.entrypoint, self.config, paths)]


class PresignedRequest(StrictModel):
    path: str | None = None
    method: str = "PUT"
    url: str
    headers: dict[str, str] = Field(default_factory=dict)
    body: str | None = Field(default=None, description="For the manifest: the exact bytes to PUT.")


class UploadPart(StrictModel):
    part_number: int = Field(ge=1, le=10_000)
    size: int = Field(ge=0, description="Bytes of this part: `part_size`, except the last one.")
    url: str = Field(description="Presigned PUT of this part; its Content-Length is signed.")


class MultipartUpload(StrictModel):
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


class PresentFile(StrictModel):
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


class CreateSubmissionResponse(StrictModel):
    submission_id: str
    uploads: list[UploadItem]
    manifest: PresignedRequest
    expires_at: datetime


class ErrorDetail(StrictModel):
    code: str
    message: str


class ErrorBody(StrictModel):
    error: ErrorDetail
