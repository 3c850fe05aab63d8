"""The bodies of the HTTP API: the create request, the presigned uploads it answers with, and the error body."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Discriminator, Field, Tag, field_validator

from leadersboard.benchmarks.source import CATEGORY_NAME_PATTERN
from leadersboard.keys import BENCHMARK_NAME_PATTERN, is_benchmark_name
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
from leadersboard.models.benchmarks import BenchmarkInfo, CategorySummary, Layout
from leadersboard.models.submission import (
    MAX_FILES,
    MAX_OBJECT_BYTES,
    SAFE_PATH,
    FileSpec,
    check_relative_path,
    missing_declared,
)

__all__ = [
    "BenchmarkCategory",
    "BenchmarkListing",
    "BenchmarkPart",
    "BenchmarkView",
    "CreateBenchmarkRequest",
    "CreateBenchmarkResponse",
    "CreateSubmissionRequest",
    "CreateSubmissionResponse",
    "ErrorBody",
    "ErrorDetail",
    "MultipartUpload",
    "PresentFile",
    "PresignedRequest",
    "RescoreResponse",
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


# --- official benchmarks (an admin registers them; everyone lists them) --------------------------------------------

NEXT_VERSION_HEADER = "X-Next-Version"
"""On a 409 of `POST /api/v1/admin/benchmarks`: the version the client should pack the parts for instead."""
MAX_BENCHMARK_VERSION = 1_000_000
MAX_BENCHMARK_CATEGORIES = 1000
MAX_CATEGORY_IMAGES = 10_000_000
MAX_BENCHMARK_TEXT_CHARS = 2000
MAX_LICENSE_CHARS = 200
SHA256_PATTERN = r"^[0-9a-f]{64}$"


class BenchmarkCategory(StrictModel):
    """A category's image counts as registered (CategorySummary, bounded at the edge)."""

    train: int = Field(ge=1, le=MAX_CATEGORY_IMAGES)
    test: int = Field(ge=2, le=MAX_CATEGORY_IMAGES, description="Test images (good and defective: both are needed).")
    masks: bool = Field(description="Whether the defective test images have masks (pixel metrics are scored).")


class BenchmarkPart(StrictModel):
    """One packed part (a zip) of a benchmark version, as the admin's client declares it."""

    size: int = Field(ge=1, le=MAX_OBJECT_BYTES, description="Bytes of the zip.")
    sha256: str = Field(pattern=SHA256_PATTERN, description="sha256 of the zip (lowercase hex).")


class CreateBenchmarkRequest(StrictModel):
    """The body of `POST /api/v1/admin/benchmarks`: a benchmark version whose two parts the client has packed
    (leadersboard/benchmarks/package.py). `version` is the one its `index.json` and `reference.json` name: the
    next free version of `name`, or the version being uploaded with these very parts (the upload resumes)."""

    name: str = Field(
        max_length=63,
        description="Lowercase letters, digits, `_` and `-`.",
        json_schema_extra={"pattern": BENCHMARK_NAME_PATTERN},
    )
    version: int = Field(ge=1, le=MAX_BENCHMARK_VERSION)
    description: str = Field(default="", max_length=MAX_BENCHMARK_TEXT_CHARS)
    license: str = Field(default="", max_length=MAX_LICENSE_CHARS)
    layout: Layout
    test_labels_public: bool = Field(
        default=True,
        description="Whether the test labels are published elsewhere (true for MVTec AD and VisA): results are "
        "labelled 'verified (public test labels)'. False only for a split the platform alone holds.",
    )
    categories: dict[str, BenchmarkCategory] = Field(
        min_length=1,
        max_length=MAX_BENCHMARK_CATEGORIES,
        json_schema_extra={"propertyNames": {"pattern": CATEGORY_NAME_PATTERN}},
    )
    public_sha256: str = Field(pattern=SHA256_PATTERN, description="Digest of the public tree (split.tree_sha256).")
    reference_sha256: str = Field(pattern=SHA256_PATTERN, description="Digest of the reference tree.")
    public: BenchmarkPart = Field(description="`public.zip`: what jobs see at `benchmark/`.")
    reference: BenchmarkPart = Field(description="`reference.zip`: labels and masks, for the scorer only.")

    @field_validator("name")
    @classmethod
    def _name(cls, name: str) -> str:
        if not is_benchmark_name(name):
            raise ValueError(f"must match {BENCHMARK_NAME_PATTERN}")
        return name

    @field_validator("categories")
    @classmethod
    def _category_names(cls, categories: dict[str, BenchmarkCategory]) -> dict[str, BenchmarkCategory]:
        bad = [name[:60] for name in categories if re.fullmatch(CATEGORY_NAME_PATTERN[1:-1], name) is None]
        if bad:
            raise ValueError(f"category names must match {CATEGORY_NAME_PATTERN}: {', '.join(bad[:5])}")
        return categories

    def info(self) -> BenchmarkInfo:
        """The catalogue entry this request describes (created now)."""
        return BenchmarkInfo(
            name=self.name,
            version=self.version,
            description=self.description,
            license=self.license,
            layout=self.layout,
            test_labels_public=self.test_labels_public,
            categories={name: CategorySummary(**c.model_dump()) for name, c in self.categories.items()},
            public_sha256=self.public_sha256,
            reference_sha256=self.reference_sha256,
        )


class CreateBenchmarkResponse(StrictModel):
    """Where to put the two parts: a presigned PUT or multipart upload each, or `present` when already stored."""

    name: str
    version: int
    resumed: bool = Field(description="An upload of these very parts was already under way: it goes on.")
    public: UploadItem
    reference: UploadItem
    expires_at: datetime


class BenchmarkView(StrictModel):
    """A ready benchmark version as everyone sees it: counts per category, never a label count."""

    name: str
    version: int
    description: str
    license: str
    layout: Layout
    test_labels_public: bool
    created_at: datetime
    categories: dict[str, CategorySummary]

    @classmethod
    def of(cls, info: BenchmarkInfo) -> BenchmarkView:
        return cls.model_validate(info.model_dump(include=set(cls.model_fields)))


class BenchmarkListing(StrictModel):
    benchmarks: list[BenchmarkView]


class RescoreResponse(StrictModel):
    benchmark: str
    requested: int = Field(description="Jobs sent to the scorer again (completed ones and ones failed by scoring).")
