"""A benchmark version's reference part, fetched from the reference bucket once and kept extracted.

    <work_dir>/references/<sha256 of reference.zip>/reference.json, masks/<id>.png

The zip is checked against the size and sha256 the catalogue recorded at registration before it is extracted
(with leadersboard/benchmarks/archive.py's checks), into a staging directory renamed into place at the end:
a directory under its sha256 is always complete, and another scorer process sharing the work directory
either finds it or renames its own copy next to it. Every problem is a `DamagedReference` whose message never
names an image (an id with a mask would be a label): the reason the job shows.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from leadersboard.benchmarks.archive import BadArchive, extract_zip
from leadersboard.benchmarks.split import REFERENCE_FILE
from leadersboard.models.benchmarks import BenchmarkRecord, Reference
from leadersboard.s3 import S3Client, is_not_found
from leadersboard.scoring.score import InvalidReference, check_reference

__all__ = ["DamagedReference", "LoadedReference", "ReferenceCache"]

log = logging.getLogger("scorer")

STAGING_PREFIX = ".staging-"
ZIP_NAME = "reference.zip"


class DamagedReference(InvalidReference):
    """The stored reference part cannot be used: missing, not what was registered, or not a safe zip."""


@dataclass(frozen=True)
class LoadedReference:
    reference: Reference
    root: Path
    """Where `reference.json` and the masks are: `score()`'s `reference_root`."""
    sha256: str


class ReferenceCache:
    """References by benchmark version, in memory and on disk. Not thread-safe: one scoring at a time."""

    def __init__(self, s3: S3Client, bucket: str, work_dir: Path) -> None:
        self._s3 = s3
        self._bucket = bucket
        self._dir = work_dir / "references"
        self._loaded: dict[tuple[str, int], LoadedReference] = {}

    def clean_staging(self) -> int:
        """Remove what an interrupted fetch left; returns how many."""
        self._dir.mkdir(parents=True, exist_ok=True)
        left = list(self._dir.glob(f"{STAGING_PREFIX}*"))
        for path in left:
            shutil.rmtree(path, ignore_errors=True)
        return len(left)

    def get(self, benchmark: BenchmarkRecord) -> LoadedReference:
        """The reference of `benchmark`'s version, fetched and extracted on first use."""
        key = (benchmark.info.name, benchmark.info.version)
        sha256 = benchmark.reference.sha256
        loaded = self._loaded.get(key)
        if loaded is not None and loaded.sha256 == sha256:
            return loaded
        root = self._dir / sha256
        if not root.is_dir():
            self._fetch(benchmark, root)
        loaded = LoadedReference(_load(root, benchmark), root, sha256)
        self._loaded[key] = loaded
        return loaded

    def _fetch(self, benchmark: BenchmarkRecord, root: Path) -> None:
        staging = self._dir / f"{STAGING_PREFIX}{secrets.token_hex(8)}"
        staging.mkdir(parents=True)
        try:
            archive = staging / ZIP_NAME
            self._download(benchmark, archive)
            _check_digest(archive, benchmark)
            tree = staging / "tree"
            try:
                extract_zip(archive, tree)
            except BadArchive:  # its message names the entry: a mask's name is an image id
                raise DamagedReference(f"{ZIP_NAME} is not a safe, readable zip") from None
            try:
                tree.rename(root)
            except OSError:
                if not root.is_dir():  # not another scorer's copy landing first
                    raise
            log.info("reference of %s v%d extracted", benchmark.info.name, benchmark.info.version)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def _download(self, benchmark: BenchmarkRecord, archive: Path) -> None:
        try:
            self._s3.download_file(self._bucket, benchmark.reference.key, str(archive))
        except Exception as exc:
            if is_not_found(exc):
                raise DamagedReference(f"{ZIP_NAME} is missing from the store") from None
            raise


def _check_digest(archive: Path, benchmark: BenchmarkRecord) -> None:
    expected = benchmark.reference
    size = archive.stat().st_size
    if size != expected.size:
        raise DamagedReference(f"{ZIP_NAME} is {size} bytes, the catalogue says {expected.size}")
    with archive.open("rb") as stream:
        actual = hashlib.file_digest(stream, "sha256").hexdigest()
    if actual != expected.sha256:
        raise DamagedReference(f"{ZIP_NAME} has sha256 {actual}, the catalogue says {expected.sha256}")


def _load(root: Path, benchmark: BenchmarkRecord) -> Reference:
    try:
        reference = Reference.model_validate_json((root / REFERENCE_FILE).read_bytes())
    except (OSError, ValidationError):  # a validation message may quote an id
        raise DamagedReference(f"its {REFERENCE_FILE} is missing or not valid") from None
    name, version = benchmark.info.name, benchmark.info.version
    if (reference.benchmark, reference.benchmark_version) != (name, version):
        found = f"{reference.benchmark!r} v{reference.benchmark_version}"
        raise DamagedReference(f"its {REFERENCE_FILE} is of {found}, not {name!r} v{version}")
    check_reference(reference)
    return reference
