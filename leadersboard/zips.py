"""The one rule for where a zip entry may land: inside the extraction root, and never as a link.

Used by the runner for submitted zips and by benchmark registration for benchmark archives.
"""

from __future__ import annotations

import stat
import zipfile
from pathlib import Path, PurePosixPath

__all__ = ["UnsafeEntry", "member_target"]


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
