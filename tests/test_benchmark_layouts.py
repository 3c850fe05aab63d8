"""Reading benchmark sources (leadersboard/benchmarks/layouts.py): the three layouts detected and read from
directories and zips, hostile zips refused, and every check's precise error."""

from __future__ import annotations

import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from leadersboard.benchmarks.archive import BadArchive, ZipLimits
from leadersboard.benchmarks.layouts import VISA_CSV, detect_layout, open_benchmark, read_benchmark
from leadersboard.benchmarks.source import LayoutError

REPO = Path(__file__).resolve().parent.parent
GENERATOR = REPO / "examples" / "padim-benchmark" / "make_benchmark.py"


def png(path: Path, size: tuple[int, int] = (8, 6), seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, format="PNG")
    return path


def mask(path: Path, size: tuple[int, int] = (8, 6)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.zeros((size[1], size[0]), dtype=np.uint8)
    pixels[1:3, 2:5] = 255
    Image.fromarray(pixels).save(path)
    return path


def mvtec_tree(root: Path, category: str = "bottle") -> Path:
    base = root / category
    png(base / "train" / "good" / "000.png", seed=1)
    png(base / "train" / "good" / "001.png", seed=2)
    png(base / "test" / "good" / "000.png", seed=3)
    png(base / "test" / "crack" / "000.png", seed=4)
    png(base / "test" / "scratch" / "000.png", seed=5)
    mask(base / "ground_truth" / "crack" / "000_mask.png")
    mask(base / "ground_truth" / "scratch" / "000_mask.png")
    return root


def folder_tree(root: Path, masks: bool = True) -> Path:
    base = root / "widget"
    png(base / "train" / "good" / "a.png", seed=1)
    png(base / "test" / "good" / "b.png", seed=2)
    png(base / "test" / "bad" / "c.png", seed=3)
    png(base / "test" / "bad" / "d.jpg", seed=4)
    if masks:
        mask(base / "mask" / "bad" / "c.png")
        mask(base / "mask" / "bad" / "d_mask.png")
    return root


VISA_HEADER = "object,split,label,image,mask\n"


def visa_tree(root: Path, rows: list[str] | None = None) -> Path:
    images = root / "candle" / "Data" / "Images"
    png(images / "Normal" / "0000.JPG", seed=1)
    png(images / "Normal" / "0001.JPG", seed=2)
    png(images / "Anomaly" / "000.JPG", seed=3)
    mask(root / "candle" / "Data" / "Masks" / "Anomaly" / "000.png")
    if rows is None:
        rows = [
            "candle,train,normal,candle/Data/Images/Normal/0000.JPG,",
            "candle,test,normal,candle/Data/Images/Normal/0001.JPG,",
            "candle,test,anomaly,candle/Data/Images/Anomaly/000.JPG,candle/Data/Masks/Anomaly/000.png",
        ]
    (root / "split_csv").mkdir(exist_ok=True)
    (root / VISA_CSV).write_text(VISA_HEADER + "\n".join(rows) + "\n")
    return root


def zip_dir(source: Path, archive: Path, prefix: str = "") -> Path:
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted(source.rglob("*")):
            if path.is_file():
                zf.write(path, prefix + path.relative_to(source).as_posix())
    return archive


def error_of(root: Path) -> str:
    with pytest.raises(LayoutError) as info:
        read_benchmark(root)
    return str(info.value)


# --- the three layouts ---------------------------------------------------------------------------------------


def test_mvtec_ad_layout_is_detected_and_read(tmp_path: Path) -> None:
    source = read_benchmark(mvtec_tree(tmp_path))
    assert source.layout == "mvtec_ad"
    [category] = source.categories
    assert category.name == "bottle"
    assert [image.path.name for image in category.train] == ["000.png", "001.png"]
    by_defect = {image.defect: image for image in category.test}
    assert sorted(by_defect) == ["crack", "good", "scratch"]
    assert by_defect["good"].label == 0 and by_defect["good"].mask is None
    assert by_defect["crack"].label == 1
    assert by_defect["crack"].mask == tmp_path / "bottle" / "ground_truth" / "crack" / "000_mask.png"
    assert (by_defect["crack"].width, by_defect["crack"].height) == (8, 6)
    assert category.has_masks


def test_folder_layout_with_either_mask_name(tmp_path: Path) -> None:
    source = read_benchmark(folder_tree(tmp_path))
    assert source.layout == "folder"
    masks = {image.path.name: image.mask for image in source.categories[0].test}
    assert masks == {
        "b.png": None,
        "c.png": tmp_path / "widget" / "mask" / "bad" / "c.png",
        "d.jpg": tmp_path / "widget" / "mask" / "bad" / "d_mask.png",
    }


def test_folder_layout_without_masks_has_no_pixel_metrics(tmp_path: Path) -> None:
    [category] = read_benchmark(folder_tree(tmp_path, masks=False)).categories
    assert not category.has_masks
    assert [image.label for image in category.test] == [1, 1, 0]  # bad/c, bad/d, good/b


def test_visa_layout_is_detected_and_read(tmp_path: Path) -> None:
    source = read_benchmark(visa_tree(tmp_path))
    assert source.layout == "visa"
    [category] = source.categories
    assert category.name == "candle"
    assert [image.path.name for image in category.train] == ["0000.JPG"]
    assert [(image.path.name, image.label) for image in category.test] == [("0001.JPG", 0), ("000.JPG", 1)]
    assert category.test[1].mask == tmp_path / "candle" / "Data" / "Masks" / "Anomaly" / "000.png"


def test_a_single_wrapping_directory_is_looked_into(tmp_path: Path) -> None:
    mvtec_tree(tmp_path / "mvtec_anomaly_detection")
    (tmp_path / ".DS_Store").write_bytes(b"x")
    source = read_benchmark(tmp_path)
    assert source.root == tmp_path / "mvtec_anomaly_detection"
    assert [c.name for c in source.categories] == ["bottle"]


def test_a_wrapping_directory_that_fits_nothing_reports_the_top_level(tmp_path: Path) -> None:
    png(tmp_path / "wrapper" / "images" / "x.png")
    assert "these directories lack train/good/ or test/: wrapper" in error_of(tmp_path)


def test_top_level_files_beside_categories_are_ignored(tmp_path: Path) -> None:
    mvtec_tree(tmp_path)
    (tmp_path / "license.txt").write_text("CC BY-NC-SA 4.0")
    assert detect_layout(tmp_path) == "mvtec_ad"


# --- zips ----------------------------------------------------------------------------------------------------


def test_zip_source_is_extracted_read_and_removed(tmp_path: Path) -> None:
    archive = zip_dir(visa_tree(tmp_path / "src"), tmp_path / "visa.zip", prefix="VisA/")
    temp = tmp_path / "temp"
    temp.mkdir()
    with open_benchmark(archive, temp_dir=temp) as source:
        assert source.layout == "visa"
        assert source.root.is_relative_to(temp)
        assert source.categories[0].test[1].mask is not None
    assert list(temp.iterdir()) == []


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("../evil.png", "would be written outside the extraction directory"),
        ("bottle/../../evil.png", "would be written outside the extraction directory"),
        ("/etc/evil.png", "would be written outside the extraction directory"),
        ("bottle\\..\\evil.png", "would be written outside the extraction directory"),
    ],
)
def test_zip_entries_outside_the_directory_are_refused(tmp_path: Path, name: str, reason: str) -> None:
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("bottle/train/good/000.png", b"x")
        zf.writestr(zipfile.ZipInfo(name), b"x")
    with pytest.raises(BadArchive, match=reason) as info, open_benchmark(archive, temp_dir=tmp_path):
        pass
    assert repr(name) in str(info.value)
    assert not (tmp_path / "evil.png").exists()


def test_zip_symlinks_are_refused(tmp_path: Path) -> None:
    archive = tmp_path / "link.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        link = zipfile.ZipInfo("bottle/train/good/000.png")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(link, "/etc/passwd")
    with pytest.raises(BadArchive, match="is a symbolic link"), open_benchmark(archive, temp_dir=tmp_path):
        pass


def test_zip_limits_on_members_and_size(tmp_path: Path) -> None:
    archive = zip_dir(mvtec_tree(tmp_path / "src"), tmp_path / "ok.zip")
    with (
        pytest.raises(BadArchive, match=r"has 7 entries; the limit is 6"),
        open_benchmark(archive, limits=ZipLimits(max_members=6), temp_dir=tmp_path),
    ):
        pass
    with (
        pytest.raises(BadArchive, match=r"would expand to \d+ bytes .* the limits are 100 bytes"),
        open_benchmark(archive, limits=ZipLimits(max_total_bytes=100), temp_dir=tmp_path),
    ):
        pass


def test_a_file_that_is_not_a_zip_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "data.tar"
    path.write_bytes(b"not a zip")
    with pytest.raises(LayoutError, match="neither a directory nor a zip"), open_benchmark(path):
        pass
    with pytest.raises(LayoutError, match="does not exist"), open_benchmark(tmp_path / "missing"):
        pass


# --- detection errors ----------------------------------------------------------------------------------------


def test_nothing_fits_says_what_was_expected_and_found(tmp_path: Path) -> None:
    (tmp_path / "readme.txt").write_text("hi")
    message = error_of(tmp_path)
    assert "expected split_csv/1cls.csv (VisA), or category directories" in message
    assert "found no directory (readme.txt)" in message


def test_directories_without_train_good_are_named(tmp_path: Path) -> None:
    mvtec_tree(tmp_path)
    png(tmp_path / "images" / "x.png")
    png(tmp_path / "more" / "train" / "x.png")
    message = error_of(tmp_path)
    assert "these directories lack train/good/ or test/: images, more" in message


# --- checks shared by the layouts ----------------------------------------------------------------------------


def test_some_defective_images_without_masks_is_refused(tmp_path: Path) -> None:
    mvtec_tree(tmp_path)
    (tmp_path / "bottle" / "ground_truth" / "scratch" / "000_mask.png").unlink()
    message = error_of(tmp_path)
    assert "category 'bottle': 1 of 2 defective test images have no mask (bottle/test/scratch/000.png)" in message


def test_a_mask_of_another_size_is_refused(tmp_path: Path) -> None:
    mvtec_tree(tmp_path)
    mask(tmp_path / "bottle" / "ground_truth" / "crack" / "000_mask.png", size=(9, 6))
    assert error_of(tmp_path) == (
        "mask bottle/ground_truth/crack/000_mask.png is 9x6 but its image bottle/test/crack/000.png is 8x6"
    )


def test_a_category_without_train_images_is_refused(tmp_path: Path) -> None:
    mvtec_tree(tmp_path)
    for path in (tmp_path / "bottle" / "train" / "good").iterdir():
        path.unlink()
    assert error_of(tmp_path) == "category 'bottle' has no train image"


def test_a_category_without_defective_test_images_is_refused(tmp_path: Path) -> None:
    root = folder_tree(tmp_path, masks=False)
    for path in (root / "widget" / "test" / "bad").iterdir():
        path.unlink()
    assert error_of(root) == "category 'widget' has no defective test image: its AUROC would be undefined"


def test_a_category_without_good_test_images_is_refused(tmp_path: Path) -> None:
    root = folder_tree(tmp_path, masks=False)
    (root / "widget" / "test" / "good" / "b.png").unlink()
    assert error_of(root) == "category 'widget' has no good test image: its AUROC would be undefined"


def test_test_without_good_directory_names_what_it_found(tmp_path: Path) -> None:
    png(tmp_path / "widget" / "train" / "good" / "a.png")
    png(tmp_path / "widget" / "test" / "normal" / "b.png")
    png(tmp_path / "widget" / "test" / "abnormal" / "c.png")
    assert "test/ has no good/ (found abnormal, normal)" in error_of(tmp_path)


def test_a_misnamed_mask_is_refused_rather_than_dropped(tmp_path: Path) -> None:
    mvtec_tree(tmp_path)
    gt = tmp_path / "bottle" / "ground_truth"
    (gt / "crack" / "000_mask.png").rename(gt / "crack" / "000.png")
    (gt / "scratch" / "000_mask.png").rename(gt / "scratch" / "000.png")
    message = error_of(tmp_path)
    assert "2 mask files belong to no defective test image" in message
    assert "bottle/ground_truth/crack/000.png" in message
    assert "the mask of test/<defect>/<stem>.<ext> is ground_truth/<defect>/<stem>_mask.png" in message


def test_two_masks_for_one_image_are_refused(tmp_path: Path) -> None:
    root = folder_tree(tmp_path)
    mask(root / "widget" / "mask" / "bad" / "c_mask.png")
    assert "two masks for one image: widget/mask/bad/c.png, widget/mask/bad/c_mask.png" in error_of(root)


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ("bottle/validation/good/x.png", "unexpected directory validation; expected train/, test/ and ground_truth/"),
        ("bottle/train/bad/x.png", "train/ holds bad; it may hold only good/"),
        ("bottle/test/x.png", "files directly in test/ (x.png)"),
        ("bottle/test/good/notes.txt", "bottle/test/good/ holds notes.txt: only image files"),
        ("bottle/test/crack/deeper/x.png", "bottle/test/crack/ holds deeper: only image files"),
    ],
)
def test_unexpected_entries_in_a_tree_layout(tmp_path: Path, extra: str, expected: str) -> None:
    mvtec_tree(tmp_path)
    png(tmp_path / extra)
    assert expected in error_of(tmp_path)


def test_an_unreadable_image_is_named(tmp_path: Path) -> None:
    mvtec_tree(tmp_path)
    (tmp_path / "bottle" / "train" / "good" / "000.png").write_bytes(b"not a png")
    assert error_of(tmp_path).startswith("bottle/train/good/000.png is not a readable image")


# --- VisA's csv ----------------------------------------------------------------------------------------------

GOOD_TRAIN = "candle,train,normal,candle/Data/Images/Normal/0000.JPG,"
GOOD_TEST = "candle,test,normal,candle/Data/Images/Normal/0001.JPG,"
BAD_TEST = "candle,test,anomaly,candle/Data/Images/Anomaly/000.JPG,candle/Data/Masks/Anomaly/000.png"


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        ([GOOD_TRAIN.replace("train,normal", "train,anomaly"), GOOD_TEST, BAD_TEST], "line 2: a train image labelled"),
        ([GOOD_TRAIN, GOOD_TEST + "candle/Data/Masks/Anomaly/000.png", BAD_TEST], "line 3: a normal test image with"),
        ([GOOD_TRAIN.replace("train", "val", 1), GOOD_TEST, BAD_TEST], "line 2: split 'val' is neither train nor test"),
        ([GOOD_TRAIN, GOOD_TEST.replace("normal", "ok", 1), BAD_TEST], "line 3: label 'ok' is neither normal nor"),
        ([GOOD_TRAIN, GOOD_TEST, BAD_TEST.replace("000.JPG", "999.JPG")], "line 4: candle/Data/Images/Anomaly/999.JPG"),
        ([GOOD_TRAIN, GOOD_TEST, BAD_TEST.replace("candle/Data/Masks", "../Masks")], "line 4: '../Masks/Anomaly/000"),
        ([GOOD_TRAIN, GOOD_TEST, BAD_TEST, GOOD_TEST], "line 5: candle/Data/Images/Normal/0001.JPG is listed again"),
        ([GOOD_TRAIN, GOOD_TEST, BAD_TEST.replace(",candle/Data/Masks/Anomaly/000.png", ",")], None),
    ],
)
def test_visa_csv_errors(tmp_path: Path, rows: list[str], expected: str | None) -> None:
    root = visa_tree(tmp_path, rows)
    if expected is None:  # an anomalous image without a mask, the only one: no pixel metrics, no error
        assert not read_benchmark(root).categories[0].has_masks
    else:
        assert f"{VISA_CSV} {expected}" in error_of(root)


def test_visa_csv_without_its_columns(tmp_path: Path) -> None:
    root = visa_tree(tmp_path)
    (root / VISA_CSV).write_text("object,split,image\ncandle,train,x.png\n")
    assert error_of(root) == (
        f"{VISA_CSV} lacks the columns label, mask: expected object,split,label,image,mask, found object,split,image"
    )


def test_visa_category_names_must_be_safe(tmp_path: Path) -> None:
    root = visa_tree(tmp_path, [row.replace("candle,", "../up,", 1) for row in (GOOD_TRAIN, GOOD_TEST, BAD_TEST)])
    assert error_of(root).startswith("category name '../up' does not match")


def test_visa_train_images_sharing_a_name_are_refused(tmp_path: Path) -> None:
    root = visa_tree(tmp_path)
    png(root / "candle" / "Data" / "Images" / "Extra" / "0000.JPG", seed=9)
    rows = [GOOD_TRAIN, GOOD_TRAIN.replace("Normal", "Extra"), GOOD_TEST, BAD_TEST]
    (root / VISA_CSV).write_text(VISA_HEADER + "\n".join(rows) + "\n")
    assert error_of(root) == "category 'candle': two train images share the file name 0000.JPG"


# --- the synthetic benchmark of examples/padim-benchmark -----------------------------------------------------


def test_the_generated_benchmark_reads_as_mvtec_ad_and_is_deterministic(tmp_path: Path) -> None:
    args = ["--categories", "2", "--train", "3", "--test-good", "2", "--test-defective", "3", "--size", "32"]
    for out in ("a", "b"):
        subprocess.run([sys.executable, str(GENERATOR), str(tmp_path / out), *args], check=True, capture_output=True)
    source = read_benchmark(tmp_path / "a")
    assert source.layout == "mvtec_ad"
    assert [(c.name, len(c.train), len(c.test), c.has_masks) for c in source.categories] == [
        ("carpet", 3, 5, True),
        ("leather", 3, 5, True),
    ]
    defects = sorted(image.defect for image in source.categories[0].test)
    assert defects == ["bright", "bright", "dark", "good", "good"]
    for image in source.categories[0].test:
        if image.mask is not None:
            values = np.asarray(Image.open(image.mask))
            assert set(np.unique(values)) == {0, 255}
    files_a = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*.png"))
    files_b = sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*.png"))
    assert files_a == files_b
    assert all((tmp_path / "a" / p).read_bytes() == (tmp_path / "b" / p).read_bytes() for p in files_a)
