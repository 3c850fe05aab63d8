"""Every kind of bad predictions fails with its own precise message, and no message reveals the reference."""

from __future__ import annotations

import pickle
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from leadersboard.scoring import predictions
from leadersboard.scoring.predictions import BadPredictions
from leadersboard.scoring.score import score
from tests.scoring_fixtures import Synthetic, synthetic


@pytest.fixture
def bench(tmp_path: Path) -> Synthetic:
    return synthetic(tmp_path, good=4, defective=4, categories=2)


def ids(bench: Synthetic) -> list[str]:
    return [image.id for category in bench.reference.categories.values() for image in category.images]


def write_scores(bench: Synthetic, text: str) -> None:
    (bench.predictions / "scores.csv").write_text(text)


def rows(bench: Synthetic, image_ids: list[str]) -> str:
    return "image_id,score\n" + "".join(f"{i},0.5\n" for i in image_ids)


def map_path(bench: Synthetic, index: int = 0) -> Path:
    return bench.predictions / "maps" / f"{ids(bench)[index]}.npy"


Breakage = Callable[[Synthetic], None]
CASES: list[tuple[str, Breakage, str]] = [
    ("no scores.csv", lambda b: (b.predictions / "scores.csv").unlink(), r"predictions/scores.csv is missing"),
    ("wrong header", lambda b: write_scores(b, "id,score\n"), r"first line must be 'image_id,score', found 'id,score'"),
    ("empty file", lambda b: write_scores(b, ""), r"first line must be 'image_id,score', found nothing"),
    ("not utf-8", lambda b: (b.predictions / "scores.csv").write_bytes(b"\xff\xfe\x00"), r"is not UTF-8 text"),
    (
        "missing ids",
        lambda b: write_scores(b, rows(b, ids(b)[3:])),
        r": 3 test image ids missing, e\.g\. '[0-9a-f]{16}'",
    ),
    (
        "unknown ids",
        lambda b: write_scores(b, rows(b, [*ids(b), "feedfacefeedface", "x"])),
        r"2 ids not in the benchmark's test set, e\.g\. 'feedfacefeedface', 'x'$",
    ),
    (
        "duplicate ids",
        lambda b: write_scores(b, rows(b, [*ids(b), ids(b)[0]])),
        r"1 ids appear more than once, e\.g\. '",
    ),
    (
        "not a number",
        lambda b: write_scores(b, rows(b, ids(b)) + "abc,high\n"),
        r"line 18: score 'high' is not a number",
    ),
    (
        "not finite",
        lambda b: write_scores(b, rows(b, ids(b)).replace(",0.5\n", ",nan\n", 1)),
        r"line 2: score 'nan' is not finite",
    ),
    (
        "infinite",
        lambda b: write_scores(b, rows(b, ids(b)).replace(",0.5\n", ",-inf\n", 1)),
        r"line 2: score '-inf' is not finite",
    ),
    (
        "three fields",
        lambda b: write_scores(b, rows(b, ids(b)).replace(",0.5\n", ",0.5,1\n", 1)),
        r"line 2: expected 2 comma",
    ),
    (
        "scores.csv too large",
        lambda b: write_scores(b, "x" * (predictions.MAX_SCORES_CSV_BYTES + 1)),
        rf"scores.csv is {predictions.MAX_SCORES_CSV_BYTES + 1} bytes, over the limit of",
    ),
    (
        "map missing",
        lambda b: map_path(b, 2).unlink(),
        r"predictions/maps \(write a map for every test image, or none\): 1 test image ids missing",
    ),
    (
        "unknown map",
        lambda b: np.save(b.predictions / "maps" / "cafe.npy", np.zeros((2, 2), np.float32)),
        r"1 ids not in the benchmark's test set, e\.g\. 'cafe'",
    ),
    (
        "stray file",
        lambda b: (b.predictions / "maps" / "notes.txt").write_text("hi"),
        r"1 entries are not `<image_id>.npy` files, e\.g\. 'notes.txt'",
    ),
    (
        "3-D map",
        lambda b: np.save(map_path(b), np.zeros((1, 4, 4), np.float32)),
        r"\.npy has shape \(1, 4, 4\), expected a non-empty 2-D",
    ),
    (
        "empty map",
        lambda b: np.save(map_path(b), np.zeros((0, 4), np.float32)),
        r"has shape \(0, 4\), expected a non-empty 2-D",
    ),
    (
        "float64 map",
        lambda b: np.save(map_path(b), np.zeros((4, 4))),
        r"has dtype float64, expected float16 or float32",
    ),
    (
        "int map",
        lambda b: np.save(map_path(b), np.zeros((4, 4), np.uint8)),
        r"has dtype uint8, expected float16 or float32",
    ),
    ("nan map", lambda b: np.save(map_path(b), np.full((4, 4), np.nan, np.float32)), r"holds non-finite values"),
    ("not npy", lambda b: map_path(b).write_bytes(b"PK\x03\x04 not an array"), r"is not a loadable .npy array"),
    (
        "pickled map",
        lambda b: np.save(map_path(b), np.array([{"a": 1}], dtype=object), allow_pickle=True),
        r"is not a loadable .npy array \(ValueError\)",
    ),
    (
        "truncated map",
        lambda b: map_path(b).write_bytes(map_path(b).read_bytes()[:-8]),
        r"is not a loadable .npy array",
    ),
    (
        "raw pickle",
        lambda b: map_path(b).write_bytes(pickle.dumps(np.zeros((4, 4), np.float32))),
        r"is not a loadable .npy array",
    ),
    (
        "map too large",
        lambda b: map_path(b).write_bytes(b"\0" * (predictions.MAX_MAP_BYTES + 1)),
        rf"\.npy is {predictions.MAX_MAP_BYTES + 1} bytes, over the limit of {predictions.MAX_MAP_BYTES} bytes",
    ),
]


@pytest.mark.parametrize(("breakage", "message"), [(c[1], c[2]) for c in CASES], ids=[c[0] for c in CASES])
def test_bad_predictions_fail_precisely(bench: Synthetic, breakage: Breakage, message: str) -> None:
    breakage(bench)
    with pytest.raises(BadPredictions, match=message) as caught:
        score(bench.predictions, bench.reference, bench.reference_root, resamples=20)
    text = str(caught.value)
    assert "mask" not in text and "label" not in text and "reference" not in text
    for image in (i for c in bench.reference.categories.values() for i in c.images):
        assert image.mask is None or image.mask not in text


def test_missing_ids_quote_at_most_five(bench: Synthetic) -> None:
    write_scores(bench, rows(bench, ids(bench)[:2]))
    with pytest.raises(BadPredictions) as caught:
        score(bench.predictions, bench.reference, bench.reference_root, resamples=20)
    quoted = str(caught.value).split("e.g. ")[1]
    assert quoted.count("'") == 2 * predictions.EXAMPLES and quoted.endswith(", ...")
    assert "14 test image ids missing" in str(caught.value)


def test_missing_ids_do_not_depend_on_labels(bench: Synthetic) -> None:
    """The message for missing good images reads like the one for missing defective images."""
    category = bench.reference.categories["cat0"]
    good = next(i.id for i in category.images if i.label == 0)
    defective = next(i.id for i in category.images if i.label == 1)
    messages = []
    for dropped in (good, defective):
        write_scores(bench, rows(bench, [i for i in ids(bench) if i != dropped]))
        with pytest.raises(BadPredictions) as caught:
            score(bench.predictions, bench.reference, bench.reference_root, resamples=20)
        messages.append(str(caught.value).replace(dropped, "<id>"))
    assert messages[0] == messages[1]


def test_accepted_variants(bench: Synthetic) -> None:
    """A byte-order mark, CRLF line ends, blank lines, float16 maps of another size and big-endian maps are fine."""
    text = rows(bench, ids(bench)).replace("\n", "\r\n") + "\r\n"
    (bench.predictions / "scores.csv").write_bytes(b"\xef\xbb\xbf" + text.encode())
    np.save(map_path(bench, 1), np.ones((7, 31), np.float16))
    np.save(map_path(bench, 2), np.ones((5, 5), ">f4"))
    scores = score(bench.predictions, bench.reference, bench.reference_root, resamples=20)
    assert scores.image_AUROC.value == 0.5  # every score 0.5
    assert scores.pixel_AUROC is not None


def test_no_maps_at_all_is_fine(bench: Synthetic) -> None:
    for path in (bench.predictions / "maps").iterdir():
        path.unlink()
    scores = score(bench.predictions, bench.reference, bench.reference_root, resamples=20)
    assert scores.pixel_AUROC is None and scores.pixel_AUPRO is None


def test_which_bad_map_is_reported_does_not_depend_on_labels(bench: Synthetic) -> None:
    """With two bad maps, the one reported is the smaller id, although the reference lists the good image
    first (the fixture lists good images before defective ones)."""
    category = bench.reference.categories["cat0"]
    good = max(i.id for i in category.images if i.label == 0)
    defective = min(i.id for i in category.images if i.label == 1)
    assert defective < good and category.images[0].label == 0
    for image_id in (good, defective):
        np.save(bench.predictions / "maps" / f"{image_id}.npy", np.zeros((2, 2, 2), np.float32))
    with pytest.raises(BadPredictions, match=f"maps/{defective}.npy has shape"):
        score(bench.predictions, bench.reference, bench.reference_root, resamples=20)
