"""Packing a written split into the two zips the platform stores, and keeping them until they are uploaded.

    public.zip      the public tree at the zip root: `<category>/train/good/*`, `<category>/test/<id>.png`, `index.json`
    reference.zip   `reference.json` and `masks/<id>.png`

A zip is deterministic: its members in path order, each stored (images are compressed already) with a fixed
timestamp and mode, so the same tree always packs to the same bytes and the same sha256.

A split itself is not reproducible (its test ids are random, split.py), so resuming an interrupted `benchmark
add` needs the very zips of the first run: they are staged in the client's cache (`staging_dir`, keyed by the
benchmark's name and the source's paths, sizes and modification times) until the version is ready. The catalogue
resumes an upload whose declared sha256s equal those of its `uploading` record.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from leadersboard.benchmarks.layouts import open_benchmark
from leadersboard.benchmarks.source import BenchmarkSource
from leadersboard.benchmarks.split import INDEX_FILE, REFERENCE_FILE, Split, benchmark_info, tree_sha256, write_split
from leadersboard.models.api import BenchmarkPart, CreateBenchmarkRequest
from leadersboard.models.base import StrictModel
from leadersboard.models.benchmarks import BenchmarkInfo

__all__ = [
    "PUBLIC_ZIP",
    "REFERENCE_ZIP",
    "About",
    "PackedBenchmark",
    "Stager",
    "pack",
    "source_fingerprint",
    "staged",
    "staging_dir",
]

PUBLIC_ZIP = "public.zip"
REFERENCE_ZIP = "reference.zip"
STATE_FILE = "packed.json"
ZIP_TIME = (1980, 1, 1, 0, 0, 0)
"""The earliest time a zip can hold: every member carries it, so a tree's zip does not depend on when it was made."""
FILE_MODE = 0o644
COPY_CHUNK_BYTES = 1024**2


def pack(root: Path, target: Path) -> BenchmarkPart:
    """Zip every file under `root` (paths relative to it) into `target`, deterministically; its size and sha256."""
    files = sorted((path.relative_to(root).as_posix(), path) for path in root.rglob("*") if path.is_file())
    with zipfile.ZipFile(target, "w", zipfile.ZIP_STORED) as archive:
        for name, path in files:
            member = zipfile.ZipInfo(name, date_time=ZIP_TIME)
            member.create_system = 3  # unix, whatever the platform: the mode below is read as unix mode bits
            member.external_attr = (stat.S_IFREG | FILE_MODE) << 16
            member.file_size = path.stat().st_size  # a member over 4 GiB gets its zip64 header up front
            with path.open("rb") as source, archive.open(member, "w") as sink:
                shutil.copyfileobj(source, sink, COPY_CHUNK_BYTES)
    with target.open("rb") as stream:
        digest = hashlib.file_digest(stream, "sha256").hexdigest()
    return BenchmarkPart(size=target.stat().st_size, sha256=digest)


class About(StrictModel):
    """What the admin says of a benchmark when registering it (the rest comes from the source)."""

    description: str = ""
    license: str = ""
    test_labels_public: bool = True


class PackedBenchmark(StrictModel):
    """A benchmark version packed and staged in `directory` (its zips and this state), ready to register."""

    info: BenchmarkInfo
    public: BenchmarkPart
    reference: BenchmarkPart

    def request(self, about: About) -> CreateBenchmarkRequest:
        info = self.info
        return CreateBenchmarkRequest.model_validate(
            {
                **info.model_dump(include={"name", "version", "layout", "public_sha256", "reference_sha256"}),
                **about.model_dump(),
                "categories": {name: c.model_dump() for name, c in info.categories.items()},
                "public": self.public,
                "reference": self.reference,
            }
        )


def staged(directory: Path) -> PackedBenchmark | None:
    """The benchmark staged in `directory` by an earlier run, or None (nothing, or an unfinished packing)."""
    try:
        packed = PackedBenchmark.model_validate_json((directory / STATE_FILE).read_bytes())
    except (OSError, ValueError):
        return None
    sizes = [(directory / PUBLIC_ZIP, packed.public.size), (directory / REFERENCE_ZIP, packed.reference.size)]
    return packed if all(path.is_file() and path.stat().st_size == size for path, size in sizes) else None


def staging_dir(cache: Path, name: str, source: Path) -> Path:
    """Where the zips of `name` packed from `source` are kept until the version is ready."""
    return cache / "benchmarks" / f"{name}-{source_fingerprint(source)[:24]}"


def source_fingerprint(path: Path) -> str:
    """A digest of the source as it stands on disk: its resolved path and each file's path, size and mtime
    (no content is read, so checking a 5 GB source costs a directory walk)."""
    digest = hashlib.sha256(str(path.resolve()).encode())
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for file in files:
        info = file.stat()
        digest.update(f"\0{file.relative_to(path).as_posix()}\0{info.st_size}\0{info.st_mtime_ns}".encode())
    return digest.hexdigest()


@dataclass
class Stager:
    """A source split once into a temporary directory and packed into the staging directory, for one version
    after another (only `index.json` and `reference.json` name the version: a new one rewrites just them)."""

    source: BenchmarkSource
    split: Split
    public_dir: Path
    reference_dir: Path
    staging: Path

    @classmethod
    @contextmanager
    def open(cls, path: Path, staging: Path, *, name: str, version: int, work_dir: Path) -> Iterator[Stager]:
        """Read the source at `path` (LayoutError, BadArchive) and write its split for `version` under
        `work_dir` (removed on exit)."""
        with open_benchmark(path, temp_dir=work_dir) as source:
            public_dir, reference_dir = work_dir / "public", work_dir / "reference"
            try:
                split = write_split(source, public_dir, reference_dir, benchmark=name, benchmark_version=version)
                yield cls(source, split, public_dir, reference_dir, staging)
            finally:
                shutil.rmtree(public_dir, ignore_errors=True)
                shutil.rmtree(reference_dir, ignore_errors=True)

    def pack(self, version: int) -> PackedBenchmark:
        """Both zips of the split as `version`, staged (an earlier staging of this source is replaced)."""
        if version != self.split.index.benchmark_version:
            self.split = self._as_version(version)
        shutil.rmtree(self.staging, ignore_errors=True)
        self.staging.mkdir(parents=True)
        packed = PackedBenchmark(
            info=benchmark_info(self.source, self.split),
            public=pack(self.public_dir, self.staging / PUBLIC_ZIP),
            reference=pack(self.reference_dir, self.staging / REFERENCE_ZIP),
        )
        # Written last, atomically: a run stopped while packing leaves no state, and the next one packs again.
        temporary = self.staging / f"{STATE_FILE}.{os.getpid()}.tmp"
        temporary.write_text(packed.model_dump_json())
        temporary.replace(self.staging / STATE_FILE)
        return packed

    def _as_version(self, version: int) -> Split:
        index = self.split.index.model_copy(update={"benchmark_version": version})
        reference = self.split.reference.model_copy(update={"benchmark_version": version})
        (self.public_dir / INDEX_FILE).write_text(index.model_dump_json(indent=2) + "\n", encoding="utf-8")
        (self.reference_dir / REFERENCE_FILE).write_text(reference.model_dump_json(indent=2) + "\n", encoding="utf-8")
        return Split(index, reference, tree_sha256(self.public_dir), tree_sha256(self.reference_dir))
