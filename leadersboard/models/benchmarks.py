"""An official benchmark as the platform stores it: the public index jobs see, the reference only the scorer
reads, and the catalogue entry users list.

The public part (`<category>/train/good/<file>`, `<category>/test/<id>.png`, `index.json`) carries no label;
the reference part (`reference.json`, `masks/<id>.png`) carries the labels and masks, keyed by the same ids.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from leadersboard.models.base import StrictModel, utcnow

__all__ = [
    "IMAGE_ID_PATTERN",
    "BenchmarkInfo",
    "CategorySummary",
    "Layout",
    "PublicCategory",
    "PublicIndex",
    "Reference",
    "ReferenceCategory",
    "ReferenceImage",
]

IMAGE_ID_PATTERN = r"^[0-9a-f]{16}$"
"""An opaque test image id: 16 lowercase hex digits, random, unique across a benchmark version."""

Layout = Literal["mvtec_ad", "visa", "folder"]
"""The source layouts a benchmark can be registered from (leadersboard/benchmarks/layouts.py)."""


class ReferenceImage(StrictModel):
    id: str
    """Opaque id, unique across the benchmark version (IMAGE_ID_PATTERN)."""
    label: Literal[0, 1]
    """1 = anomalous."""
    mask: str | None = None
    """PNG path relative to the reference root; nonzero pixel = defect. None for good images, and for every
    image of a category registered without masks (no pixel metrics for that category)."""
    width: int
    height: int


class ReferenceCategory(StrictModel):
    images: list[ReferenceImage]


class Reference(StrictModel):
    """`reference.json`: what only the scorer reads."""

    version: Literal[1] = 1
    benchmark: str
    benchmark_version: int
    categories: dict[str, ReferenceCategory]


class PublicCategory(StrictModel):
    train: list[str]
    """File names relative to `<category>/train/good/`, sorted."""
    test: list[str]
    """File names relative to `<category>/test/`, `<id>.png`, sorted (so in an order random w.r.t. labels)."""


class PublicIndex(StrictModel):
    """`index.json` at the root of the public part: what a job may read."""

    version: Literal[1] = 1
    benchmark: str
    benchmark_version: int
    categories: dict[str, PublicCategory]


class CategorySummary(StrictModel):
    """What the catalogue shows of a category. The numbers of good and defective test images are label
    information (they bound what a constant guess scores): they stay in the reference."""

    train: int
    test: int
    masks: bool
    """Whether the defective test images have masks, i.e. whether anomaly maps are scored (pixel metrics)."""


class BenchmarkInfo(StrictModel):
    """A catalogue entry: one version of a registered benchmark."""

    name: str
    version: int
    description: str = ""
    license: str = ""
    layout: Layout
    test_labels_public: bool = True
    """Whether the test labels are published elsewhere (MVTec AD's and VisA's are): results are then shown as
    "verified (public test labels)", since a model may have seen them; False for a split only the platform holds."""
    created_at: datetime = Field(default_factory=utcnow)
    categories: dict[str, CategorySummary]
    public_sha256: str
    """`tree_sha256` of the public part (leadersboard/benchmarks/split.py)."""
    reference_sha256: str


class StoredPart(StrictModel):
    """One part of a benchmark version as stored: a zip, checked against its sha256 by whoever fetches it."""

    key: str
    size: int = Field(ge=0)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class BenchmarkRecord(StrictModel):
    """A benchmark version in the catalogue (the benchmarks KV bucket, key `<name>.v<version>`).

    `uploading` until the admin's client has put both parts in the store; only `ready` versions are listed and
    accepted by submissions.
    """

    version: Literal[1] = 1
    info: BenchmarkInfo
    status: Literal["uploading", "ready"] = "uploading"
    public: StoredPart
    """`benchmarks/<name>/v<version>/public.zip` in the main bucket."""
    reference: StoredPart
    """`<name>/v<version>/reference.zip` in the reference bucket."""
    created_by: str
