"""A benchmark source read into memory: per category its train images and its labelled test images, each with
its path, its size and (for defective ones) its mask; and the checks every layout's reader shares.

Masks: in a category either every defective test image has a mask (pixel metrics are computed) or none does
(the category is scored on image metrics only; its reference masks are None). A category where only some
have one is refused: a forgotten mask would silently drop that image from the pixel metrics.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from PIL import Image, UnidentifiedImageError

from leadersboard.models.benchmarks import Layout

__all__ = [
    "CATEGORY_NAME_PATTERN",
    "IMAGE_SUFFIXES",
    "BenchmarkSource",
    "LabelledImage",
    "LayoutError",
    "SourceCategory",
    "SourceImage",
    "check_category",
    "image_size",
    "is_ignored",
    "listing",
]

CATEGORY_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"
"""A category names a directory of the public part and a key of the scores."""
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"})
"""Image files a layout reads (case-insensitive)."""
SHOWN_NAMES = 5
"""How many offending names an error lists before '... and N more'."""


class LayoutError(ValueError):
    """The source does not fit its layout, or fails a check; the message says what was expected and found."""


@dataclass(frozen=True)
class SourceImage:
    path: Path
    width: int
    height: int


@dataclass(frozen=True)
class LabelledImage(SourceImage):
    label: Literal[0, 1]
    """1 = anomalous."""
    defect: str
    """The source's defect type ('good' for good images): for error messages, never published."""
    mask: Path | None = None


@dataclass(frozen=True)
class SourceCategory:
    name: str
    train: tuple[SourceImage, ...]
    test: tuple[LabelledImage, ...]

    @property
    def has_masks(self) -> bool:
        """Whether pixel metrics can be computed: every defective test image has a mask (check_category)."""
        return any(image.mask is not None for image in self.test)


@dataclass(frozen=True)
class BenchmarkSource:
    layout: Layout
    root: Path
    categories: tuple[SourceCategory, ...]
    """Sorted by name."""


def is_ignored(path: Path) -> bool:
    """Hidden files and macOS's zip residue, skipped wherever a layout lists a directory."""
    return path.name.startswith(".") or path.name == "__MACOSX"


def listing(names: list[str]) -> str:
    """A few of `names`, sorted, for an error message."""
    shown = ", ".join(sorted(names)[:SHOWN_NAMES])
    more = len(names) - SHOWN_NAMES
    return f"{shown}, ... and {more} more" if more > 0 else shown


def image_size(path: Path, root: Path) -> tuple[int, int]:
    """(width, height) from the file's header; a LayoutError naming the file when Pillow cannot read it."""
    try:
        with Image.open(path) as image:
            return image.size
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as exc:
        raise LayoutError(f"{path.relative_to(root)} is not a readable image: {exc}") from exc


def check_category(category: SourceCategory, root: Path) -> None:
    """The checks every layout shares: a usable name, train images with distinct file names (they keep them in
    the public part), images in train and test, both labels in test (else AUROC is undefined),
    masks all-or-none among the defective images, and each mask the size of its image."""
    name = category.name
    if not re.fullmatch(CATEGORY_NAME_PATTERN, name):
        raise LayoutError(f"category name {name!r} does not match {CATEGORY_NAME_PATTERN}")
    if not category.train:
        raise LayoutError(f"category {name!r} has no train image")
    counts = Counter(image.path.name for image in category.train)
    twice = [file_name for file_name, count in counts.items() if count > 1]
    if twice:
        raise LayoutError(f"category {name!r}: two train images share the file name {listing(twice)}")
    for label, what in ((0, "good"), (1, "defective")):
        if not any(image.label == label for image in category.test):
            raise LayoutError(f"category {name!r} has no {what} test image: its AUROC would be undefined")
    defective = [image for image in category.test if image.label == 1]
    without = [str(image.path.relative_to(root)) for image in defective if image.mask is None]
    if 0 < len(without) < len(defective):
        raise LayoutError(
            f"category {name!r}: {len(without)} of {len(defective)} defective test images have no mask "
            f"({listing(without)}); give every defective image a mask, or none (no pixel metrics)"
        )
    for image in defective:
        if image.mask is None:
            continue
        size = image_size(image.mask, root)
        if size != (image.width, image.height):
            raise LayoutError(
                f"mask {image.mask.relative_to(root)} is {size[0]}x{size[1]} but its image "
                f"{image.path.relative_to(root)} is {image.width}x{image.height}"
            )
