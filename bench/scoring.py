"""Scoring time and peak memory on a generated test set the size of MVTec AD (issue 13).

    .venv/bin/python bench/scoring.py                    # 15 categories, 1,725 test images, 256x256 maps
    .venv/bin/python bench/scoring.py --mask-side 1024   # masks at full MVTec AD size: maps resized up

The generator writes a reference (467 good and 1,258 defective images spread over 15 categories, masks with
one to three elliptic blobs), and predictions: scores.csv and float16 maps of 256x256 (a smooth background
plus a blurred copy of the mask, plus noise). Scoring then runs in a fresh child process (so that its peak
resident memory, `ru_maxrss`, is the scorer's alone) with the default 2,000 resamples. Target: 10 s, 2 GB.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from leadersboard.models.benchmarks import Reference, ReferenceCategory, ReferenceImage
from leadersboard.scoring.score import score

CATEGORIES = 15
GOOD_IMAGES = 467
DEFECTIVE_IMAGES = 1258
MAP_SIDE = 256


def generate(root: Path, mask_side: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    reference_root, predictions = root / "reference", root / "predictions"
    (reference_root / "masks").mkdir(parents=True)
    (predictions / "maps").mkdir(parents=True)
    goods = np.array_split(np.arange(GOOD_IMAGES), CATEGORIES)
    defectives = np.array_split(np.arange(DEFECTIVE_IMAGES), CATEGORIES)
    categories: dict[str, ReferenceCategory] = {}
    rows = ["image_id,score"]
    for number in range(CATEGORIES):
        images = []
        for label in [0] * goods[number].size + [1] * defectives[number].size:
            image_id = rng.bytes(8).hex()
            mask = _blobs(rng, mask_side) if label else Image.new("L", (mask_side, mask_side))
            mask_path = None
            if label:
                mask_path = f"masks/{image_id}.png"
                mask.save(reference_root / mask_path)
            anomaly_map = _anomaly_map(rng, mask)
            np.save(predictions / "maps" / f"{image_id}.npy", anomaly_map)
            rows.append(f"{image_id},{float(anomaly_map.max()) + rng.normal(0, 0.3):.6f}")
            images.append(ReferenceImage(id=image_id, label=label, mask=mask_path, width=mask_side, height=mask_side))
        categories[f"category{number:02d}"] = ReferenceCategory(images=images)
    reference = Reference(benchmark="bench", benchmark_version=1, categories=categories)
    (reference_root / "reference.json").write_text(reference.model_dump_json())
    (predictions / "scores.csv").write_text("\n".join(rows) + "\n")


def _blobs(rng: np.random.Generator, side: int) -> Image.Image:
    mask = Image.new("L", (side, side))
    draw = ImageDraw.Draw(mask)
    for _ in range(rng.integers(1, 4)):
        x, y = rng.integers(0, side, size=2)
        rx, ry = rng.integers(side // 60 + 1, side // 8, size=2)
        draw.ellipse([x - rx, y - ry, x + rx, y + ry], fill=255)
    return mask


def _anomaly_map(rng: np.random.Generator, mask: Image.Image) -> np.ndarray:
    signal = np.asarray(mask.resize((MAP_SIDE, MAP_SIDE)).filter(ImageFilter.GaussianBlur(4)), dtype=np.float32)
    background = np.asarray(
        Image.fromarray(rng.random((16, 16), dtype=np.float32), mode="F").resize((MAP_SIDE, MAP_SIDE)),
        dtype=np.float32,
    )
    noise = rng.normal(0, 0.1, size=(MAP_SIDE, MAP_SIDE)).astype(np.float32)
    return (background + signal / 255 * 1.5 + noise).astype(np.float16)


def score_child(root: Path) -> None:
    reference = Reference.model_validate_json((root / "reference" / "reference.json").read_text())
    started = time.perf_counter()
    scores = score(root / "predictions", reference, root / "reference")
    wall_s = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_SELF)
    result = {
        "wall_s": wall_s,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "peak_rss_mib": usage.ru_maxrss / 1024,
        "load_average": os.getloadavg()[0],
        "scores": scores.model_dump(exclude={"per_category"}),
    }
    print(json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mask-side", type=int, default=MAP_SIDE)
    parser.add_argument("--score-only", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.score_only:
        score_child(args.score_only)
        return
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        generate(Path(tmp), args.mask_side)
        print(f"generated in {time.perf_counter() - started:.1f} s")
        child = subprocess.run(
            [sys.executable, __file__, "--score-only", tmp], check=True, capture_output=True, text=True
        )
        result = json.loads(child.stdout)
        print(
            f"scoring: {result['wall_s']:.2f} s wall, {result['cpu_s']:.2f} s CPU (imports included), peak RSS "
            f"{result['peak_rss_mib']:.0f} MiB, load average {result['load_average']:.1f} (target 10 s, 2 GB)"
        )
        print(json.dumps(result["scores"], indent=1))


if __name__ == "__main__":
    main()
