"""Splitting a benchmark source into the part jobs may see and the part only the scorer reads.

Public part (mounted read-only into jobs):

    <category>/train/good/<file>      the train images, byte for byte, with their original names
    <category>/test/<id>.png          the test images under random ids, re-encoded (see below)
    index.json                        PublicIndex: the benchmark, its version, each category's sorted file names

Reference part (never mounted; read by the scorer only):

    reference.json                    Reference: per category, each test id's label, mask path and size
    masks/<id>.png                    the mask binarized to a 0/255 single-channel PNG (nonzero -> defect)

No label shows in the public part: a test image's name is a random id (`secrets`), its directory is the
category's `test/`, files are written and listed in id order (random w.r.t. labels), and its file is
re-encoded as PNG from the decoded pixels with no metadata (no text chunk, EXIF, ICC profile or original
name), and with one format for every test image (an extension that differed between good and defective images
would be a label). The re-encoding is lossless: the written pixels are read back and compared. Pixels are
stored as decoded: an EXIF orientation is not applied (neither does anomalib when it reads the train images).
"""

from __future__ import annotations

import hashlib
import secrets
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from PIL import Image

from leadersboard.benchmarks.source import BenchmarkSource, LabelledImage, LayoutError, SourceCategory
from leadersboard.models.benchmarks import (
    BenchmarkInfo,
    CategorySummary,
    PublicCategory,
    PublicIndex,
    Reference,
    ReferenceCategory,
    ReferenceImage,
)

__all__ = [
    "INDEX_FILE",
    "REFERENCE_FILE",
    "Split",
    "benchmark_info",
    "binarize_mask",
    "tree_sha256",
    "write_split",
]

INDEX_FILE = "index.json"
REFERENCE_FILE = "reference.json"
MASKS_DIR = "masks"
ID_BYTES = 8
"""16 hex digits (IMAGE_ID_PATTERN): a collision among a benchmark's ids is a 1-in-10^13 event, retried."""
ID_ATTEMPTS = 8


@dataclass(frozen=True)
class Split:
    index: PublicIndex
    reference: Reference
    public_sha256: str
    reference_sha256: str


def write_split(
    source: BenchmarkSource, public_dir: Path, reference_dir: Path, *, benchmark: str, benchmark_version: int
) -> Split:
    """Write the public and the reference part of `source` into two new (or empty) directories, neither inside
    the other. Raises LayoutError for a test image that cannot be re-encoded losslessly."""
    _check_targets(public_dir, reference_dir)
    new_id = _id_source()
    public: dict[str, PublicCategory] = {}
    reference: dict[str, ReferenceCategory] = {}
    for category in source.categories:
        public[category.name], reference[category.name] = _write_category(
            category, source.root, public_dir, reference_dir, new_id
        )
    index = PublicIndex(benchmark=benchmark, benchmark_version=benchmark_version, categories=public)
    labels = Reference(benchmark=benchmark, benchmark_version=benchmark_version, categories=reference)
    (public_dir / INDEX_FILE).write_text(index.model_dump_json(indent=2) + "\n", encoding="utf-8")
    (reference_dir / REFERENCE_FILE).write_text(labels.model_dump_json(indent=2) + "\n", encoding="utf-8")
    return Split(index, labels, public_sha256=tree_sha256(public_dir), reference_sha256=tree_sha256(reference_dir))


def benchmark_info(source: BenchmarkSource, split: Split, *, description: str = "", license: str = "") -> BenchmarkInfo:
    """The catalogue entry of a split: counts per category, no label information (CategorySummary)."""
    categories = {
        category.name: CategorySummary(train=len(category.train), test=len(category.test), masks=category.has_masks)
        for category in source.categories
    }
    return BenchmarkInfo(
        name=split.index.benchmark,
        version=split.index.benchmark_version,
        description=description,
        license=license,
        layout=source.layout,
        categories=categories,
        public_sha256=split.public_sha256,
        reference_sha256=split.reference_sha256,
    )


def tree_sha256(root: Path) -> str:
    """One digest of a directory tree: sha256 over `<relative path>\\0<file sha256>\\n` in path order."""
    digest = hashlib.sha256()
    files = sorted((path.relative_to(root).as_posix(), path) for path in root.rglob("*") if path.is_file())
    for relative, path in files:
        with path.open("rb") as stream:
            file_digest = hashlib.file_digest(stream, "sha256").hexdigest()
        digest.update(f"{relative}\0{file_digest}\n".encode())
    return digest.hexdigest()


def binarize_mask(path: Path) -> npt.NDArray[np.bool_]:
    """A boolean defect map: True where any colour channel of the mask is nonzero (VisA's and anomalib's rule).
    A palette mask is read by its colours, not its indices; an alpha channel is ignored."""
    with Image.open(path) as image:
        channels = image if image.mode in ("1", "L", "I", "I;16", "F") else image.convert("RGB")
        values = np.asarray(channels)
    return np.asarray(values.any(axis=2) if values.ndim == 3 else values != 0, dtype=np.bool_)


def _check_targets(public_dir: Path, reference_dir: Path) -> None:
    public, reference = public_dir.resolve(), reference_dir.resolve()
    if public.is_relative_to(reference) or reference.is_relative_to(public):
        raise ValueError(f"the public part ({public}) and the reference part ({reference}) must not nest")
    for directory in (public_dir, reference_dir):
        if directory.exists() and any(directory.iterdir()):
            raise FileExistsError(f"{directory} is not empty: a split is written into a new directory")
        directory.mkdir(parents=True, exist_ok=True)


def _id_source() -> Callable[[], str]:
    """A generator of random ids, unique among those it gave."""
    used: set[str] = set()

    def new_id() -> str:
        for _ in range(ID_ATTEMPTS):
            candidate = secrets.token_hex(ID_BYTES)
            if candidate not in used:
                used.add(candidate)
                return candidate
        raise RuntimeError(f"{ID_ATTEMPTS} random ids in a row collided: the random source is broken")

    return new_id


def _write_category(
    category: SourceCategory, root: Path, public_dir: Path, reference_dir: Path, new_id: Callable[[], str]
) -> tuple[PublicCategory, ReferenceCategory]:
    train_dir = public_dir / category.name / "train" / "good"
    test_dir = public_dir / category.name / "test"
    train_dir.mkdir(parents=True)
    test_dir.mkdir()
    (reference_dir / MASKS_DIR).mkdir(exist_ok=True)
    for image in category.train:
        shutil.copyfile(image.path, train_dir / image.path.name)
    # Sorting by the random id is what makes the writing and listing order independent of the labels.
    assigned: list[tuple[str, LabelledImage]] = sorted(((new_id(), image) for image in category.test), key=_first)
    references = []
    for image_id, image in assigned:
        _write_clean_png(image.path, test_dir / f"{image_id}.png", root)
        mask = None
        if image.mask is not None:
            mask = f"{MASKS_DIR}/{image_id}.png"
            Image.fromarray(binarize_mask(image.mask).astype(np.uint8) * 255).save(reference_dir / mask, format="PNG")
        references.append(
            ReferenceImage(id=image_id, label=image.label, mask=mask, width=image.width, height=image.height)
        )
    public = PublicCategory(
        train=sorted(image.path.name for image in category.train),
        test=[f"{image_id}.png" for image_id, _ in assigned],
    )
    return public, ReferenceCategory(images=references)


def _first(pair: tuple[str, LabelledImage]) -> str:
    return pair[0]


def _write_clean_png(source: Path, target: Path, root: Path) -> None:
    """The decoded pixels of `source` as a PNG without metadata, checked to read back identical."""
    name = source.relative_to(root)
    try:
        with Image.open(source) as image:
            frames = getattr(image, "n_frames", 1)
            image.load()
            clean = image.copy()
        # Only the transparency of palette and grey images is pixel data; the rest (text, EXIF, ICC, dpi) goes.
        clean.info = {key: value for key, value in clean.info.items() if key == "transparency"}
        if frames == 1:
            clean.save(target, format="PNG")
    except (OSError, Image.DecompressionBombError) as exc:
        raise LayoutError(f"{name} cannot be re-encoded as PNG: {exc}") from exc
    if frames > 1:
        raise LayoutError(f"{name} has {frames} frames; a test image must have one")
    with Image.open(target) as written:
        same = written.mode == clean.mode and written.getpalette() == clean.getpalette()
        if not same or not np.array_equal(np.asarray(written), np.asarray(clean)):
            raise LayoutError(f"{name} (mode {clean.mode}) cannot be stored losslessly as PNG")
