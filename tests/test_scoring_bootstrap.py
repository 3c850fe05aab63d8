"""Stratified bootstrap intervals: fixed by the reference and the seed, shared by every submission."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from leadersboard.models.scores import Scores
from leadersboard.scoring.bootstrap import category_resample
from leadersboard.scoring.pixels import gather_pixels, resize_map
from leadersboard.scoring.score import SCORER_VERSION, evaluate, score
from tests.scoring_fixtures import SIDE, Synthetic, synthetic

RESAMPLES = 200


@pytest.fixture
def bench(tmp_path: Path) -> Synthetic:
    return synthetic(tmp_path, good=7, defective=6, categories=3)


def test_stratification_keeps_class_counts(bench: Synthetic) -> None:
    for name, category in bench.reference.categories.items():
        labels = np.array([image.label for image in category.images])
        resample = category_resample(bench.reference, name, RESAMPLES, seed=1)
        assert resample.good.shape == (RESAMPLES, (labels == 0).sum())
        assert resample.defective.shape == (RESAMPLES, (labels == 1).sum())
        assert (labels[resample.good] == 0).all() and (labels[resample.defective] == 1).all()
        assert resample.counts().sum(axis=1).tolist() == [labels.size] * RESAMPLES
        assert len({row.tobytes() for row in resample.defective}) > 1  # really resampled


def test_resamples_depend_on_seed_and_reference_only(bench: Synthetic) -> None:
    first = category_resample(bench.reference, "cat0", RESAMPLES, seed=1)
    again = category_resample(bench.reference.model_copy(deep=True), "cat0", RESAMPLES, seed=1)
    other_seed = category_resample(bench.reference, "cat0", RESAMPLES, seed=2)
    other_category = category_resample(bench.reference, "cat1", RESAMPLES, seed=1)
    other_version = category_resample(bench.reference.model_copy(update={"benchmark_version": 2}), "cat0", RESAMPLES, 1)
    assert np.array_equal(first.good, again.good) and np.array_equal(first.defective, again.defective)
    for different in (other_seed, other_category, other_version):
        assert not np.array_equal(first.defective, different.defective)


def test_two_submissions_are_resampled_identically(bench: Synthetic, tmp_path: Path) -> None:
    """Each replicate of each submission is the metric on the images the reference's resample drew, so
    two entries' replicates pair up."""
    second = tmp_path / "second"
    second.mkdir()
    rng = np.random.default_rng(5)
    ids = [image.id for category in bench.reference.categories.values() for image in category.images]
    (second / "scores.csv").write_text("image_id,score\n" + "".join(f"{i},{rng.random()}\n" for i in ids))
    category = bench.reference.categories["cat1"]
    labels = np.array([image.label for image in category.images])
    resample = category_resample(bench.reference, "cat1", RESAMPLES, seed=3)
    for predictions in (bench.predictions, second):
        replicates = evaluate(predictions, bench.reference, bench.reference_root, resamples=RESAMPLES, seed=3)
        lines = (predictions / "scores.csv").read_text().splitlines()[1:]
        by_id = {line.split(",")[0]: float(line.split(",")[1]) for line in lines}
        values = np.array([by_id[image.id] for image in category.images])
        for b in (0, 17, RESAMPLES - 1):
            drawn = np.concatenate([resample.good[b], resample.defective[b]])
            expected = roc_auc_score(labels[drawn], values[drawn])
            assert replicates["cat1"]["image_AUROC"].replicates[b] == pytest.approx(expected, abs=1e-12)


def test_deterministic_and_intervals_contain_the_value(bench: Synthetic) -> None:
    first = score(bench.predictions, bench.reference, bench.reference_root, resamples=RESAMPLES, seed=4)
    again = score(bench.predictions, bench.reference, bench.reference_root, resamples=RESAMPLES, seed=4)
    other = score(bench.predictions, bench.reference, bench.reference_root, resamples=RESAMPLES, seed=5)
    assert first == again
    assert first.image_AUROC.ci_low != other.image_AUROC.ci_low
    for metric_set in [first, *first.per_category.values()]:
        for name in ("image_AUROC", "image_F1Max", "pixel_AUROC", "pixel_AUPRO"):
            interval = getattr(metric_set, name)
            assert interval is not None
            assert 0 <= interval.ci_low <= interval.value <= interval.ci_high <= 1, (name, interval)
            assert interval.ci_low < interval.ci_high


def test_average_is_the_mean_of_categories(bench: Synthetic) -> None:
    scores = score(bench.predictions, bench.reference, bench.reference_root, resamples=RESAMPLES)
    for name in ("image_AUROC", "pixel_AUPRO"):
        values = [getattr(category, name).value for category in scores.per_category.values()]
        assert getattr(scores, name).value == pytest.approx(np.mean(values))


def test_pixel_replicates_approximate_the_exact_metric(bench: Synthetic) -> None:
    """A pixel replicate (from per-image histograms, centred on the exact value) is close to the exact metric
    of the images that resample drew: far closer than the replicates' spread (about 1e-2 here)."""
    evaluation = evaluate(bench.predictions, bench.reference, bench.reference_root, resamples=RESAMPLES, seed=6)
    category = bench.reference.categories["cat2"]
    resample = category_resample(bench.reference, "cat2", RESAMPLES, seed=6)
    maps = [np.load(bench.predictions / "maps" / f"{image.id}.npy") for image in category.images]
    masks = [bench.masks[image.id] for image in category.images]
    for b in range(10):
        drawn = np.concatenate([resample.good[b], resample.defective[b]])
        exact = gather_pixels((masks[i], resize_map(maps[i], SIDE, SIDE)) for i in drawn)
        assert evaluation["cat2"]["pixel_AUROC"].replicates[b] == pytest.approx(exact.auroc(), abs=1e-3)
        assert evaluation["cat2"]["pixel_AUPRO"].replicates[b] == pytest.approx(exact.aupro(), abs=1e-3)


def test_scores_json_shape(bench: Synthetic) -> None:
    scores = score(bench.predictions, bench.reference, bench.reference_root, resamples=RESAMPLES)
    data = json.loads(scores.model_dump_json())
    assert set(data) == {"image_AUROC", "image_F1Max", "pixel_AUROC", "pixel_AUPRO", "per_category"} | {
        "scorer_version",
        "resamples",
        "seed",
        "test_labels_public",
    }
    assert set(data["image_AUROC"]) == {"value", "ci_low", "ci_high"}
    assert set(data["per_category"]) == {"cat0", "cat1", "cat2"}
    assert data["scorer_version"] == SCORER_VERSION and data["resamples"] == RESAMPLES
    assert Scores.model_validate(data) == scores


def test_without_maps_pixel_metrics_are_absent(tmp_path: Path) -> None:
    bench = synthetic(tmp_path, maps=False)
    data = json.loads(score(bench.predictions, bench.reference, bench.reference_root, resamples=50).model_dump_json())
    assert "pixel_AUROC" not in data and "pixel_AUPRO" not in data
    assert "pixel_AUROC" not in data["per_category"]["cat0"]
