"""A job's fresh working directory: its files from the store, its zips safely extracted."""

from __future__ import annotations

import shutil
import stat
import zipfile
from pathlib import Path, PurePosixPath

from leadersboard import keys
from leadersboard.models import JobRecord
from leadersboard.s3 import S3Client

__all__ = ["UnsafeArchive", "Workspace", "extract_zip", "prepare"]

MAX_ZIP_RATIO = 200
MAX_ZIP_TOTAL_BYTES = 20 * 1024**3


class UnsafeArchive(Exception):
    """A zip that would write outside its directory, or expand beyond the limits."""


class Workspace:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.work = root / "work"
        self.output = root / "output"
        self.log = root / "job.log"

    def create(self) -> Workspace:
        if self.root.exists():
            shutil.rmtree(self.root)
        self.work.mkdir(parents=True)
        self.output.mkdir()
        return self

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def prepare(workspace: Workspace, client: S3Client, bucket: str, record: JobRecord) -> list[str]:
    """Download every file and extract every zip; returns the names of the extracted zips."""
    for spec in record.files:
        target = workspace.work / spec.path
        target.parent.mkdir(parents=True, exist_ok=True)
        client.download_file(bucket, keys.file_key(record.user, record.submission_id, spec.path), str(target))
    extracted = []
    for spec in record.files:
        if spec.path.lower().endswith(".zip"):
            extract_zip(workspace.work / spec.path, workspace.work)
            extracted.append(spec.path)
    return extracted


def extract_zip(archive: Path, destination: Path) -> None:
    """Extract regular files and directories only, every one inside `destination`."""
    root = destination.resolve()
    try:
        with zipfile.ZipFile(archive) as zf:
            members = zf.infolist()
            _check_sizes(archive, members)
            for member in members:
                target = _safe_target(root, member)
                if member.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(member) as source, target.open("wb") as sink:
                    shutil.copyfileobj(source, sink, 1024 * 1024)
    except zipfile.BadZipFile as exc:
        raise UnsafeArchive(f"{archive.name} is not a valid zip file ({exc})") from exc


def _check_sizes(archive: Path, members: list[zipfile.ZipInfo]) -> None:
    total = sum(m.file_size for m in members)
    packed = max(1, sum(m.compress_size for m in members))
    if total > MAX_ZIP_TOTAL_BYTES or total / packed > MAX_ZIP_RATIO:
        raise UnsafeArchive(
            f"{archive.name} would expand to {total} bytes ({total / packed:.0f}x its size); "
            f"the limits are {MAX_ZIP_TOTAL_BYTES} bytes and {MAX_ZIP_RATIO}x"
        )


def _safe_target(root: Path, member: zipfile.ZipInfo) -> Path:
    name = PurePosixPath(member.filename)
    mode = member.external_attr >> 16
    if stat.S_ISLNK(mode):
        raise UnsafeArchive(f"zip entry {member.filename!r} is a symbolic link; links are not allowed")
    if name.is_absolute() or ".." in name.parts or "\\" in member.filename:
        raise UnsafeArchive(f"zip entry {member.filename!r} would be written outside the working directory")
    target = (root / name).resolve()
    if not target.is_relative_to(root):
        raise UnsafeArchive(f"zip entry {member.filename!r} would be written outside the working directory")
    return target
