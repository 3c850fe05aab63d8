"""Exact image and pixel metrics: AUROC, F1-max, pixel AUROC and AUPRO, with no binning.

Every metric takes per-element weights: a point value weighs each element once, a bootstrap replicate by how
often its resample drew it (leadersboard/scoring/bootstrap.py). One implementation serves both, so the
intervals measure the very metric the point value reports.

- AUROC: the probability that a defective element outscores a good one, a tie counting one half. This is the
  trapezoidal area under the ROC curve, as `sklearn.metrics.roc_auc_score` computes it.
- F1-max: the largest F1 over every threshold "score >= t" (t ranging over the distinct scores), as the
  maximum over `sklearn.metrics.precision_recall_curve`.
- Pixel AUROC and AUPRO work on monotonic integer codes of float32 values (`monotonic_codes`): the
  negatives are sorted once, the positives looked up in them, so the cost is one sort of the background.
- AUPRO: area under the per-region overlap curve up to a false positive rate of 0.3, divided by 0.3, with
  defect regions 8-connected; the curve and its cut at the limit (linear interpolation) are anomalib 2.7's
  `AUPRO(fpr_limit=0.3)`.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy import ndimage

__all__ = [
    "AUPRO_FPR_LIMIT",
    "REGION_STRUCTURE",
    "UndefinedMetric",
    "auroc",
    "curve_area",
    "defect_regions",
    "f1_max",
    "image_auroc",
    "image_f1_max",
    "monotonic_codes",
    "pixel_curve",
]

AUPRO_FPR_LIMIT = 0.3
REGION_STRUCTURE = np.ones((3, 3), dtype=bool)
"""8-connectivity: pixels touching by a corner belong to one defect region (OpenCV's default, which
anomalib's connected components use)."""

Floats = npt.NDArray[np.float64]


class UndefinedMetric(ValueError):
    """A metric that needs both classes (or at least one defect region) got only one."""


def _require_both(positives: int, negatives: int, what: str) -> None:
    if positives == 0 or negatives == 0:
        raise UndefinedMetric(f"{what} needs both defective and good elements: got {positives} and {negatives}")


def _as_weights(weights: npt.ArrayLike | None, size: int) -> Floats:
    """(B, size) weights; None means one unweighted replicate."""
    if weights is None:
        return np.ones((1, size))
    matrix = np.atleast_2d(np.asarray(weights, dtype=np.float64))
    if matrix.shape[1] != size:
        raise ValueError(f"weights have {matrix.shape[1]} columns for {size} elements")
    return matrix


def auroc(
    positive_scores: npt.ArrayLike,
    negative_scores: npt.ArrayLike,
    positive_weights: npt.ArrayLike | None = None,
    negative_weights: npt.ArrayLike | None = None,
) -> Floats:
    """AUROC of each weight replicate (shape (B,)): sum of w_p * w_n * [p > n] (+ 1/2 on ties) over all pairs,
    divided by the total pair weight. The pair matrix is small for image scores (a category's test images)."""
    pos = np.asarray(positive_scores, dtype=np.float64)
    neg = np.asarray(negative_scores, dtype=np.float64)
    _require_both(pos.size, neg.size, "AUROC")
    wins = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
    wp, wn = _as_weights(positive_weights, pos.size), _as_weights(negative_weights, neg.size)
    total = wp.sum(axis=1) * wn.sum(axis=1)
    result: Floats = ((wp @ wins) * wn).sum(axis=1) / total
    return result


def f1_max(scores: npt.ArrayLike, labels: npt.ArrayLike, weights: npt.ArrayLike | None = None) -> Floats:
    """Largest F1 over the thresholds "score >= t" of each weight replicate (shape (B,)).

    F1 = 2 TP / (2 TP + FP + FN) = 2 TP / (TP + FP + P), evaluated after each group of tied scores."""
    values = np.asarray(scores, dtype=np.float64)
    positive = np.asarray(labels).astype(bool)
    _require_both(int(positive.sum()), int((~positive).sum()), "F1-max")
    order = np.argsort(-values, kind="stable")
    w = _as_weights(weights, values.size)[:, order]
    tp = np.cumsum(w * positive[order], axis=1)
    fp = np.cumsum(w * ~positive[order], axis=1)
    sorted_values = values[order]
    group_ends = np.flatnonzero(np.append(sorted_values[1:] != sorted_values[:-1], True))
    tp, fp = tp[:, group_ends], fp[:, group_ends]
    f1 = 2 * tp / (tp + fp + tp[:, -1:])
    result: Floats = f1.max(axis=1)
    return result


def image_auroc(labels: npt.ArrayLike, scores: npt.ArrayLike) -> float:
    """Unweighted image AUROC (labels: 1 = defective)."""
    values, positive = np.asarray(scores, dtype=np.float64), np.asarray(labels).astype(bool)
    return float(auroc(values[positive], values[~positive])[0])


def image_f1_max(labels: npt.ArrayLike, scores: npt.ArrayLike) -> float:
    return float(f1_max(scores, labels)[0])


def monotonic_codes(values: npt.NDArray[np.floating]) -> npt.NDArray[np.uint32]:
    """uint32 codes ordered as the float32 values are: a < b exactly when code(a) < code(b), equal values
    (-0.0 and 0.0 included) share a code. The caller has rejected NaN."""
    as_float = np.asarray(values, dtype=np.float32) + np.float32(0.0)  # -0.0 + 0.0 is +0.0
    # Negative floats: flip every bit (larger magnitude, smaller code); others: set the sign bit.
    flip = (as_float.view(np.int32) >> 31).view(np.uint32) | np.uint32(0x80000000)
    codes: npt.NDArray[np.uint32] = as_float.view(np.uint32) ^ flip
    return codes


def defect_regions(mask: npt.NDArray[np.bool_]) -> tuple[npt.NDArray[np.int32], int]:
    """Label the 8-connected defect regions of a boolean mask: (labels 0 = background, 1..n; n)."""
    labels, count = ndimage.label(mask, structure=REGION_STRUCTURE)
    return labels.astype(np.int32, copy=False), int(count)


def pixel_curve(
    sorted_negative_codes: npt.NDArray[np.uint32],
    positive_codes: npt.NDArray[np.uint32],
    positive_weights: npt.ArrayLike,
) -> tuple[Floats, Floats]:
    """The exact curve (false positive rate, weighted true positive rate) over every threshold, shape (1, V).

    For each distinct positive code u (descending) two vertices: just above u and at u, so that negatives
    tied with u make a diagonal segment, as a sort over all pixels would. Thresholds between two positive
    codes only add negatives, so they lie on a horizontal segment and add no vertex of their own. The
    weights of the positives sum to 1 (1/P each for AUROC; 1/(size of its region * regions) for AUPRO)."""
    negatives = sorted_negative_codes.size
    _require_both(positive_codes.size, negatives, "the pixel curve")
    distinct, inverse = np.unique(positive_codes, return_inverse=True)
    weight = np.bincount(inverse.ravel(), weights=np.asarray(positive_weights, dtype=np.float64))[::-1]
    distinct = distinct[::-1]
    negatives_at_or_above = negatives - np.searchsorted(sorted_negative_codes, distinct, side="left")
    negatives_above = negatives - np.searchsorted(sorted_negative_codes, distinct, side="right")
    tpr_at_or_above = np.cumsum(weight)
    tpr_above = tpr_at_or_above - weight
    fpr = np.empty(2 * distinct.size + 2)
    tpr = np.empty_like(fpr)
    fpr[0], tpr[0] = 0.0, 0.0
    fpr[1:-1:2], tpr[1:-1:2] = negatives_above / negatives, tpr_above
    fpr[2:-1:2], tpr[2:-1:2] = negatives_at_or_above / negatives, tpr_at_or_above
    fpr[-1], tpr[-1] = 1.0, tpr_at_or_above[-1]
    return fpr[None, :], tpr[None, :]


def curve_area(fpr: Floats, tpr: Floats, fpr_limit: float = 1.0) -> Floats:
    """Trapezoidal area under each row's piecewise linear curve from fpr 0 to `fpr_limit`, divided by the limit
    (shape (B,)). The segment crossing the limit is cut by linear interpolation, as anomalib's AUPRO does;
    with fpr_limit 1 this is the ROC area (sklearn's `auc`). Rows are non-decreasing in fpr, so the segments
    wholly inside the limit are a prefix of each row, followed by at most one crossing segment."""
    x0, x1, y0, y1 = fpr[:, :-1], fpr[:, 1:], tpr[:, :-1], tpr[:, 1:]
    inside = x1 <= fpr_limit
    area = ((x1 - x0) * (y0 + y1) * inside).sum(axis=1) / 2
    crossing = inside.sum(axis=1)
    rows = np.flatnonzero(crossing < x0.shape[1])
    if rows.size:
        at = crossing[rows]
        cx0, cx1, cy0, cy1 = x0[rows, at], x1[rows, at], y0[rows, at], y1[rows, at]
        y_limit = cy0 + (cy1 - cy0) * (fpr_limit - cx0) / (cx1 - cx0)
        area[rows] += (fpr_limit - cx0) * (cy0 + y_limit) / 2
    result: Floats = area / fpr_limit
    return result
