"""Generate a small synthetic benchmark in the MVTec AD layout, masks included.

    OUT/<category>/train/good/000.png ...                  textured images, no defect
    OUT/<category>/test/good/000.png ...
    OUT/<category>/test/{bright,dark}/000.png ...          the same texture with a bright or a dark blob
    OUT/<category>/ground_truth/{bright,dark}/000_mask.png the blob, 255 on 0

Each category has its own texture (stripes of its own angle, period and colour, plus noise); a defect is an
irregular blob (two to three overlapping discs, 12-20% of the side across) painted much brighter or darker than
the texture, which PaDiM finds easily. Only the standard library, numpy and Pillow are used; the output is the
same for the same arguments.

Usage:
    python examples/padim-benchmark/make_benchmark.py OUT [--categories 2] [--train 30] [--test-good 10]
        [--test-defective 10] [--size 128] [--seed 0]

Then register it: `leadersboard admin benchmark add synthetic OUT`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

CATEGORY_NAMES = ("carpet", "leather", "tile", "wood", "grid", "fabric", "metal", "paper")
DEFECTS = ("bright", "dark")
DEFECT_SHIFT = 110.0
"""How much brighter or darker a blob is than the texture under it (of 255)."""


def make_benchmark(
    out: Path,
    *,
    categories: int = 2,
    train: int = 30,
    test_good: int = 10,
    test_defective: int = 10,
    size: int = 128,
    seed: int = 0,
) -> Path:
    """Write the benchmark into `out` (new or empty) and return it. Defective test images alternate between
    the defect types."""
    if not 1 <= categories <= len(CATEGORY_NAMES):
        raise ValueError(f"categories must be 1..{len(CATEGORY_NAMES)}, not {categories}")
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} is not empty")
    streams = np.random.SeedSequence(seed).spawn(categories)
    for name, stream in zip(CATEGORY_NAMES[:categories], streams, strict=False):
        _write_category(out / name, np.random.default_rng(stream), train, test_good, test_defective, size)
    return out


def _write_category(
    root: Path, rng: np.random.Generator, train: int, test_good: int, test_defective: int, size: int
) -> None:
    texture = _Texture(rng)
    for i in range(train):
        _save(texture.image(rng, size), root / "train" / "good" / f"{i:03d}.png")
    for i in range(test_good):
        _save(texture.image(rng, size), root / "test" / "good" / f"{i:03d}.png")
    for i in range(test_defective):
        defect = DEFECTS[i % len(DEFECTS)]
        number = f"{i // len(DEFECTS):03d}"
        image = texture.image(rng, size)
        mask = _blob(rng, size)
        shift = DEFECT_SHIFT if defect == "bright" else -DEFECT_SHIFT
        image[mask] += shift
        _save(image, root / "test" / defect / f"{number}.png")
        _save(mask.astype(np.float32) * 255.0, root / "ground_truth" / defect / f"{number}_mask.png")


class _Texture:
    """A category's look: stripes at a fixed angle and period over a base colour; each image gets its own
    phase and noise."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.angle = rng.uniform(0, np.pi)
        self.period = rng.uniform(6.0, 14.0)
        self.colour = rng.uniform(70.0, 150.0, size=3)

    def image(self, rng: np.random.Generator, size: int) -> np.ndarray:
        y, x = np.mgrid[0:size, 0:size].astype(np.float32)
        along = x * np.cos(self.angle) + y * np.sin(self.angle) + rng.uniform(0, self.period)
        stripes = 20.0 * np.sin(2 * np.pi * along / self.period)
        image = self.colour[None, None, :] + stripes[..., None]
        return np.asarray(image + rng.normal(0.0, 5.0, size=image.shape), dtype=np.float64)


def _blob(rng: np.random.Generator, size: int) -> np.ndarray:
    """An irregular defect region: the union of two or three overlapping discs near a random centre."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    cy, cx = rng.uniform(size * 0.25, size * 0.75, size=2)
    mask = np.zeros((size, size), dtype=bool)
    for _ in range(rng.integers(2, 4)):
        dy, dx = rng.uniform(-size * 0.05, size * 0.05, size=2)
        radius = rng.uniform(size * 0.06, size * 0.1)
        mask |= (y - cy - dy) ** 2 + (x - cx - dx) ** 2 <= radius**2
    return mask


def _save(pixels: np.ndarray, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.clip(pixels, 0, 255).round().astype(np.uint8)).save(path, format="PNG")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path, help="output directory (new or empty)")
    parser.add_argument("--categories", type=int, default=2, help=f"1..{len(CATEGORY_NAMES)}")
    parser.add_argument("--train", type=int, default=30, help="good train images per category")
    parser.add_argument("--test-good", type=int, default=10, help="good test images per category")
    parser.add_argument("--test-defective", type=int, default=10, help="defective test images per category")
    parser.add_argument("--size", type=int, default=128, help="image side in pixels")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    out = make_benchmark(
        args.out,
        categories=args.categories,
        train=args.train,
        test_good=args.test_good,
        test_defective=args.test_defective,
        size=args.size,
        seed=args.seed,
    )
    print(
        f"wrote {out}: {args.categories} categories, each {args.train} train, {args.test_good} good and "
        f"{args.test_defective} defective test images of {args.size}x{args.size} (MVTec AD layout)"
    )


if __name__ == "__main__":
    main()
