"""Stratified bootstrap 95% intervals, with resamples that depend on the reference and the seed only.

Per category, the good and the defective test images are resampled separately (with replacement, each class
keeping its count), so every resample has both classes. A category-averaged metric's replicate b is the mean of
the categories' replicates b: the categories are resampled independently, so that is a stratified resample of
the whole test set. The interval is the 2.5th and 97.5th percentile of the replicates.

The resample indices come from a seed and the reference alone (benchmark name, version, category, the order
of its images), never from a submission: every entry of one benchmark version is resampled identically, so two
entries' replicates pair up and their per-replicate differences give a paired test (`Replicated.replicates`).

Pixel metrics: each replicate is computed from 1,024-bin per-image histograms (leadersboard/scoring/pixels.py)
rather than by re-sorting every pixel. Those binned replicates are shifted by (exact value - binned value of the
full set), so the interval is centred on the exact point value; its width and shape are approximate, to the
histograms' resolution. The point value itself is exact.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from leadersboard.models.benchmarks import Reference
from leadersboard.models.scores import Interval

__all__ = [
    "CategoryResample",
    "Replicated",
    "average",
    "category_resample",
    "centred",
    "interval",
]

Floats = npt.NDArray[np.float64]
Indices = npt.NDArray[np.int64]


@dataclass(frozen=True)
class CategoryResample:
    """Which images each replicate draws, as positions in the category's image list (reference order)."""

    good: Indices
    """(B, number of good images): positions of good images."""
    defective: Indices
    """(B, number of defective images)."""
    size: int
    """Number of images in the category."""

    def counts(self) -> Floats:
        """(B, images): how often each replicate drew each image."""
        drawn = np.concatenate([self.good, self.defective], axis=1)
        replicates = drawn.shape[0]
        flat = (drawn + self.size * np.arange(replicates)[:, None]).ravel()
        return np.bincount(flat, minlength=replicates * self.size).reshape(replicates, self.size).astype(np.float64)


def category_resample(reference: Reference, category: str, resamples: int, seed: int) -> CategoryResample:
    """The resamples of one category: a function of (seed, benchmark, version, category, image order) only."""
    labels = np.array([image.label for image in reference.categories[category].images])
    good, defective = np.flatnonzero(labels == 0), np.flatnonzero(labels == 1)
    key = f"{reference.benchmark}\0{reference.benchmark_version}\0{category}".encode()
    stream = int.from_bytes(hashlib.sha256(key).digest()[:8], "big")
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, stream])))
    return CategoryResample(
        good=good[rng.integers(0, good.size, size=(resamples, good.size))],
        defective=defective[rng.integers(0, defective.size, size=(resamples, defective.size))],
        size=labels.size,
    )


@dataclass(frozen=True)
class Replicated:
    """A metric's point value and its bootstrap replicates (one per resample, in resample order)."""

    value: float
    replicates: Floats

    def interval(self) -> Interval:
        return interval(self.value, self.replicates)


def interval(value: float, replicates: Floats) -> Interval:
    low, high = np.percentile(replicates, [2.5, 97.5])
    return Interval(value=value, ci_low=float(low), ci_high=float(high))


def centred(value: float, binned_value: float, binned_replicates: Floats) -> Replicated:
    """Binned replicates moved so that the binned full-set value lands on the exact one, clipped to [0, 1]."""
    return Replicated(value=value, replicates=np.clip(binned_replicates + (value - binned_value), 0.0, 1.0))


def average(per_category: list[Replicated]) -> Replicated:
    """The category average of a metric and of each of its replicates."""
    return Replicated(
        value=float(np.mean([metric.value for metric in per_category])),
        replicates=np.mean([metric.replicates for metric in per_category], axis=0),
    )
