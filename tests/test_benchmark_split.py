"""Splitting a benchmark (leadersboard/benchmarks/split.py): the public part carries no label in any name,
directory, order, metadata or byte; the reference covers exactly its test ids, with binarized masks; the
re-encoded test images keep their pixels."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from leadersboard.benchmarks.layouts import read_benchmark
from leadersboard.benchmarks.source import BenchmarkSource, LayoutError
from leadersboard.benchmarks.split import benchmark_info, tree_sha256, write_split
from leadersboard.models.benchmarks import IMAGE_ID_PATTERN, PublicIndex, Reference

SIZE = (12, 10)
DEFECTS = ("crackzulu", "scratchyankee")
"""Defect names and stems unlikely to occur by chance in compressed bytes, so a grep for them means a leak."""


def pixels(seed: int, mode: str = "RGB") -> np.ndarray:
    shape = (SIZE[1], SIZE[0], 3) if mode == "RGB" else (SIZE[1], SIZE[0])
    return np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)


def save_png_with_metadata(path: Path, seed: int) -> None:
    """A PNG whose text chunk, EXIF and ICC profile carry its own path: what a careless copy would publish."""
    path.parent.mkdir(parents=True, exist_ok=True)
    info = PngImagePlugin.PngInfo()
    info.add_text("Source", str(path))
    exif = Image.Exif()
    exif[0x010E] = f"ImageDescription {path.stem}"
    icc = f"not a real ICC profile: {path}".encode()  # Pillow would carry it over from the image's info
    Image.fromarray(pixels(seed)).save(path, format="PNG", pnginfo=info, exif=exif.tobytes(), icc_profile=icc)


def save_jpeg_with_exif(path: Path, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    exif = Image.Exif()
    exif[0x010E] = f"ImageDescription {path.stem}"
    Image.fromarray(pixels(seed)).save(path, format="JPEG", exif=exif.tobytes(), comment=path.stem.encode())


def save_mask(path: Path, seed: int, mode: str = "L") -> None:
    """A mask with assorted nonzero values (not 0/255): the split binarizes them."""
    path.parent.mkdir(parents=True, exist_ok=True)
    values = np.zeros((SIZE[1], SIZE[0]), dtype=np.uint8)
    values[2 + seed % 3 : 6, 3:8] = [1, 7, 128, 200, 255]
    image = Image.fromarray(values)
    if mode == "RGB":  # nonzero in one channel only
        zeros = Image.fromarray(np.zeros_like(values))
        image = Image.merge("RGB", (zeros, image, zeros))
    image.save(path, format="PNG")


def source_tree(root: Path) -> tuple[Path, dict[str, Path]]:
    """Two MVTec AD categories with distinctive test stems, and every test image by stem."""
    tests: dict[str, Path] = {}
    seed = 0
    for category in ("alphacat", "betacat"):
        base = root / category
        for i in range(3):
            seed += 1
            save_png_with_metadata(base / "train" / "good" / f"train{i}.png", seed)
        for i in range(4):
            seed += 1
            path = base / "test" / "good" / f"{category}goodstem{i}.png"
            save_png_with_metadata(path, seed)
            tests[path.stem] = path
        for defect in DEFECTS:
            for i in range(3):
                seed += 1
                stem = f"{category}{defect}stem{i}"
                path = base / "test" / defect / f"{stem}.png"
                if i == 0:  # one JPEG among PNGs: the public extension must not tell it apart
                    path = path.with_suffix(".jpg")
                    save_jpeg_with_exif(path, seed)
                else:
                    save_png_with_metadata(path, seed)
                save_mask(base / "ground_truth" / defect / f"{stem}_mask.png", seed, mode="RGB" if i == 1 else "L")
                tests[stem] = path
    return root, tests


def decoded(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image)


def split(tmp_path: Path, name: str, source: BenchmarkSource) -> tuple[Path, Path]:
    public, reference = tmp_path / name / "public", tmp_path / name / "reference"
    write_split(source, public, reference, benchmark="synthetic", benchmark_version=3)
    return public, reference


@pytest.fixture
def tree(tmp_path: Path) -> tuple[BenchmarkSource, dict[str, Path]]:
    root, tests = source_tree(tmp_path / "source")
    return read_benchmark(root), tests


def test_the_public_part_shows_no_label(tmp_path: Path, tree: tuple[BenchmarkSource, dict[str, Path]]) -> None:
    source, tests = tree
    public, _ = split(tmp_path, "one", source)
    files = sorted(path for path in public.rglob("*") if path.is_file())
    index = PublicIndex.model_validate_json((public / "index.json").read_text())
    forbidden = {*tests, *DEFECTS, "ground_truth", "mask", "masks", "good"}
    for path in files:
        relative = path.relative_to(public)
        if relative.parts[1:3] == ("train", "good"):
            continue  # train images keep their names: they are all good
        assert relative == Path("index.json") or (
            relative.parts[1] == "test" and re.fullmatch(IMAGE_ID_PATTERN, relative.stem) and relative.suffix == ".png"
        ), relative
        data = path.read_bytes()
        for word in forbidden:
            assert word.encode() not in data, f"{word} in {relative}"
    for category in index.categories.values():
        assert category.test == sorted(category.test)
    test_files = [path for path in files if path.parent.name == "test"]
    assert len(test_files) == len(tests) == sum(len(c.test) for c in index.categories.values())


def test_the_public_test_images_carry_no_metadata_and_the_same_pixels(
    tmp_path: Path, tree: tuple[BenchmarkSource, dict[str, Path]]
) -> None:
    source, tests = tree
    public, _ = split(tmp_path, "one", source)
    originals = {decoded(path).tobytes(): stem for stem, path in tests.items()}
    found = set()
    for path in public.glob("*/test/*.png"):
        with Image.open(path) as image:
            assert isinstance(image, PngImagePlugin.PngImageFile)
            assert image.info == {} and not image.getexif() and image.text == {}
        found.add(originals[decoded(path).tobytes()])  # a KeyError would be a changed pixel
    assert found == set(tests)


def test_train_images_are_copied_byte_for_byte(tmp_path: Path, tree: tuple[BenchmarkSource, dict[str, Path]]) -> None:
    source, _ = tree
    public, _ = split(tmp_path, "one", source)
    index = PublicIndex.model_validate_json((public / "index.json").read_text())
    for category in source.categories:
        assert index.categories[category.name].train == ["train0.png", "train1.png", "train2.png"]
        for image in category.train:
            assert (public / category.name / "train" / "good" / image.path.name).read_bytes() == image.path.read_bytes()


def test_the_reference_covers_the_public_ids_with_labels_and_binary_masks(
    tmp_path: Path, tree: tuple[BenchmarkSource, dict[str, Path]]
) -> None:
    source, tests = tree
    public, reference_dir = split(tmp_path, "one", source)
    index = PublicIndex.model_validate_json((public / "index.json").read_text())
    reference = Reference.model_validate_json((reference_dir / "reference.json").read_text())
    assert (reference.benchmark, reference.benchmark_version) == ("synthetic", 3)
    assert reference.categories.keys() == index.categories.keys() == {"alphacat", "betacat"}
    ids = [image.id for category in reference.categories.values() for image in category.images]
    assert len(ids) == len(set(ids)) == len(tests)  # unique across the whole benchmark, not only per category
    by_pixels = {decoded(path).tobytes(): stem for stem, path in tests.items()}
    for name, category in reference.categories.items():
        assert [f"{image.id}.png" for image in category.images] == index.categories[name].test
        for image in category.images:
            stem = by_pixels[decoded(public / name / "test" / f"{image.id}.png").tobytes()]
            assert image.label == (0 if "goodstem" in stem else 1)
            assert (image.width, image.height) == SIZE
            if image.label == 0:
                assert image.mask is None
                continue
            assert image.mask == f"masks/{image.id}.png"
            defect = next(d for d in DEFECTS if d in stem)
            original = source.root / name / "ground_truth" / defect / f"{stem}_mask.png"
            with Image.open(reference_dir / image.mask) as written:
                assert written.mode == "L"
                values = np.asarray(written)
            assert set(np.unique(values)) == {0, 255}
            source_values = decoded(original)
            source_values = source_values.max(axis=2) if source_values.ndim == 3 else source_values
            assert np.array_equal(values == 255, source_values != 0)
    assert sorted(p.name for p in (reference_dir / "masks").iterdir()) == sorted(
        f"{image.id}.png" for c in reference.categories.values() for image in c.images if image.label == 1
    )


def test_two_splits_of_one_source_order_the_test_images_differently(
    tmp_path: Path, tree: tuple[BenchmarkSource, dict[str, Path]]
) -> None:
    """The listing order is the order of random ids: it follows neither the labels nor the source names."""
    source, tests = tree
    by_pixels = {decoded(path).tobytes(): stem for stem, path in tests.items()}
    orders = []
    for name in ("one", "two"):
        public, _ = split(tmp_path, name, source)
        index = PublicIndex.model_validate_json((public / "index.json").read_text())
        orders.append(
            [
                by_pixels[decoded(public / category / "test" / file).tobytes()]
                for category, listing in index.categories.items()
                for file in listing.test
            ]
        )
    assert sorted(orders[0]) == sorted(orders[1]) == sorted(tests)
    assert orders[0] != orders[1]  # 1 in 20! x 20! by chance


def test_catalogue_entry_counts_without_labels(tmp_path: Path, tree: tuple[BenchmarkSource, dict[str, Path]]) -> None:
    source, _ = tree
    public, reference = tmp_path / "p", tmp_path / "r"
    result = write_split(source, public, reference, benchmark="synthetic", benchmark_version=3)
    info = benchmark_info(source, result, description="tiny", license="CC0")
    assert (info.name, info.version, info.layout, info.license) == ("synthetic", 3, "mvtec_ad", "CC0")
    assert {name: c.model_dump() for name, c in info.categories.items()} == {
        "alphacat": {"train": 3, "test": 10, "masks": True},
        "betacat": {"train": 3, "test": 10, "masks": True},
    }
    assert (info.public_sha256, info.reference_sha256) == (tree_sha256(public), tree_sha256(reference))
    assert info.public_sha256 != info.reference_sha256


def test_tree_sha256_covers_names_and_contents(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x").write_bytes(b"1")
    first = tree_sha256(tmp_path)
    expected = hashlib.sha256(f"a/x\0{hashlib.sha256(b'1').hexdigest()}\n".encode()).hexdigest()
    assert first == expected
    (tmp_path / "a" / "x").rename(tmp_path / "a" / "y")
    assert tree_sha256(tmp_path) != first


def test_the_targets_must_be_new_and_apart(tmp_path: Path, tree: tuple[BenchmarkSource, dict[str, Path]]) -> None:
    source, _ = tree
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "old.txt").write_text("x")
    with pytest.raises(FileExistsError, match="used is not empty"):
        write_split(source, tmp_path / "used", tmp_path / "ref", benchmark="b", benchmark_version=1)
    with pytest.raises(ValueError, match="must not nest"):
        write_split(source, tmp_path / "pub", tmp_path / "pub" / "ref", benchmark="b", benchmark_version=1)


@pytest.mark.filterwarnings("ignore:Saving I mode images as PNG is deprecated")
def test_a_test_image_png_cannot_hold_losslessly_is_refused(tmp_path: Path) -> None:
    root, _ = source_tree(tmp_path / "source")
    target = next((root / "alphacat" / "test" / "good").iterdir())
    wide = np.full((SIZE[1], SIZE[0]), 70_000, dtype=np.int32)  # 32-bit grey: PNG stores 16 bits at most
    target.unlink()
    Image.fromarray(wide).save(target.with_suffix(".tif"), format="TIFF")
    source = read_benchmark(root)
    # Pillow 12 writes mode I as a 16-bit PNG (the read-back check catches it), Pillow 13 refuses to write it.
    with pytest.raises(LayoutError, match=r"alphacat/test/good/.*\.tif .*cannot be (stored losslessly|re-encoded)"):
        write_split(source, tmp_path / "pub", tmp_path / "ref", benchmark="b", benchmark_version=1)


def test_index_json_is_the_public_index(tmp_path: Path, tree: tuple[BenchmarkSource, dict[str, Path]]) -> None:
    source, _ = tree
    public, _ = split(tmp_path, "one", source)
    data = json.loads((public / "index.json").read_text())
    assert set(data) == {"version", "benchmark", "benchmark_version", "categories"}
    assert set(data["categories"]["alphacat"]) == {"train", "test"}
