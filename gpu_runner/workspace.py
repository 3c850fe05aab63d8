"""A job's fresh working directory: its files from the store (checked), its zips safely extracted.

Zips go through the dataset cache when there is one (gpu_runner/datasets.py): extracted once per content hash
and mounted read-only into the working directory; otherwise (or when their top-level names collide) they are
extracted into the working directory itself.
"""

from __future__ import annotations

import lzma
import shutil
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO

from gpu_runner.datasets import CachedDataset, DatasetCache, Extractor, file_sha256
from gpu_runner.sandbox import Bind
from leadersboard.models.records import JobRecord
from leadersboard.s3 import S3Client
from leadersboard.zips import UnsafeEntry, expansion_problem, member_target

__all__ = [
    "BadSubmission",
    "ChecksumMismatch",
    "DamagedArchive",
    "Prepared",
    "UnsafeArchive",
    "Workspace",
    "extract_zip",
    "is_zip",
    "link_datasets",
    "prepare",
]

MAX_ZIP_RATIO = 200
MAX_ZIP_TOTAL_BYTES = 20 * 1024**3
MAX_MOUNTED_ENTRIES = 64
SINGLE_GET_MAX_BYTES = 8 * 1024**2
COPY_CHUNK_BYTES = 1024**2
"""More top-level entries than this in the cached zips: extract into the working directory instead."""


class BadSubmission(Exception):
    """The submitted files cannot be laid out; the message is the reason shown to the user."""


class UnsafeArchive(BadSubmission):
    """A zip that would write outside its directory, or expand beyond the limits."""


class DamagedArchive(BadSubmission):
    """A zip that cannot be read to the end: truncated, a bad CRC, corrupt compressed data, a bad header."""


DAMAGE = (EOFError, zipfile.BadZipFile, zlib.error, lzma.LZMAError, NotImplementedError)
"""What the zipfile module raises, in all, on a damaged archive (EOFError: an entry claims more bytes than
the file holds; BadZipFile: a bad CRC-32, header or directory; zlib/lzma errors: corrupt compressed data)."""


class ChecksumMismatch(BadSubmission):
    """A downloaded file whose content does not match the sha256 it was declared with."""


class Workspace:
    def __init__(self, root: Path) -> None:
        self.root = root.absolute()
        self.work = self.root / "work"
        self.output = self.root / "output"
        self.tmp = self.root / "tmp"
        self.log = self.root / "job.log"

    def create(self) -> Workspace:
        if self.root.exists():
            shutil.rmtree(self.root)
        self.work.mkdir(parents=True)
        self.output.mkdir()
        self.tmp.mkdir()
        return self

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


@dataclass
class Prepared:
    mounts: list[Bind] = field(default_factory=list)
    """Cached dataset entries to show read-only in the working directory."""
    notes: list[str] = field(default_factory=list)
    """What happened, for the job's log."""


def prepare(
    workspace: Workspace,
    client: S3Client,
    bucket: str,
    record: JobRecord,
    *,
    cache: DatasetCache | None = None,
    extract: Extractor | None = None,
) -> Prepared:
    """Download and check every file, then extract every zip (through the cache when there is one), with
    `extract` (default: `extract_zip` with its default limits)."""
    extract = extract or extract_zip
    digests: dict[str, str] = {}
    for spec in record.files:
        target = workspace.work / spec.path
        target.parent.mkdir(parents=True, exist_ok=True)
        # spec.store_key: a deduplicated file comes from the user's blob, any other from files/<path>.
        key = spec.store_key(record.user, record.submission_id)
        _download(client, bucket, key, target, size=spec.size)
        if spec.sha256 is not None or is_zip(spec.path):
            digests[spec.path] = file_sha256(target)
        if spec.sha256 is not None and digests[spec.path] != spec.sha256:
            reason = (
                f"{spec.path} does not match its declared sha256: declared {spec.sha256}, "
                f"downloaded {digests[spec.path]}"
            )
            if spec.blob:
                # A blob is named by its content: this copy is corrupt, and would be reused by every
                # later submission of the same file. Removing it makes the next upload send it again.
                client.delete_object(Bucket=bucket, Key=key)
                reason += "; the corrupt stored copy was removed: submit again to upload the file anew"
            raise ChecksumMismatch(reason)
    zips = [spec.path for spec in record.files if is_zip(spec.path)]
    prepared = Prepared()
    if cache is not None and zips:
        datasets = []
        for name in zips:
            dataset = cache.ensure(workspace.work / name, digests[name], name=name, extract=extract)
            how = "dataset cache hit" if dataset.hit else "extracted into the dataset cache"
            prepared.notes.append(f"[leadersboard] {how}: {name} (sha256 {dataset.sha256[:16]})")
            datasets.append(dataset)
        clash = _clash(datasets, [spec.path for spec in record.files])
        if clash is None:
            for dataset in datasets:
                for entry in dataset.entries():
                    prepared.mounts.append(Bind(entry, workspace.work / entry.name))
                    prepared.notes.append(f"[leadersboard] {entry.name} from {dataset.archive} (read-only)")
            return prepared
        prepared.notes.append(f"[leadersboard] datasets not shared from the cache: {clash}")
    for name in zips:
        extract(workspace.work / name, workspace.work)
        prepared.notes.append(f"[leadersboard] extracted {name} into the working directory")
    return prepared


def link_datasets(mounts: list[Bind]) -> None:
    """Without a sandbox (no bind mounts): symbolic links to the cached entries (not read-only)."""
    for mount in mounts:
        mount.target.symlink_to(mount.source, target_is_directory=mount.source.is_dir())


def is_zip(path: str) -> bool:
    """A file the runner (and `leadersboard check`) extracts into the working directory."""
    return path.lower().endswith(".zip")


def _clash(datasets: list[CachedDataset], uploaded: list[str]) -> str | None:
    """Why the cached trees cannot be mounted side by side in the working directory, or None."""
    seen = {PurePosixPath(path).parts[0]: path for path in uploaded}
    count = 0
    for dataset in datasets:
        for entry in dataset.entries():
            count += 1
            if entry.name in seen:
                return f"{dataset.archive} and {seen[entry.name]} both have {entry.name!r} at the top level"
            seen[entry.name] = dataset.archive
    if count > MAX_MOUNTED_ENTRIES:
        return f"the zips have {count} top-level entries (more than {MAX_MOUNTED_ENTRIES})"
    return None


def extract_zip(
    archive: Path, destination: Path, *, max_total_bytes: int | None = None, max_ratio: float | None = None
) -> None:
    """Extract regular files and directories only, every one inside `destination`, within the size limits
    (by default MAX_ZIP_TOTAL_BYTES in all and MAX_ZIP_RATIO times the archive's compressed size)."""
    root = destination.resolve()
    try:
        zf = zipfile.ZipFile(archive)
    except DAMAGE as exc:
        raise _damaged(archive, None, exc) from exc
    with zf:
        members = zf.infolist()
        _check_sizes(
            archive,
            members,
            MAX_ZIP_TOTAL_BYTES if max_total_bytes is None else max_total_bytes,
            MAX_ZIP_RATIO if max_ratio is None else max_ratio,
        )
        for member in members:
            target = _safe_target(root, member)
            if member.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                with zf.open(member) as source, target.open("wb") as sink:
                    _copy(archive, member, source, sink)
            except DAMAGE as exc:
                raise _damaged(archive, member, exc) from exc


def _copy(archive: Path, member: zipfile.ZipInfo, source: IO[bytes], sink: IO[bytes]) -> None:
    while True:
        try:
            chunk = source.read(COPY_CHUNK_BYTES)
        except OSError as exc:  # bz2's "Invalid data stream"; a write error (disk full) is not damage
            raise _damaged(archive, member, exc) from exc
        if not chunk:
            return
        sink.write(chunk)


def _damaged(archive: Path, member: zipfile.ZipInfo | None, exc: BaseException) -> DamagedArchive:
    """`dataset zip NAME is damaged: <what>`: the one reason for every way a zip can be unreadable."""
    entry = f"entry {member.filename!r}: " if member is not None else ""
    if isinstance(exc, EOFError):
        what = f"{entry}the file ends before the {member.compress_size if member else '?'} bytes it declares"
    elif isinstance(exc, zlib.error | lzma.LZMAError | OSError):
        what = f"{entry}corrupt compressed data ({exc})"
    elif isinstance(exc, NotImplementedError):
        what = f"{entry}unsupported compression method {member.compress_type if member else '?'} ({exc})"
    else:
        what = f"{entry}{exc}"
    return DamagedArchive(
        f"dataset zip {archive.name} is damaged: {what}; the upload is likely incomplete or corrupt: "
        "check the zip locally (unzip -t) and submit it again"
    )


def _check_sizes(archive: Path, members: list[zipfile.ZipInfo], max_total: int, max_ratio: float) -> None:
    problem = expansion_problem(archive.name, members, max_bytes=max_total, max_ratio=max_ratio)
    if problem is not None:
        raise UnsafeArchive(problem)


def _safe_target(root: Path, member: zipfile.ZipInfo) -> Path:
    try:
        return member_target(root, member, place="the working directory")
    except UnsafeEntry as exc:
        raise UnsafeArchive(str(exc)) from exc


def _download(client: S3Client, bucket: str, key: str, target: Path, *, size: int) -> None:
    """One GET for a small file; the transfer manager's parallel ranged GETs only pay off for large ones."""
    if size >= SINGLE_GET_MAX_BYTES:
        client.download_file(bucket, key, str(target))
        return
    body = client.get_object(Bucket=bucket, Key=key)["Body"]
    with target.open("wb") as out:
        shutil.copyfileobj(body, out, COPY_CHUNK_BYTES)
