"""Extracting a benchmark zip an admin registers: regular files and directories only, every one inside the
destination, within bounded size and member count.

The checks mirror gpu_runner/workspace.py's `extract_zip` (for a job's dataset zips), plus a member count:
a benchmark source is read file by file afterwards, so millions of tiny entries are refused up front.
"""

from __future__ import annotations

import shutil
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from leadersboard.zips import UnsafeEntry, expansion_problem, member_target

__all__ = ["DEFAULT_LIMITS", "BadArchive", "ZipLimits", "extract_zip"]

COPY_CHUNK_BYTES = 1024**2


class BadArchive(ValueError):
    """A zip that is unsafe (would write outside its directory, holds a link, is too large) or unreadable;
    the message says which entry and why."""


@dataclass(frozen=True)
class ZipLimits:
    max_total_bytes: int = 64 * 1024**3
    """Uncompressed bytes in all (MVTec AD is about 5 GB, VisA about 2 GB)."""
    max_members: int = 500_000
    """Entries, files and directories (VisA has about 22,000)."""
    max_ratio: float = 200.0
    """Uncompressed over compressed size: images barely compress, so a higher ratio is a zip bomb."""


DEFAULT_LIMITS = ZipLimits()


def extract_zip(archive: Path, destination: Path, limits: ZipLimits = DEFAULT_LIMITS) -> None:
    """Extract `archive` into `destination` (created if missing), or raise BadArchive before writing
    anything when an entry is a link, absolute, climbs out with `..`, or the limits are exceeded."""
    try:
        with zipfile.ZipFile(archive) as zf:
            members = zf.infolist()
            _check_limits(archive, members, limits)
            root = destination.resolve()
            targets = [(member, _safe_target(root, member)) for member in members]
            for member, target in targets:
                if member.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(member) as source, target.open("wb") as sink:
                    shutil.copyfileobj(source, sink, COPY_CHUNK_BYTES)
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as exc:
        raise BadArchive(f"{archive.name} is not a readable zip: {exc}") from exc


def _check_limits(archive: Path, members: list[zipfile.ZipInfo], limits: ZipLimits) -> None:
    if len(members) > limits.max_members:
        raise BadArchive(f"{archive.name} has {len(members)} entries; the limit is {limits.max_members}")
    problem = expansion_problem(archive.name, members, max_bytes=limits.max_total_bytes, max_ratio=limits.max_ratio)
    if problem is not None:
        raise BadArchive(problem)


def _safe_target(root: Path, member: zipfile.ZipInfo) -> Path:
    try:
        return member_target(root, member, place="the extraction directory")
    except UnsafeEntry as exc:
        raise BadArchive(str(exc)) from exc
