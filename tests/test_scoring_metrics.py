"""The scorer's metrics against scikit-learn's and anomalib 2.7's (test-only references)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from anomalib.metrics import AUPRO, AUROC
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage
from sklearn.metrics import precision_recall_curve, roc_auc_score

from leadersboard.scoring.metrics import (
    REGION_STRUCTURE,
    UndefinedMetric,
    auroc,
    image_auroc,
    image_f1_max,
    monotonic_codes,
)
from leadersboard.scoring.pixels import gather_pixels
from tests.scoring_fixtures import blob_mask

# Few distinct values, so that ties are common; both classes present.
labelled_scores = st.integers(2, 40).flatmap(
    lambda n: st.tuples(
        st.lists(st.integers(0, 1), min_size=n, max_size=n).filter(lambda y: 0 < sum(y) < len(y)),
        st.lists(st.sampled_from([-1.5, -0.0, 0.0, 0.25, 0.5, 3.0, 1e6]), min_size=n, max_size=n),
    )
)


def sklearn_f1_max(labels: list[int], scores: list[float]) -> float:
    precision, recall, _ = precision_recall_curve(labels, scores)
    f1 = np.divide(
        2 * precision * recall, precision + recall, out=np.zeros_like(precision), where=precision + recall > 0
    )
    return float(f1.max())


@settings(max_examples=300, deadline=None)
@given(labelled_scores)
def test_image_metrics_equal_sklearn(case: tuple[list[int], list[float]]) -> None:
    labels, scores = case
    assert image_auroc(labels, scores) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    assert image_f1_max(labels, scores) == pytest.approx(sklearn_f1_max(labels, scores), abs=1e-12)


@settings(max_examples=100, deadline=None)
@given(labelled_scores, st.lists(st.integers(0, 3), min_size=40, max_size=40))
def test_weights_are_repeated_elements(case: tuple[list[int], list[float]], repeats: list[int]) -> None:
    """A weight of k counts an element k times: what a bootstrap replicate relies on."""
    labels, scores = np.array(case[0]), np.array(case[1])
    weights = np.array(repeats[: labels.size], dtype=float)
    weights[np.flatnonzero(labels == 1)[0]] += 1
    weights[np.flatnonzero(labels == 0)[0]] += 1
    repeated_labels, repeated_scores = np.repeat(labels, weights.astype(int)), np.repeat(scores, weights.astype(int))
    positive = labels == 1
    weighted = auroc(scores[positive], scores[~positive], weights[positive], weights[~positive])[0]
    assert weighted == pytest.approx(roc_auc_score(repeated_labels, repeated_scores), abs=1e-12)


def test_hand_cases() -> None:
    assert image_auroc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == 0.75
    assert image_auroc([0, 1], [2.0, 2.0]) == 0.5
    assert image_auroc([0, 0, 1, 1], [5, 5, 5, 5]) == 0.5  # constant scores: chance, not an error
    assert image_f1_max([0, 0, 1, 1], [5, 5, 5, 5]) == pytest.approx(2 / 3)  # everything flagged
    assert image_auroc([1, 1, 0], [0.0, 0.1, 0.2]) == 0.0
    assert image_f1_max([0, 1, 1], [0.9, 0.8, 0.1]) == pytest.approx(sklearn_f1_max([0, 1, 1], [0.9, 0.8, 0.1]))


@pytest.mark.parametrize("labels", [[0, 0, 0], [1, 1]])
def test_one_class_is_a_precise_error(labels: list[int]) -> None:
    with pytest.raises(UndefinedMetric, match="needs both defective and good"):
        image_auroc(labels, [0.5] * len(labels))
    with pytest.raises(UndefinedMetric, match="needs both defective and good"):
        image_f1_max(labels, [0.5] * len(labels))


def test_monotonic_codes_keep_order_and_ties() -> None:
    values = np.array([-np.inf, -1e30, -1.0, -1e-40, -0.0, 0.0, 1e-40, 1.0, 1e30, np.inf], dtype=np.float32)
    codes = monotonic_codes(values)
    assert codes[4] == codes[5]  # -0.0 == 0.0
    assert list(np.argsort(codes[[0, 1, 2, 3, 5, 6, 7, 8, 9]], kind="stable")) == list(range(9))
    assert np.all(np.diff(codes.astype(np.int64)[[0, 1, 2, 3, 5, 6, 7, 8, 9]]) > 0)


def random_maps(seed: int, images: int = 6, side: int = 20, quantize: bool = False) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    masks = np.stack([blob_mask(rng, side) if i % 2 else np.zeros((side, side), bool) for i in range(images)])
    maps = (masks * 0.8 + rng.normal(0, 0.5, masks.shape)).astype(np.float32)
    if quantize:  # many ties across classes
        maps = np.round(maps * 4).astype(np.float32) / 4
    return masks, maps


@pytest.mark.parametrize(("seed", "quantize"), [(0, False), (1, True), (2, False), (3, True)])
def test_pixel_auroc_equals_sklearn(seed: int, quantize: bool) -> None:
    masks, maps = random_maps(seed, quantize=quantize)
    pixels = gather_pixels(zip(masks, maps, strict=True))
    assert pixels.auroc() == pytest.approx(roc_auc_score(masks.ravel(), maps.ravel()), abs=1e-12)


def anomalib_aupro(masks: np.ndarray, maps: np.ndarray) -> float:
    metric = AUPRO(fields=["anomaly_map", "gt_mask"], fpr_limit=0.3)
    metric.update(SimpleNamespace(anomaly_map=torch.from_numpy(maps), gt_mask=torch.from_numpy(masks.astype(np.uint8))))
    return float(metric.compute())


@pytest.mark.parametrize(("seed", "quantize"), [(0, False), (1, True), (4, False), (5, True), (6, False)])
def test_aupro_equals_anomalib(seed: int, quantize: bool) -> None:
    masks, maps = random_maps(seed, images=8, side=32, quantize=quantize)
    ours = gather_pixels(zip(masks, maps, strict=True)).aupro()
    assert ours == pytest.approx(anomalib_aupro(masks, maps), abs=2e-6)


def test_aupro_regions_are_8_connected() -> None:
    """Two pixels touching by a corner are one region: anomalib (OpenCV) and the scorer agree, and the value
    differs from what 4-connected regions would give."""
    mask = np.zeros((1, 8, 8), dtype=bool)
    mask[0, 2:4, 2:4] = True
    mask[0, 4, 4] = True  # corner-touching the square
    maps = np.random.default_rng(7).normal(0, 1, mask.shape).astype(np.float32)
    maps[0, 4, 4] = 9.0
    assert ndimage.label(mask[0], structure=REGION_STRUCTURE)[1] == 1
    ours = gather_pixels(zip(mask, maps, strict=True)).aupro()
    assert ours == pytest.approx(anomalib_aupro(mask, maps), abs=2e-6)


def test_constant_map() -> None:
    masks, _ = random_maps(3)
    maps = np.ones(masks.shape, dtype=np.float32)
    pixels = gather_pixels(zip(masks, maps, strict=True))
    assert pixels.auroc() == pytest.approx(0.5)
    assert pixels.aupro() == pytest.approx(anomalib_aupro(masks, maps), abs=1e-6)
    assert pixels.aupro() == pytest.approx(0.15)  # the diagonal, up to fpr 0.3, normalised


def test_no_defect_pixel_is_a_precise_error() -> None:
    masks = np.zeros((2, 4, 4), dtype=bool)
    with pytest.raises(UndefinedMetric, match="need both defect and background pixels"):
        gather_pixels(zip(masks, np.zeros((2, 4, 4), np.float32), strict=True))


def test_anomalib_auroc_sigmoid_pitfall() -> None:
    """Why the scorer does not use anomalib's AUROC as is: torchmetrics' default sigmoid squashes raw scores
    around 25 into ties. With normalization=None it agrees with the scorer."""
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1], 50)
    scores = (25 + labels * 0.3 + rng.normal(0, 0.5, labels.size)).astype(np.float32)
    batch = SimpleNamespace(pred_score=torch.from_numpy(scores), gt_label=torch.from_numpy(labels))
    exact = AUROC(fields=["pred_score", "gt_label"], normalization=None)
    exact.update(batch)
    assert float(exact.compute()) == pytest.approx(image_auroc(labels, scores), abs=1e-6)
    squashed = AUROC(fields=["pred_score", "gt_label"])
    squashed.update(batch)
    assert abs(float(squashed.compute()) - image_auroc(labels, scores)) > 0.05
