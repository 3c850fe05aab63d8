"""The rules a zip must pass before anything is extracted: where each entry may land (inside the extraction root,
never as a link) and how far the whole may expand.

Used by the runner for submitted zips and by benchmark registration for benchmark archives.
"""

from __future__ import annotations

import stat
import zipfile
from pathlib import Path, PurePosixPath

__all__ = ["UnsafeEntry", "expansion_problem", "member_target"]


class UnsafeEntry(ValueError):
    """A zip entry that is a link or would land outside the extraction root; the message names it."""


def member_target(root: Path, member: zipfile.ZipInfo, *, place: str) -> Path:
    """Where `member` goes under the resolved `root`; UnsafeEntry naming `place` (e.g. "the working directory")."""
    name = PurePosixPath(member.filename)
    if stat.S_ISLNK(member.external_attr >> 16):
        raise UnsafeEntry(f"zip entry {member.filename!r} is a symbolic link; links are not allowed")
    outside = UnsafeEntry(f"zip entry {member.filename!r} would be written outside {place}")
    if name.is_absolute() or ".." in name.parts or "\\" in member.filename:
        raise outside
    target = (root / name).resolve()
    if not target.is_relative_to(root):
        raise outside
    return target


def expansion_problem(name: str, members: list[zipfile.ZipInfo], *, max_bytes: int, max_ratio: float) -> str | None:
    """Why the archive `name` may not be extracted (it would expand past `max_bytes`, or `max_ratio` times its
    packed size: a zip bomb), or None."""
    total = sum(m.file_size for m in members)
    packed = max(1, sum(m.compress_size for m in members))
    if total > max_bytes or total / packed > max_ratio:
        return (
            f"{name} would expand to {total} bytes ({total / packed:.0f}x its size); "
            f"the limits are {max_bytes} bytes and {max_ratio:g}x"
        )
    return None
