"""The submission as stored: the files it declares and the manifest whose creation triggers its job.

`submissions/<user>/<id>/manifest.json` is written by the client (signed by ingest) and read by the dispatcher.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from datetime import datetime
from typing import Any, Literal, NamedTuple

from pydantic import Field, SerializerFunctionWrapHandler, field_validator, model_serializer, model_validator

from leadersboard import keys
from leadersboard.keys import BENCHMARK_NAME_PATTERN, SUBMISSION_ID_PATTERN, USER_NAME_PATTERN
from leadersboard.models.base import StrictModel

__all__ = [
    "MAX_FILES",
    "MAX_OBJECT_BYTES",
    "SAFE_PATH",
    "DeclaredFile",
    "FileSpec",
    "Manifest",
    "check_relative_path",
    "entrypoint_problem",
    "missing_declared",
]

SAFE_PATH = re.compile(r"^[A-Za-z0-9._][A-Za-z0-9._ +\-/]{0,255}$")
MAX_FILES = 200
MAX_OBJECT_BYTES = 5 * 1024**4
"""S3's largest object (5 TiB): no declared file can be larger, whatever ingest's own limit."""


def check_relative_path(path: str) -> str:
    """A submitted file path: relative, no `..`, no empty parts, printable ASCII."""
    if not SAFE_PATH.match(path):
        raise ValueError("must be a relative path of letters, digits, '.', '_', '-', ' ', '+' and '/' (max 256 chars)")
    parts = path.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise ValueError("must not contain empty, '.' or '..' parts")
    return path


class DeclaredFile(NamedTuple):
    role: Literal["entrypoint", "config"]
    name: str


def missing_declared(entrypoint: str, config: str, paths: Collection[str]) -> list[DeclaredFile]:
    """The entrypoint and the config (in that order) that are not among the submission's `paths`.

    A job runs `python <entrypoint> --config <config>` in a directory holding exactly the submitted files.
    """
    declared = (DeclaredFile("entrypoint", entrypoint), DeclaredFile("config", config))
    return [file for file in declared if file.name not in paths]


def entrypoint_problem(entrypoint: str) -> str | None:
    """Why `entrypoint` cannot be run with python (None: it can)."""
    return None if entrypoint.endswith(".py") else f"the entrypoint {entrypoint!r} is not a Python file (.py)"


class FileSpec(StrictModel):
    path: str = Field(
        pattern=SAFE_PATH.pattern,
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


class Manifest(StrictModel):
    """`submissions/<user>/<id>/manifest.json`: its creation is the only trigger of a job."""

    version: Literal[1] = 1
    submission_id: str = Field(pattern=SUBMISSION_ID_PATTERN)
    user: str = Field(pattern=USER_NAME_PATTERN)
    entrypoint: str
    config: str
    metadata: dict[str, Any] = Field(default_factory=dict)
    files: list[FileSpec] = Field(min_length=1, max_length=MAX_FILES)
    created_at: datetime
    token_id: str | None = Field(
        default=None, description="The id of the token that created the submission: a revoked one stops it."
    )
    benchmark: str | None = Field(default=None, pattern=BENCHMARK_NAME_PATTERN)
    benchmark_version: int | None = Field(default=None, ge=1)
    """The benchmark version ingest resolved at create time: the job is scored against that one."""
    signature: str | None = Field(
        default=None, description="HMAC-SHA256 by ingest over the other fields: edits are detected."
    )

    @model_serializer(mode="wrap")
    def _without_missing_token(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # Manifests written before these optional fields existed serialize as they did: their signatures stay valid.
        data: dict[str, Any] = handler(self)
        for optional in ("token_id", "benchmark", "benchmark_version"):
            if data.get(optional) is None:
                data.pop(optional, None)
        return data
