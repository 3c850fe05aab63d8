"""examples/padim-benchmark end to end without the stack: the generated benchmark (make_benchmark.py defaults) is
split as the platform splits it, the example runs the way the runner runs it (real anomalib, CPU, offline, the
public part at `benchmark/`), and the platform's scorer scores its predictions against the reference.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from leadersboard.benchmarks.layouts import open_benchmark
from leadersboard.benchmarks.split import REFERENCE_FILE, tree_sha256, write_split
from leadersboard.models.benchmarks import Reference
from leadersboard.scoring.score import score

pytestmark = pytest.mark.slow

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "padim-benchmark"


def test_the_example_trains_on_train_predicts_every_test_image_and_scores_above_0_9(tmp_path: Path) -> None:
    subprocess.run([sys.executable, str(EXAMPLE / "make_benchmark.py"), str(tmp_path / "source")], check=True)
    public, reference_root = tmp_path / "public", tmp_path / "reference"
    with open_benchmark(tmp_path / "source") as source:
        split = write_split(source, public, reference_root, benchmark="synthetic", benchmark_version=1)
    work = tmp_path / "work"
    work.mkdir()
    (work / "benchmark").symlink_to(public)
    for name in ("main.py", "config.yaml"):
        (work / name).write_bytes((EXAMPLE / name).read_bytes())

    job = subprocess.run(
        [sys.executable, "main.py", "--config", "config.yaml", "--output", str(work / "out")],
        cwd=work,
        env={"PATH": os.defpath, "HOME": str(work), "LANG": "C.UTF-8", "HF_HUB_OFFLINE": "1"},
        capture_output=True,
        text=True,
    )
    assert job.returncode == 0, job.stdout[-3000:] + job.stderr[-3000:]
    assert tree_sha256(public) == split.public_sha256  # the runner mounts it read-only: nothing written there

    predictions = work / "out" / "predictions"
    test_ids = {file.removesuffix(".png") for category in split.index.categories.values() for file in category.test}
    rows = (predictions / "scores.csv").read_text().splitlines()
    assert rows[0] == "image_id,score"
    assert sorted(row.split(",")[0] for row in rows[1:]) == sorted(test_ids)
    maps = sorted((predictions / "maps").iterdir())
    assert [path.stem for path in maps] == sorted(test_ids)
    anomaly_map = np.load(maps[0])
    assert (anomaly_map.dtype, anomaly_map.ndim) == (np.float16, 2)

    reference = Reference.model_validate_json((reference_root / REFERENCE_FILE).read_text())
    scores = score(predictions, reference, reference_root)
    assert scores.image_AUROC.value > 0.9
    assert scores.pixel_AUROC is not None and scores.pixel_AUROC.value > 0.9
    assert set(scores.per_category) == set(split.index.categories)

    self_reported = json.loads((work / "out" / "metrics.json").read_text())
    assert self_reported["metrics"]["test_images"] == len(test_ids)
    assert self_reported["metrics"]["train_time_s"] > 0
    assert all(isinstance(value, str) for value in self_reported["params"].values())
    assert sorted(path.name for path in (work / "out").iterdir()) == ["metrics.json", "predictions", "training.log"]
