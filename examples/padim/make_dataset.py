"""Generate a tiny synthetic VisA-like dataset as pcb1.zip.

Layout inside the zip (the same as the user guide's VisA example):

    pcb1/Data/Images/Normal/normal_000.png   ... (textured 64x64 images)
    pcb1/Data/Images/Anomaly/anomaly_000.png ... (same texture + bright blob, every other one also a scratch)

Only the standard library, numpy and Pillow are used; output is deterministic for a given seed.

Usage:
    python examples/padim/make_dataset.py [--out DIR] [--normal 40] [--anomalous 10] [--size 64] [--seed 0]
"""

from __future__ import annotations

import argparse
import io
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

PREFIX = "pcb1/Data/Images"
# Fixed timestamp so the zip bytes are reproducible.
ZIP_DATE = (2024, 1, 1, 0, 0, 0)


def _normal_image(rng: np.random.Generator, size: int) -> np.ndarray:
    """A green "PCB-like" texture: fine grid of traces plus mild noise."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    period = 8.0
    phase = rng.uniform(0, period, size=2)
    grid = (np.sin(2 * np.pi * (x + phase[0]) / period) > 0.8) | (np.sin(2 * np.pi * (y + phase[1]) / period) > 0.8)
    base = np.stack([np.full_like(x, 30.0), np.full_like(x, 90.0), np.full_like(x, 40.0)], axis=-1)
    base[grid] = (60.0, 140.0, 70.0)
    base += rng.normal(0.0, 6.0, size=base.shape)
    return base


def _add_defect(img: np.ndarray, rng: np.random.Generator, scratch: bool) -> np.ndarray:
    """Paint a bright blob (radius 20% of the side) and, if ``scratch``, also a thick bright scratch."""
    size = img.shape[0]
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    cy, cx = rng.uniform(size * 0.3, size * 0.7, size=2)
    mask = (y - cy) ** 2 + (x - cx) ** 2 <= (size * 0.2) ** 2
    if scratch:  # line segment, 60% of the side long, through a random point at a random angle
        cx, cy = rng.uniform(size * 0.2, size * 0.8, size=2)
        angle, half = rng.uniform(0, np.pi), size * 0.3
        x0, y0 = cx - half * np.cos(angle), cy - half * np.sin(angle)
        x1, y1 = cx + half * np.cos(angle), cy + half * np.sin(angle)
        t = np.clip(((x - x0) * (x1 - x0) + (y - y0) * (y1 - y0)) / (2 * half) ** 2, 0.0, 1.0)
        dist = np.hypot(x - (x0 + t * (x1 - x0)), y - (y0 + t * (y1 - y0)))
        mask |= dist <= max(1.5, size / 24)
    img = img.copy()
    img[mask] = (240.0, 240.0, 220.0)
    return img


def _png_bytes(img: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def make_dataset_zip(out_path: Path, n_normal: int = 40, n_anomalous: int = 10, size: int = 64, seed: int = 0) -> Path:
    """Write the synthetic dataset to ``out_path`` (a .zip file) and return its path."""
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    with zipfile.ZipFile(out_path, "w", compression=zipfile.ZIP_DEFLATED) as zf:

        def add(name: str, img: np.ndarray) -> None:
            info = zipfile.ZipInfo(f"{PREFIX}/{name}", date_time=ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, _png_bytes(img))

        for i in range(n_normal):
            add(f"Normal/normal_{i:03d}.png", _normal_image(rng, size))
        for i in range(n_anomalous):
            img = _add_defect(_normal_image(rng, size), rng, scratch=i % 2 == 1)
            add(f"Anomaly/anomaly_{i:03d}.png", img)
    return out_path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent, help="output directory")
    parser.add_argument("--normal", type=int, default=40, help="number of normal images")
    parser.add_argument("--anomalous", type=int, default=10, help="number of anomalous images")
    parser.add_argument("--size", type=int, default=64, help="image side length in pixels")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    path = make_dataset_zip(args.out / "pcb1.zip", args.normal, args.anomalous, args.size, args.seed)
    print(f"wrote {path} ({args.normal} normal, {args.anomalous} anomalous, {args.size}x{args.size})")


if __name__ == "__main__":
    main()
