"""One category's pixels: masks and anomaly maps gathered into what the pixel metrics need.

Each map is resized to its mask's size with Pillow's bilinear filter on a 32-bit float image
(`Image.resize(..., Image.Resampling.BILINEAR)`; when the mask is smaller than the map this filter is
antialiased, i.e. it averages over the covered source pixels). The point values are computed exactly from
every pixel. For the bootstrap, each image also gets 1,024-bin histograms (bins at quantiles of this
category's pixel scores, half from the background, half from the defects): a resample of images is then a
weighted sum of histograms instead of a re-sort of millions of pixels.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from PIL import Image

from leadersboard.scoring.metrics import (
    AUPRO_FPR_LIMIT,
    UndefinedMetric,
    curve_area,
    defect_regions,
    monotonic_codes,
    pixel_curve,
)

__all__ = ["HISTOGRAM_BINS", "PixelCategory", "gather_pixels", "load_mask", "resize_map"]

HISTOGRAM_BINS = 1024
COARSE_BITS = 20
"""Histogram bins are looked up from the top 20 bits of a pixel's code (float32 sign, exponent and 11 mantissa
bits: about 1/2,000 relative resolution), a table lookup instead of a binary search per pixel."""

Floats = npt.NDArray[np.float64]
Codes = npt.NDArray[np.uint32]


def load_mask(path: Path, width: int, height: int) -> npt.NDArray[np.bool_]:
    """A reference mask as booleans (any nonzero channel = defect). Its size must be the image's."""
    with Image.open(path) as image:
        pixels = np.asarray(image)
    mask: npt.NDArray[np.bool_] = np.asarray(pixels.any(axis=2) if pixels.ndim == 3 else pixels != 0)
    if mask.shape != (height, width):
        raise ValueError(f"mask is {mask.shape[1]}x{mask.shape[0]}, its image {width}x{height}")
    return mask


def resize_map(anomaly_map: npt.NDArray[np.float32], width: int, height: int) -> npt.NDArray[np.float32]:
    if anomaly_map.shape == (height, width):
        return anomaly_map
    image = Image.fromarray(anomaly_map, mode="F").resize((width, height), Image.Resampling.BILINEAR)
    return np.asarray(image, dtype=np.float32)


@dataclass(frozen=True)
class _ImagePixels:
    codes: Codes
    defect: npt.NDArray[np.bool_]
    region_weights: Floats
    """1 / (size of its region) for each defect pixel, in the order of codes[defect]."""
    region_count: int


@dataclass(frozen=True)
class PixelCategory:
    """Exact inputs (sorted background codes, defect codes with their region weights) and per-image
    histograms (rows in the category's image order, bins from the highest scores down) for the bootstrap."""

    sorted_negatives: Codes
    positives: Codes
    region_weights: Floats
    """1 / (size of the pixel's region) for each defect pixel."""
    negative_histograms: Floats
    positive_histograms: Floats
    region_histograms: Floats
    """Per bin, the sum of region_weights: a region's share of the per-region overlap."""
    image_regions: Floats

    def auroc(self) -> float:
        fpr, tpr = pixel_curve(
            self.sorted_negatives, self.positives, np.full(self.positives.size, 1 / self.positives.size)
        )
        return float(curve_area(fpr, tpr)[0])

    def aupro(self) -> float:
        regions = self.image_regions.sum()
        fpr, pro = pixel_curve(self.sorted_negatives, self.positives, self.region_weights / regions)
        return float(curve_area(fpr, pro, AUPRO_FPR_LIMIT)[0])

    def binned(self, counts: Floats) -> tuple[Floats, Floats]:
        """(pixel AUROC, AUPRO) of each resample, from histograms; `counts` (B, images) says how often each
        image was drawn. Every bin is one tie group, so a bin's pixels make one diagonal segment."""
        negatives, positives = counts @ self.negative_histograms, counts @ self.positive_histograms
        fpr = _cumulative(_share(negatives, negatives.sum(axis=1)))
        tpr = _cumulative(_share(positives, positives.sum(axis=1)))
        overlap = _cumulative(_share(counts @ self.region_histograms, counts @ self.image_regions))
        return curve_area(fpr, tpr), curve_area(fpr, overlap, AUPRO_FPR_LIMIT)


def _share(per_bin: Floats, totals: Floats) -> Floats:
    """per_bin / total of each row. A row whose total is 0 (a resample that drew only defective images with
    empty masks: no defect region) stays all 0, as anomalib's AUPRO counts it, not NaN."""
    shares: Floats = per_bin / np.where(totals > 0, totals, 1.0)[:, None]
    return shares


def _cumulative(per_bin: Floats) -> Floats:
    """Cumulative share from the highest bin down (bins are stored highest first), with the curve's origin."""
    cumulative = np.zeros((per_bin.shape[0], per_bin.shape[1] + 1))
    np.cumsum(per_bin, axis=1, out=cumulative[:, 1:])
    return cumulative


def gather_pixels(pairs: Iterable[tuple[npt.NDArray[np.bool_], npt.NDArray[np.float32]]]) -> PixelCategory:
    """Gather a category from (mask, map resized to the mask) pairs in the category's image order."""
    images = [_image_pixels(mask, anomaly_map) for mask, anomaly_map in pairs]
    negatives = np.concatenate([image.codes[~image.defect] for image in images])
    positives = np.concatenate([image.codes[image.defect] for image in images])
    weights = np.concatenate([image.region_weights for image in images])
    regions = sum(image.region_count for image in images)
    if positives.size == 0 or negatives.size == 0 or regions == 0:
        raise UndefinedMetric("pixel metrics need both defect and background pixels")
    negatives.sort()
    lookup = _bin_lookup(negatives, np.sort(positives))
    histograms = [_histograms(image, lookup) for image in images]
    return PixelCategory(
        sorted_negatives=negatives,
        positives=positives,
        region_weights=weights,
        negative_histograms=np.stack([h[0] for h in histograms]),
        positive_histograms=np.stack([h[1] for h in histograms]),
        region_histograms=np.stack([h[2] for h in histograms]),
        image_regions=np.array([image.region_count for image in images], dtype=np.float64),
    )


def _image_pixels(mask: npt.NDArray[np.bool_], anomaly_map: npt.NDArray[np.float32]) -> _ImagePixels:
    codes = monotonic_codes(anomaly_map).ravel()
    defect = mask.ravel()
    if not defect.any():  # a good image: no region to label
        return _ImagePixels(codes=codes, defect=defect, region_weights=np.empty(0), region_count=0)
    regions, count = defect_regions(mask)
    flat = regions.ravel()[defect]
    weights: Floats = 1.0 / np.bincount(flat)[flat]
    return _ImagePixels(codes=codes, defect=defect, region_weights=weights, region_count=count)


def _bin_lookup(sorted_negatives: Codes, sorted_positives: Codes) -> npt.NDArray[np.int32]:
    """Table from a code's top COARSE_BITS bits to its histogram bin: edges at quantiles of the background and
    of the defects (half each, so the few defect pixels still get fine bins where they lie)."""
    half = (HISTOGRAM_BINS - 1) // 2
    edges = np.concatenate(
        [_quantiles(sorted_negatives, half), _quantiles(sorted_positives, HISTOGRAM_BINS - 1 - half)]
    )
    coarse_edges = edges >> np.uint32(32 - COARSE_BITS)
    lookup: npt.NDArray[np.int32] = np.cumsum(np.bincount(coarse_edges, minlength=1 << COARSE_BITS)).astype(np.int32)
    return lookup


def _quantiles(sorted_codes: Codes, count: int) -> Codes:
    positions = np.linspace(0, sorted_codes.size - 1, count + 2)[1:-1].astype(np.int64)
    picked: Codes = sorted_codes[positions]
    return picked


def _histograms(image: _ImagePixels, lookup: npt.NDArray[np.int32]) -> tuple[Floats, Floats, Floats]:
    bins = lookup[image.codes >> np.uint32(32 - COARSE_BITS)]
    both = np.bincount(bins + HISTOGRAM_BINS * image.defect, minlength=2 * HISTOGRAM_BINS).astype(np.float64)
    overlap = np.bincount(bins[image.defect], weights=image.region_weights, minlength=HISTOGRAM_BINS).astype(np.float64)
    return both[HISTOGRAM_BINS - 1 :: -1], both[: HISTOGRAM_BINS - 1 : -1], overlap[::-1]
