"""Every way a zip can be damaged ends as `dataset zip NAME is damaged: <what>`, never as an internal error.

The variants are built byte by byte from a good zip, the way a broken upload or a broken disk makes them, and
go through `extract_zip` (the one place zips are read) and through the dataset cache, which calls it.
The same reason through the whole stack is in tests/test_poison_jobs.py.
"""

from __future__ import annotations

import io
import random
import struct
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from gpu_runner.datasets import DatasetCache, file_sha256
from gpu_runner.workspace import DamagedArchive, extract_zip

CONTENT = random.Random(11).randbytes(12_000)
"""Incompressible: the zips stay well within the expansion ratio limit."""
NAME = "pcb1/Data/Images/Normal/a.txt"
HEADER = 30 + len(NAME)
"""Where the first entry's data starts: the local header is 30 bytes and the name."""


def good_zip(method: int = zipfile.ZIP_DEFLATED) -> bytearray:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", method) as archive:
        archive.writestr(NAME, CONTENT)
        archive.writestr("pcb1/Data/Images/Normal/b.txt", CONTENT[::-1])
    return bytearray(buffer.getvalue())


def claims_more_than_it_holds() -> bytearray:
    """The central directory says the first (stored) entry is 1 MB; the file holds 24 KB in all."""
    data = good_zip(zipfile.ZIP_STORED)
    directory = data.find(b"PK\x01\x02")
    struct.pack_into("<II", data, directory + 20, 10**6, 10**6)  # compressed size, size
    return data


def truncated() -> bytearray:
    return good_zip()[: len(good_zip()) // 2]


def bad_crc() -> bytearray:
    data = good_zip(zipfile.ZIP_STORED)
    data[HEADER + 3] ^= 0x01  # one flipped bit in the stored content
    return data


def corrupt_deflate() -> bytearray:
    data = good_zip()
    data[HEADER] = 0xFF  # the first deflate block's header: "last block", of the reserved type 3
    return data


def bad_local_header() -> bytearray:
    data = good_zip()
    data[0:4] = b"XXXX"
    return data


def corrupt_lzma() -> bytearray:
    data = good_zip(zipfile.ZIP_LZMA)
    data[HEADER + 10 : HEADER + 20] = b"\x00" * 10
    return data


def corrupt_bzip2() -> bytearray:
    data = good_zip(zipfile.ZIP_BZIP2)
    data[HEADER + 10 : HEADER + 20] = b"\x00" * 10
    return data


def unknown_method() -> bytearray:
    data = good_zip()
    struct.pack_into("<H", data, data.find(b"PK\x01\x02") + 10, 99)  # AES and friends
    return data


VARIANTS: dict[str, tuple[Callable[[], bytearray], str]] = {
    "an entry claiming more bytes than the file holds (EOFError)": (
        claims_more_than_it_holds,
        f"entry '{NAME}': the file ends before the 1000000 bytes it declares",
    ),
    "a truncated file": (truncated, "File is not a zip file"),
    "a bad CRC-32": (bad_crc, f"entry '{NAME}': Bad CRC-32 for file '{NAME}'"),
    "a corrupt deflate stream (zlib.error)": (corrupt_deflate, f"entry '{NAME}': corrupt compressed data (Error -3"),
    "a bad local header": (bad_local_header, f"entry '{NAME}': Bad magic number for file header"),
    "corrupt LZMA data": (corrupt_lzma, f"entry '{NAME}': corrupt compressed data (Corrupt input data"),
    "corrupt bzip2 data": (corrupt_bzip2, f"entry '{NAME}': corrupt compressed data (Invalid data stream"),
    "an unknown compression method": (unknown_method, f"entry '{NAME}': unsupported compression method 99"),
    "an empty file": (bytearray, "File is not a zip file"),
}


@pytest.mark.parametrize("variant", VARIANTS.values(), ids=list(VARIANTS))
def test_a_damaged_zip_is_named_with_what_is_wrong(
    tmp_path: Path, variant: tuple[Callable[[], bytearray], str]
) -> None:
    make, what = variant
    archive = tmp_path / "pcb1.zip"
    archive.write_bytes(make())
    (tmp_path / "dest").mkdir()
    with pytest.raises(DamagedArchive) as caught:
        extract_zip(archive, tmp_path / "dest")
    assert str(caught.value).startswith(f"dataset zip pcb1.zip is damaged: {what}")


@pytest.mark.parametrize("variant", VARIANTS.values(), ids=list(VARIANTS))
def test_the_dataset_cache_keeps_nothing_of_a_damaged_zip(
    tmp_path: Path, variant: tuple[Callable[[], bytearray], str]
) -> None:
    make, _ = variant
    archive = tmp_path / "pcb1.zip"
    archive.write_bytes(make())
    cache = DatasetCache(tmp_path / "cache")
    with pytest.raises(DamagedArchive, match=r"dataset zip pcb1\.zip is damaged"):
        cache.ensure(archive, file_sha256(archive), name="pcb1.zip", extract=extract_zip)
    assert list(cache.root.iterdir()) == [], "a half-extracted tree was left for the next job"


def test_a_good_zip_still_extracts(tmp_path: Path) -> None:
    archive = tmp_path / "pcb1.zip"
    archive.write_bytes(good_zip())
    extract_zip(archive, tmp_path)
    assert (tmp_path / NAME).read_bytes() == CONTENT
