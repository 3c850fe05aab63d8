"""Tiny synthetic references and predictions for the scoring tests: PNG masks written with Pillow, maps as .npy."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from leadersboard.models.benchmarks import Reference, ReferenceCategory, ReferenceImage

SIDE = 24


@dataclass(frozen=True)
class Synthetic:
    reference: Reference
    reference_root: Path
    predictions: Path
    masks: dict[str, np.ndarray]
    """Each image's boolean mask (all False for good images)."""


def blob_mask(rng: np.random.Generator, side: int = SIDE) -> np.ndarray:
    image = Image.new("L", (side, side))
    draw = ImageDraw.Draw(image)
    for _ in range(rng.integers(1, 3)):
        x, y = rng.integers(2, side - 2, size=2)
        radius = rng.integers(1, side // 5)
        draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill=255)
    return np.asarray(image) > 0


def synthetic(
    root: Path, *, good: int = 6, defective: int = 5, categories: int = 2, seed: int = 0, maps: bool = True
) -> Synthetic:
    """A reference with masks under `root/reference` and informative predictions under `root/predictions`."""
    rng = np.random.default_rng(seed)
    reference_root, predictions = root / "reference", root / "predictions"
    (reference_root / "masks").mkdir(parents=True)
    (predictions / "maps").mkdir(parents=True)
    masks: dict[str, np.ndarray] = {}
    rows = ["image_id,score"]
    found: dict[str, ReferenceCategory] = {}
    for number in range(categories):
        images = []
        for label in [0] * good + [1] * defective:
            image_id = rng.bytes(8).hex()
            mask = blob_mask(rng) if label else np.zeros((SIDE, SIDE), dtype=bool)
            mask_path = None
            if label:
                mask_path = f"masks/{image_id}.png"
                Image.fromarray(mask.astype(np.uint8) * 255).save(reference_root / mask_path)
            masks[image_id] = mask
            anomaly_map = (mask + rng.normal(0, 0.6, mask.shape)).astype(np.float32)
            if maps:
                np.save(predictions / "maps" / f"{image_id}.npy", anomaly_map[::2, ::2].copy())
            rows.append(f"{image_id},{label + rng.normal(0, 0.8):.5f}")
            images.append(ReferenceImage(id=image_id, label=label, mask=mask_path, width=SIDE, height=SIDE))
        found[f"cat{number}"] = ReferenceCategory(images=images)
    (predictions / "scores.csv").write_text("\n".join(rows) + "\n")
    reference = Reference(benchmark="synthetic", benchmark_version=1, categories=found)
    return Synthetic(reference=reference, reference_root=reference_root, predictions=predictions, masks=masks)
