"""Safe extraction of submitted zips: regular files inside the working directory, nothing else."""

from __future__ import annotations

import os
import stat
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from gpu_runner import workspace
from gpu_runner.workspace import DamagedArchive, UnsafeArchive, extract_zip


def _zip(path: Path, entries: dict[str | zipfile.ZipInfo, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return path


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.fixture
def dest(tmp_path: Path) -> Path:
    (tmp_path / "dest").mkdir()
    (tmp_path / "outside").mkdir()
    return tmp_path / "dest"


def _outside(tmp_path: Path) -> set[str]:
    """Everything under tmp_path but the destination."""
    return {p for p in _tree(tmp_path) if p != "dest" and not p.startswith("dest" + os.sep)}


def test_a_normal_zip_is_extracted_with_nested_directories(tmp_path: Path, dest: Path) -> None:
    archive = _zip(
        tmp_path / "data.zip",
        {"README.txt": b"hello", "data/train/good/000.png": b"\x89PNG" * 10, "data/test/": b"", "a/b/c/d.txt": b"deep"},
    )
    extract_zip(archive, dest)
    assert (dest / "README.txt").read_bytes() == b"hello"
    assert (dest / "data/train/good/000.png").read_bytes() == b"\x89PNG" * 10
    assert (dest / "data/test").is_dir()
    assert (dest / "a/b/c/d.txt").read_text() == "deep"
    assert _outside(tmp_path) == {"outside", "data.zip"}


def _symlink(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info


OUTSIDE = "would be written outside"


@pytest.mark.parametrize(
    ("hostile", "reason"),
    [
        pytest.param(lambda tmp: "../outside/evil", OUTSIDE, id="parent"),
        pytest.param(lambda tmp: "ok/../../outside/evil", OUTSIDE, id="nested-parent"),
        pytest.param(lambda tmp: "..\\outside\\evil", OUTSIDE, id="backslash"),
        pytest.param(lambda tmp: str(tmp / "outside" / "evil"), OUTSIDE, id="absolute-into-tmp"),
        pytest.param(lambda tmp: "/etc/leadersboard-evil", OUTSIDE, id="absolute-etc"),
        pytest.param(lambda tmp: _symlink("link"), "symbolic link", id="symlink"),
    ],
)
def test_hostile_entries_are_refused(
    tmp_path: Path, dest: Path, hostile: Callable[[Path], str | zipfile.ZipInfo], reason: str
) -> None:
    entry = hostile(tmp_path)
    target = str(tmp_path / "outside") if isinstance(entry, zipfile.ZipInfo) else "pwned"
    archive = _zip(tmp_path / "evil.zip", {"fine.txt": b"fine", entry: target.encode()})
    with zipfile.ZipFile(archive) as zf:
        assert zf.namelist()[1] == (entry.filename if isinstance(entry, zipfile.ZipInfo) else entry)
    before = _outside(tmp_path)
    with pytest.raises(UnsafeArchive, match=reason):
        extract_zip(archive, dest)
    assert _outside(tmp_path) == before
    assert not Path("/etc/leadersboard-evil").exists()
    assert not any(p.is_symlink() for p in dest.rglob("*"))


def test_a_symlink_then_a_file_through_it_writes_nothing_outside(tmp_path: Path, dest: Path) -> None:
    link = _symlink("escape")
    archive = _zip(tmp_path / "evil.zip", {link: str(tmp_path / "outside").encode(), "escape/evil": b"pwned"})
    with pytest.raises(UnsafeArchive, match="symbolic link"):
        extract_zip(archive, dest)
    assert _outside(tmp_path) == {"outside", "evil.zip"}


def test_a_zip_bomb_is_refused_before_writing(tmp_path: Path, dest: Path) -> None:
    archive = tmp_path / "bomb.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf, zf.open("zeros.bin", "w") as sink:
        chunk = bytes(1024 * 1024)
        for _ in range(200):
            sink.write(chunk)
    assert archive.stat().st_size * workspace.MAX_ZIP_RATIO < 200 * 1024 * 1024
    with pytest.raises(UnsafeArchive, match="would expand"):
        extract_zip(archive, dest)
    assert _tree(dest) == set()


def test_an_archive_over_the_total_size_limit_is_refused(
    tmp_path: Path, dest: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(workspace, "MAX_ZIP_TOTAL_BYTES", 1000)
    archive = _zip(tmp_path / "big.zip", {"random.bin": os.urandom(1001)})
    with pytest.raises(UnsafeArchive, match="would expand"):
        extract_zip(archive, dest)
    assert _tree(dest) == set()


def test_a_file_that_is_not_a_zip_is_refused(tmp_path: Path, dest: Path) -> None:
    archive = tmp_path / "data.zip"
    archive.write_bytes(b"this is not a zip file\n" * 10)
    with pytest.raises(DamagedArchive, match=r"dataset zip data\.zip is damaged: File is not a zip file"):
        extract_zip(archive, dest)
    assert _tree(dest) == set()
    assert _outside(tmp_path) == {"outside", "data.zip"}
