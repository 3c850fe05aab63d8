"""The bridge's checkpoint: the `tsNs` of the last filer event fully handled (published and acked).

One integer in a text file, replaced atomically so that a crash mid-write leaves the previous
value, never a torn one.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

__all__ = ["load_checkpoint", "save_checkpoint"]


def load_checkpoint(path: Path) -> int | None:
    """The saved tsNs, or None when there is none (first start) or it is unreadable."""
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        return None
    try:
        return int(text)
    except ValueError:
        return None


def save_checkpoint(path: Path, ts_ns: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.tmp")
    with tmp.open("w") as handle:
        handle.write(f"{ts_ns}\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    """Make the rename itself durable; some filesystems refuse to open a directory: best effort."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
