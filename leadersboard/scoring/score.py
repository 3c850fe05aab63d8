"""Scoring a job's predictions against a benchmark's reference: the platform's own, verified numbers.

Per category: image AUROC and image F1-max from `scores.csv`; pixel AUROC and AUPRO (FPR up to 0.3,
8-connected regions) from the anomaly maps, when the job wrote them and the category has masks. The averages
are plain means over categories (the pixel ones over the categories that have pixel metrics). Every metric comes
with a stratified bootstrap 95% interval (leadersboard/scoring/bootstrap.py).

`evaluate` returns the replicates too, for paired comparisons of two entries; `score` returns the record's
`Scores`, and `summarize` makes them from an evaluation.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import numpy.typing as npt

from leadersboard.keys import SCORES_CSV
from leadersboard.models.benchmarks import Reference, ReferenceCategory, ReferenceImage
from leadersboard.models.scores import AVERAGE, Interval, MetricSet, Scores
from leadersboard.scoring import metrics
from leadersboard.scoring.bootstrap import CategoryResample, Replicated, average, category_resample, centred
from leadersboard.scoring.pixels import gather_pixels, load_mask, resize_map
from leadersboard.scoring.predictions import MAPS_DIR, load_map, map_paths, read_scores

__all__ = [
    "AVERAGE",
    "DEFAULT_RESAMPLES",
    "DEFAULT_SEED",
    "SCORER_VERSION",
    "InvalidReference",
    "check_reference",
    "evaluate",
    "score",
    "summarize",
]

SCORER_VERSION = "1"
"""Bump when a change to the scorer can change a number: stored scores say which version made them."""
DEFAULT_RESAMPLES = 2000
DEFAULT_SEED = 13

Evaluation = dict[str, dict[str, Replicated]]
"""Per category name (and AVERAGE), per metric name, the value and its replicates."""


class InvalidReference(ValueError):
    """The benchmark's reference cannot be scored against (an admin's problem, not the job's). The message
    names a category and the problem, never an image id: an id with a mask would be a label."""


def score(
    predictions_dir: Path,
    reference: Reference,
    reference_root: Path,
    *,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
) -> Scores:
    """Score `<output>/predictions` (raises BadPredictions for predictions that cannot be scored)."""
    evaluation = evaluate(predictions_dir, reference, reference_root, resamples=resamples, seed=seed)
    return summarize(evaluation, reference, resamples=resamples, seed=seed)


def summarize(evaluation: Evaluation, reference: Reference, *, resamples: int, seed: int) -> Scores:
    """The record's `Scores` of an evaluation (for a caller that keeps the replicates too)."""
    average_set = _metric_set(evaluation[AVERAGE])
    return Scores(
        **{name: getattr(average_set, name) for name in MetricSet.model_fields},
        per_category={name: _metric_set(evaluation[name]) for name in reference.categories},
        scorer_version=SCORER_VERSION,
        resamples=resamples,
        seed=seed,
    )


def _metric_set(metrics_by_name: dict[str, Replicated]) -> MetricSet:
    intervals: dict[str, Interval] = {name: metric.interval() for name, metric in metrics_by_name.items()}
    return MetricSet.model_validate(intervals)


def evaluate(
    predictions_dir: Path,
    reference: Reference,
    reference_root: Path,
    *,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
) -> Evaluation:
    check_reference(reference)
    ids = [image.id for category in reference.categories.values() for image in category.images]
    scores = read_scores(predictions_dir / SCORES_CSV, ids)
    maps = map_paths(predictions_dir / MAPS_DIR, ids)
    evaluation: Evaluation = {}
    for name, category in reference.categories.items():
        resample = category_resample(reference, name, resamples, seed)
        evaluation[name] = _image_metrics(category, scores, resample)
        if maps is not None and _has_masks(category):
            evaluation[name] |= _pixel_metrics(category, reference_root, maps, resample)
    names = list(reference.categories)
    evaluation[AVERAGE] = {
        metric: average([evaluation[name][metric] for name in names if metric in evaluation[name]])
        for metric in dict.fromkeys(metric for name in names for metric in evaluation[name])
    }
    return evaluation


def check_reference(reference: Reference) -> None:
    """Both classes in every category (else AUROC and F1-max are undefined), masks on all or no defective
    images of a category."""
    if not reference.categories:
        raise InvalidReference("the reference has no category")
    for name, category in reference.categories.items():
        labels = [image.label for image in category.images]
        if 0 not in labels or 1 not in labels:
            raise InvalidReference(f"category {name!r} needs both good and defective test images")
        with_mask = {image.mask is not None for image in category.images if image.label == 1}
        if len(with_mask) > 1:
            raise InvalidReference(f"category {name!r} has masks for only some defective images")
        if any(image.mask is not None for image in category.images if image.label == 0):
            raise InvalidReference(f"category {name!r} has a mask on a good image")


def _has_masks(category: ReferenceCategory) -> bool:
    return any(image.mask is not None for image in category.images)


def _image_metrics(
    category: ReferenceCategory, scores: dict[str, float], resample: CategoryResample
) -> dict[str, Replicated]:
    labels = np.array([image.label for image in category.images])
    values = np.array([scores[image.id] for image in category.images])
    counts = resample.counts()
    positive = labels == 1
    auroc = metrics.auroc(values[positive], values[~positive])
    auroc_replicates = metrics.auroc(values[positive], values[~positive], counts[:, positive], counts[:, ~positive])
    return {
        "image_AUROC": Replicated(value=float(auroc[0]), replicates=auroc_replicates),
        "image_F1Max": Replicated(
            value=float(metrics.f1_max(values, labels)[0]), replicates=metrics.f1_max(values, labels, counts)
        ),
    }


def _pixel_metrics(
    category: ReferenceCategory, reference_root: Path, maps: dict[str, Path], resample: CategoryResample
) -> dict[str, Replicated]:
    # Images go in id order, not the reference's: the first bad map reported must not depend on where the
    # reference lists an image (an order grouped by label would leak labels through which map fails first).
    order = sorted(range(len(category.images)), key=lambda position: category.images[position].id)
    try:
        pixels = gather_pixels(_masks_and_maps([category.images[p] for p in order], reference_root, maps))
    except metrics.UndefinedMetric as error:
        raise InvalidReference(f"a category's masks have no defect pixel: {error}") from None
    exact_auroc, exact_aupro = pixels.auroc(), pixels.aupro()
    binned_auroc, binned_aupro = pixels.binned(np.ones((1, resample.size)))
    replicate_auroc, replicate_aupro = pixels.binned(resample.counts()[:, order])
    return {
        "pixel_AUROC": centred(exact_auroc, float(binned_auroc[0]), replicate_auroc),
        "pixel_AUPRO": centred(exact_aupro, float(binned_aupro[0]), replicate_aupro),
    }


def _masks_and_maps(
    images: list[ReferenceImage], reference_root: Path, maps: dict[str, Path]
) -> Iterator[tuple[npt.NDArray[np.bool_], npt.NDArray[np.float32]]]:
    """(mask, map resized to it) per image, in the given order; loaded one at a time."""
    for image in images:
        if image.mask is None:
            mask = np.zeros((image.height, image.width), dtype=bool)
        else:
            try:
                mask = load_mask(reference_root / image.mask, image.width, image.height)
            except (OSError, ValueError) as error:
                raise InvalidReference(f"a mask of the reference cannot be used ({type(error).__name__})") from None
        yield mask, resize_map(load_map(maps[image.id]), image.width, image.height)
