"""Uploaded zips extracted once per content hash into a runner-side cache, shared read-only by the jobs.

`<cache>/<sha256>/tree/` holds one zip's safe extraction. A job sees each top-level entry of it in its working
directory (bind-mounted read-only in the sandbox, symlinked when unsandboxed), at the very paths an extraction
into the working directory would have given: `pcb1.zip` -> `pcb1/Data/Images/...`. Extraction happens in a
staging directory renamed into place, so a half-extracted tree is never used and two runners sharing the cache
cannot collide. Entries are never evicted automatically (docs/sandbox.md says how to clean the cache).
A benchmark's public part is cached the same way, by its zip's sha256 (gpu_runner/benchmark.py).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["CachedDataset", "DatasetCache", "Extractor", "file_sha256"]

Extractor = Callable[[Path, Path], None]
"""extract(archive, destination): the safe extraction (`workspace.extract_zip`)."""


def file_sha256(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


@dataclass(frozen=True)
class CachedDataset:
    archive: str
    """The zip's path in the submission."""
    sha256: str
    tree: Path
    hit: bool
    """True when the tree was already there (nothing was extracted for this job)."""

    def entries(self) -> list[Path]:
        return sorted(self.tree.iterdir())


class DatasetCache:
    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def tree(self, sha256: str) -> Path:
        return self.root / sha256 / "tree"

    def cached(self, sha256: str, *, name: str) -> CachedDataset | None:
        """The tree of the zip whose content hash is `sha256` if it is extracted already (a hit), else None."""
        if not self.tree(sha256).is_dir():
            return None
        os.utime(self.root / sha256)  # last use, for whoever cleans the cache
        return CachedDataset(name, sha256, self.tree(sha256), hit=True)

    def ensure(self, archive: Path, sha256: str, *, name: str, extract: Extractor) -> CachedDataset:
        """The extracted tree of `archive` (whose content hash is `sha256`), extracting it only if needed."""
        final = self.root / sha256
        hit = self.cached(sha256, name=name)
        if hit is not None:
            return hit
        staging = Path(tempfile.mkdtemp(prefix=f".staging-{sha256[:12]}-", dir=self.root))
        try:
            (staging / "tree").mkdir()
            extract(archive, staging / "tree")
            _readable_by_all(staging)  # jobs run as another uid, whatever the runner's umask
            try:
                staging.rename(final)
            except OSError:
                if not self.tree(sha256).is_dir():  # not a concurrent twin: a real failure
                    raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return CachedDataset(name, sha256, self.tree(sha256), hit=False)


def _readable_by_all(root: Path) -> None:
    for directory, _, files in os.walk(root):
        os.chmod(directory, 0o755)
        for name in files:
            os.chmod(os.path.join(directory, name), 0o644)
