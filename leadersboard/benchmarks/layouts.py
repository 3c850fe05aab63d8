"""Reading a benchmark source, a directory or a zip, in one of three layouts detected from its files.

- **VisA** (`visa`), when `split_csv/1cls.csv` exists: the csv (columns object, split, label, image, mask;
  split train/test; label normal/anomaly) lists every image; `object` is the category, `image` and `mask` are
  paths relative to the root (`<category>/Data/Images/{Normal,Anomaly}/...`, `<category>/Data/Masks/Anomaly/...`).
  Train rows must be normal. A mask is given for anomalous test rows only.
- **MVTec AD** (`mvtec_ad`), when some category directory has `ground_truth/`: every top-level directory is a
  category holding `train/good/*`, `test/good/*`, `test/<defect>/*` and
  `ground_truth/<defect>/<stem>_mask.png` for the test image `test/<defect>/<stem>.<ext>`.
- **Folder** (`folder`, like anomalib's `Folder` with the MVTec-style names): the same tree without
  `ground_truth/`: `train/good/*`, `test/good/*`, `test/<defect>/*` where every directory but `good` holds
  anomalous images, and optionally `mask/<defect>/<stem>.png` or `mask/<defect>/<stem>_mask.png`.

In the two tree layouts a category directory holds only `train/`, `test/` and its mask directory, `train/`
only `good/`, and image directories only images (IMAGE_SUFFIXES); every mask file must belong to a test image.
Hidden files and `__MACOSX/` are skipped everywhere; other top-level files (a licence, a readme) are ignored.
When nothing fits at the root and the root holds a single directory, that directory is tried (a zip of a
folder). Every mask is binarized later, nonzero -> defect (leadersboard/benchmarks/split.py).
"""

from __future__ import annotations

import csv
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Literal

from leadersboard.benchmarks.archive import DEFAULT_LIMITS, ZipLimits, extract_zip
from leadersboard.benchmarks.source import (
    IMAGE_SUFFIXES,
    BenchmarkSource,
    LabelledImage,
    LayoutError,
    SourceCategory,
    SourceImage,
    check_category,
    image_size,
    is_ignored,
    listing,
)
from leadersboard.models.benchmarks import Layout

__all__ = ["VISA_COLUMNS", "VISA_CSV", "detect_layout", "open_benchmark", "read_benchmark"]

VISA_CSV = "split_csv/1cls.csv"
VISA_COLUMNS = ("object", "split", "label", "image", "mask")
GOOD = "good"


@dataclass(frozen=True)
class _Tree:
    """What tells the two tree layouts apart: where the masks are and how they are named."""

    layout: Layout
    mask_dir: str
    mask_names: tuple[str, ...]
    """Candidate mask file names for a test image's stem; at most one may exist."""


MVTEC_AD = _Tree("mvtec_ad", "ground_truth", ("{stem}_mask.png",))
FOLDER = _Tree("folder", "mask", ("{stem}.png", "{stem}_mask.png"))
EXPECTED = (
    f"expected {VISA_CSV} (VisA), or category directories each holding train/good/ and test/ "
    "(MVTec AD with ground_truth/, or the folder layout with an optional mask/)"
)


@contextmanager
def open_benchmark(
    path: Path, *, limits: ZipLimits = DEFAULT_LIMITS, temp_dir: Path | None = None
) -> Iterator[BenchmarkSource]:
    """The source at `path`, a directory or a zip (extracted safely into a temporary directory under
    `temp_dir`, removed on exit). Raises LayoutError, or BadArchive for an unsafe or unreadable zip."""
    if path.is_dir():
        yield read_benchmark(path)
        return
    if not path.is_file():
        raise LayoutError(f"{path} does not exist")
    if not zipfile.is_zipfile(path):
        raise LayoutError(f"{path} is neither a directory nor a zip")
    with tempfile.TemporaryDirectory(prefix="benchmark-", dir=temp_dir) as tmp:
        extract_zip(path, Path(tmp), limits)
        yield read_benchmark(Path(tmp))


def read_benchmark(root: Path) -> BenchmarkSource:
    """Detect the layout of the directory `root` (or of its single subdirectory) and read it, checked."""
    root, layout = _locate(root)
    if layout == "visa":
        categories = _read_visa(root)
    else:
        tree = MVTEC_AD if layout == MVTEC_AD.layout else FOLDER
        categories = [_read_tree_category(directory, root, tree) for directory in _subdirs(root)]
    for category in categories:
        check_category(category, root)
    return BenchmarkSource(layout=layout, root=root, categories=tuple(sorted(categories, key=lambda c: c.name)))


def _locate(root: Path) -> tuple[Path, Layout]:
    """The directory the layout fits, `root` or its only subdirectory (a zip of a folder), and the layout."""
    try:
        return root, detect_layout(root)
    except LayoutError as at_root:
        inner = [entry for entry in root.iterdir() if not is_ignored(entry)]
        if len(inner) == 1 and inner[0].is_dir():
            with suppress(LayoutError):
                return inner[0], detect_layout(inner[0])
        raise at_root from None


def detect_layout(root: Path) -> Layout:
    """Which layout `root` is in, or a LayoutError saying what was expected and what was found."""
    if (root / VISA_CSV).is_file():
        return "visa"
    categories = _subdirs(root)
    if not categories:
        found = listing([entry.name for entry in root.iterdir() if not is_ignored(entry)]) or "nothing"
        raise LayoutError(f"no benchmark layout fits: {EXPECTED}; found no directory ({found})")
    unfit = [d.name for d in categories if not (d / "train" / GOOD).is_dir() or not (d / "test").is_dir()]
    if unfit:
        raise LayoutError(
            f"no benchmark layout fits: {EXPECTED}; these directories lack train/good/ or test/: {listing(unfit)}"
        )
    return MVTEC_AD.layout if any((d / MVTEC_AD.mask_dir).is_dir() for d in categories) else FOLDER.layout


def _subdirs(directory: Path) -> list[Path]:
    return sorted(entry for entry in directory.iterdir() if entry.is_dir() and not is_ignored(entry))


def _images(directory: Path, root: Path) -> list[Path]:
    """The images in `directory`, sorted; anything else there (but hidden files) is an error."""
    entries = sorted(entry for entry in directory.iterdir() if not is_ignored(entry))
    others = [entry.name for entry in entries if entry.is_dir() or entry.suffix.lower() not in IMAGE_SUFFIXES]
    if others:
        raise LayoutError(
            f"{directory.relative_to(root)}/ holds {listing(others)}: only image files "
            f"({', '.join(sorted(IMAGE_SUFFIXES))}) belong there"
        )
    return entries


def _source_image(path: Path, root: Path) -> SourceImage:
    width, height = image_size(path, root)
    return SourceImage(path=path, width=width, height=height)


def _labelled(path: Path, root: Path, label: Literal[0, 1], defect: str, mask: Path | None) -> LabelledImage:
    width, height = image_size(path, root)
    return LabelledImage(path=path, width=width, height=height, label=label, defect=defect, mask=mask)


def _read_tree_category(directory: Path, root: Path, tree: _Tree) -> SourceCategory:
    where = f"{tree.layout} layout, category {directory.name!r}"
    unexpected = [d.name for d in _subdirs(directory) if d.name not in {"train", "test", tree.mask_dir}]
    if unexpected:
        raise LayoutError(
            f"{where}: unexpected directory {listing(unexpected)}; expected train/, test/ and {tree.mask_dir}/"
        )
    unexpected = [d.name for d in _subdirs(directory / "train") if d.name != GOOD]
    if unexpected:
        raise LayoutError(f"{where}: train/ holds {listing(unexpected)}; it may hold only good/ (train is all good)")
    loose = [f.name for f in (directory / "test").iterdir() if f.is_file() and not is_ignored(f)]
    if loose:
        raise LayoutError(
            f"{where}: files directly in test/ ({listing(loose)}); put them in test/good/ or test/<defect>/"
        )
    if not (directory / "test" / GOOD).is_dir():
        found = listing([d.name for d in _subdirs(directory / "test")]) or "nothing"
        raise LayoutError(
            f"{where}: test/ has no good/ (found {found}); good test images go in test/good/, "
            "every other directory of test/ is anomalous"
        )
    train = [_source_image(path, root) for path in _images(directory / "train" / GOOD, root)]
    test: list[LabelledImage] = []
    used_masks: set[Path] = set()
    for defect_dir in _subdirs(directory / "test"):
        for path in _images(defect_dir, root):
            if defect_dir.name == GOOD:
                test.append(_labelled(path, root, 0, GOOD, None))
                continue
            mask = _tree_mask(directory / tree.mask_dir / defect_dir.name, path.stem, tree, root)
            if mask is not None:
                used_masks.add(mask)
            test.append(_labelled(path, root, 1, defect_dir.name, mask))
    _check_orphan_masks(directory / tree.mask_dir, used_masks, tree, root)
    return SourceCategory(name=directory.name, train=tuple(train), test=tuple(test))


def _tree_mask(mask_dir: Path, stem: str, tree: _Tree, root: Path) -> Path | None:
    found = [mask_dir / name.format(stem=stem) for name in tree.mask_names]
    found = [path for path in found if path.is_file()]
    if len(found) > 1:
        raise LayoutError(f"two masks for one image: {listing([str(p.relative_to(root)) for p in found])}")
    return found[0] if found else None


def _check_orphan_masks(mask_dir: Path, used: set[Path], tree: _Tree, root: Path) -> None:
    """Mask files that belong to no test image: a misnamed mask would otherwise drop pixel metrics silently."""
    if not mask_dir.is_dir():
        return
    files = [path for path in mask_dir.rglob("*") if path.is_file()]
    visible = [path for path in files if not any(part.startswith(".") for part in path.relative_to(mask_dir).parts)]
    orphans = [str(path.relative_to(root)) for path in visible if path not in used]
    if orphans:
        names = " or ".join(name.format(stem="<stem>") for name in tree.mask_names)
        raise LayoutError(
            f"{len(orphans)} mask files belong to no defective test image ({listing(orphans)}); "
            f"the mask of test/<defect>/<stem>.<ext> is {tree.mask_dir}/<defect>/{names}"
        )


def _read_visa(root: Path) -> list[SourceCategory]:
    with (root / VISA_CSV).open(newline="", encoding="utf-8") as stream:
        reader = csv.DictReader(stream)
        missing = [column for column in VISA_COLUMNS if column not in (reader.fieldnames or [])]
        if missing:
            raise LayoutError(
                f"{VISA_CSV} lacks the columns {', '.join(missing)}: expected {','.join(VISA_COLUMNS)}, "
                f"found {','.join(reader.fieldnames or []) or 'no header'}"
            )
        rows = list(enumerate(reader, start=2))
    train: dict[str, list[SourceImage]] = {}
    test: dict[str, list[LabelledImage]] = {}
    seen: dict[Path, int] = {}
    for line, row in rows:
        where = f"{VISA_CSV} line {line}"
        image = _visa_path(root, row["image"], where)
        if image in seen:
            raise LayoutError(f"{where}: {row['image']} is listed again (first on line {seen[image]})")
        seen[image] = line
        split, label, mask = row["split"], row["label"], (row["mask"] or "").strip()
        if label not in ("normal", "anomaly"):
            raise LayoutError(f"{where}: label {label!r} is neither normal nor anomaly")
        if split == "train":
            if label != "normal":
                raise LayoutError(f"{where}: a train image labelled {label!r}; train images must be normal")
            train.setdefault(row["object"], []).append(_source_image(image, root))
        elif split == "test":
            if label == "normal" and mask:
                raise LayoutError(f"{where}: a normal test image with a mask ({mask})")
            mask_path = _visa_path(root, mask, where) if mask else None
            labelled = _labelled(image, root, 1 if label == "anomaly" else 0, label, mask_path)
            test.setdefault(row["object"], []).append(labelled)
        else:
            raise LayoutError(f"{where}: split {split!r} is neither train nor test")
    names = sorted(set(train) | set(test))
    return [SourceCategory(name, tuple(train.get(name, [])), tuple(test.get(name, []))) for name in names]


def _visa_path(root: Path, value: str, where: str) -> Path:
    """A csv path: relative, inside the root, an existing file."""
    relative = PurePosixPath(value.strip())
    if not value.strip() or relative.is_absolute() or ".." in relative.parts or "\\" in value:
        raise LayoutError(f"{where}: {value!r} is not a relative path inside the benchmark")
    path = root.joinpath(*relative.parts)
    if not path.is_file():
        raise LayoutError(f"{where}: {relative} does not exist")
    return path
