"""replicates.u16 (leadersboard/scoring/replicates.py): the packed replicate vectors, their layout, one vector by a
byte range, and the scores.json fallback that must read the same numbers."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from leadersboard.models.scores import AVERAGE, PIXEL_METRICS, Interval, MetricSet, Scores, ScoresFile
from leadersboard.scoring.replicates import MAX_ERROR, byte_range, decode, encode, from_scores_file, layout

RESAMPLES = 300
IMAGE_METRICS = ("image_AUROC", "image_F1Max")


def metric_set(pixel: bool) -> MetricSet:
    some = Interval(value=0.5, ci_low=0.4, ci_high=0.6)
    return MetricSet(
        image_AUROC=some, image_F1Max=some, pixel_AUROC=some if pixel else None, pixel_AUPRO=some if pixel else None
    )


def scores_file(seed: int = 0) -> ScoresFile:
    """Categories `wood` (with masks) and `bottle` (without), given out of order; every vector distinct, with
    values at and beyond both ends of [0, 1]."""
    rng = np.random.default_rng(seed)
    categories = {"wood": metric_set(pixel=True), "bottle": metric_set(pixel=False)}
    scores = Scores(
        **dict(metric_set(pixel=False)), per_category=categories, scorer_version="1", resamples=RESAMPLES, seed=13
    )
    groups = {AVERAGE: IMAGE_METRICS, "wood": IMAGE_METRICS + PIXEL_METRICS, "bottle": IMAGE_METRICS}
    replicates = {
        group: {metric: [-0.1, 0.0, 1.0, 1.2, *rng.uniform(0, 1, RESAMPLES - 4)] for metric in metrics}
        for group, metrics in groups.items()
    }
    scored_at = datetime(2025, 1, 2, tzinfo=UTC)
    return ScoresFile(benchmark="demo", benchmark_version=1, scored_at=scored_at, scores=scores, replicates=replicates)


def test_the_layout_puts_the_average_first_then_the_categories_by_name_and_only_computed_metrics() -> None:
    assert layout(scores_file().scores) == [
        (AVERAGE, "image_AUROC"),
        (AVERAGE, "image_F1Max"),
        ("bottle", "image_AUROC"),
        ("bottle", "image_F1Max"),
        ("wood", "image_AUROC"),
        ("wood", "image_F1Max"),
        ("wood", "pixel_AUROC"),
        ("wood", "pixel_AUPRO"),
    ]


def test_a_round_trip_is_within_half_a_step_and_clips_to_the_unit_interval() -> None:
    file = scores_file()
    data = encode(file)
    assert len(data) == 8 * RESAMPLES * 2
    decoded = decode(data).reshape(8, RESAMPLES)
    for row, (group, metric) in zip(decoded, layout(file.scores), strict=True):
        original = np.clip(file.replicates[group][metric], 0.0, 1.0)
        assert np.max(np.abs(row - original)) <= MAX_ERROR
        assert (row[0], row[1], row[2], row[3]) == (0.0, 0.0, 1.0, 1.0)
    assert MAX_ERROR < 7.7e-6


def test_a_byte_range_holds_exactly_its_vector() -> None:
    file = scores_file()
    data = encode(file)
    for group, metric in layout(file.scores):
        found = byte_range(file.scores, group, metric)
        assert found is not None
        start, end = found
        assert end - start == RESAMPLES * 2
        fallback = from_scores_file(file, group, metric)
        assert fallback == data[start:end]
    assert byte_range(file.scores, "wood", "pixel_AUPRO") == (7 * RESAMPLES * 2, 8 * RESAMPLES * 2)


def test_what_was_not_computed_has_no_range_and_no_fallback() -> None:
    file = scores_file()
    for group, metric in [("bottle", "pixel_AUROC"), (AVERAGE, "pixel_AUPRO"), ("cable", "image_AUROC")]:
        assert byte_range(file.scores, group, metric) is None
        assert from_scores_file(file, group, metric) is None
    for read in (lambda: byte_range(file.scores, AVERAGE, "AUROC"), lambda: from_scores_file(file, AVERAGE, "AUROC")):
        with pytest.raises(ValueError, match="unknown metric 'AUROC'"):
            read()


def test_the_fallback_agrees_exactly_with_the_packed_file_and_differs_per_vector() -> None:
    file = scores_file(seed=3)
    data = encode(file)
    vectors = []
    for group, metric in layout(file.scores):
        start, end = byte_range(file.scores, group, metric) or (0, 0)
        packed, fallback = decode(data[start:end]), from_scores_file(file, group, metric)
        assert fallback is not None and packed.tobytes() == decode(fallback).tobytes()
        vectors.append(packed.tobytes())
    assert len(set(vectors)) == len(vectors)


def test_a_vector_missing_or_of_another_length_is_refused() -> None:
    file = scores_file()
    short = file.model_copy(deep=True)
    short.replicates["wood"]["pixel_AUPRO"] = short.replicates["wood"]["pixel_AUPRO"][:-1]
    with pytest.raises(ValueError, match=f"pixel_AUPRO in wood are {RESAMPLES - 1} values, not {RESAMPLES}"):
        encode(short)
    missing = file.model_copy(deep=True)
    del missing.replicates["bottle"]["image_F1Max"]
    with pytest.raises(ValueError, match="image_F1Max in bottle are missing"):
        encode(missing)
