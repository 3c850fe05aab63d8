"""LeadersBoard benchmark example: PaDiM (anomalib 2.7) trained per category, predictions for the platform's scorer.

The runner mounts the benchmark's public part read-only at `benchmark/` in the working directory and calls

    python main.py --config config.yaml --output OUT

`benchmark/` holds `<category>/train/good/*` (normal images), `<category>/test/<image_id>.png` (unlabelled test
images under opaque ids) and `index.json` (the categories and their file names). For every category this script
fits PaDiM on the train images (its validation split is taken from train: the test images have no labels) and
predicts every test image. It writes

    OUT/predictions/scores.csv           `image_id,score`, one row per test image, higher = more anomalous
    OUT/predictions/maps/<image_id>.npy  the 2-D anomaly map (float16)
    OUT/metrics.json                     what it measured itself (self-reported): train and predict times

The platform scores the predictions against the labels and masks the job never sees (docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from lightning.pytorch.callbacks import BasePredictionWriter

logger = logging.getLogger("padim_benchmark")

SCORES_HEADER = "image_id,score"
FLOAT16_MAX = float(np.finfo(np.float16).max)


class PredictionWriter(BasePredictionWriter):
    """Appends each predicted batch to `scores.csv` and saves its anomaly maps as `maps/<image_id>.npy`.

    The image id is the test file's stem. Scores are anomalib's raw PaDiM scores (main.py turns its min-max
    normalization off): normalized scores are clamped to [0, 1], and the ties at 1.0 would cost AUROC."""

    def __init__(self, predictions_dir: Path) -> None:
        super().__init__(write_interval="batch")
        self.scores_csv = predictions_dir / "scores.csv"
        self.maps_dir = predictions_dir / "maps"
        self.written: list[str] = []

    def write_on_batch_end(
        self,
        trainer: Any,
        pl_module: Any,
        prediction: Any,
        batch_indices: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        scores = prediction.pred_score.detach().float().cpu().reshape(-1).tolist()
        maps = prediction.anomaly_map.detach().float().cpu().numpy()
        with self.scores_csv.open("a", encoding="utf-8") as stream:
            for path, score, anomaly_map in zip(prediction.image_path, scores, maps, strict=True):
                image_id = Path(path).stem
                stream.write(f"{image_id},{score!r}\n")  # repr: the exact float, so no ties are made up
                np.save(self.maps_dir / f"{image_id}.npy", _compact(anomaly_map.squeeze()))
                self.written.append(image_id)


def _compact(anomaly_map: np.ndarray) -> np.ndarray:
    """float16 (half the size), or float32 for values float16 cannot hold (they would turn into infinities)."""
    if np.abs(anomaly_map).max(initial=0.0) < FLOAT16_MAX:
        return anomaly_map.astype(np.float16)
    return anomaly_map.astype(np.float32)


def setup_logging(output_dir: Path) -> None:
    """Log to stdout and to OUT/training.log."""
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    for handler in (logging.StreamHandler(sys.stdout), logging.FileHandler(output_dir / "training.log")):
        handler.setFormatter(fmt)
        root.addHandler(handler)


def read_index(benchmark: Path) -> dict[str, list[str]]:
    """The test file names of each category, from `index.json`, checked against the files present."""
    index = json.loads((benchmark / "index.json").read_text(encoding="utf-8"))
    tests = {name: sorted(category["test"]) for name, category in index["categories"].items()}
    for name, files in tests.items():
        present = sorted(path.name for path in (benchmark / name / "test").iterdir())
        if present != files:
            raise RuntimeError(f"{benchmark / name / 'test'} does not hold the files index.json lists")
    return tests


def section(cfg: Any, name: str) -> dict[str, Any]:
    """A mapping of the config as plain Python values (keyword arguments for anomalib and lightning)."""
    from omegaconf import OmegaConf

    value = OmegaConf.to_container(cfg[name], resolve=True)
    if not isinstance(value, dict):
        raise TypeError(f"config.yaml: {name} must be a mapping")
    return {str(key): item for key, item in value.items()}


def fit_and_predict(category: Path, cfg: Any, writer: PredictionWriter, work_dir: Path) -> tuple[float, float]:
    """Fit PaDiM on `category/train/good`, predict `category/test/*` through `writer`; (train s, predict s)."""
    from anomalib.data import Folder, PredictDataset
    from anomalib.engine import Engine
    from anomalib.models import Padim
    from anomalib.post_processing import PostProcessor
    from torch.utils.data import DataLoader
    from torchvision.transforms.v2 import Resize

    image_size = tuple(cfg.image_size)
    datamodule = Folder(
        name=category.name,
        root=category,
        normal_dir="train/good",
        test_split_mode="none",  # no labelled test images: the benchmark's test set is predicted, not tested
        val_split_mode="from_train",  # validation (anomalib's threshold) from normal train images only
        val_split_ratio=cfg.data.val_split_ratio,
        train_batch_size=cfg.data.train_batch_size,
        eval_batch_size=cfg.data.eval_batch_size,
        num_workers=cfg.data.num_workers,
        seed=cfg.seed,
    )
    model = Padim(
        **section(cfg, "model"),
        pre_processor=Padim.configure_pre_processor(image_size=image_size),
        post_processor=PostProcessor(enable_normalization=False),  # raw scores: see PredictionWriter
        evaluator=False,  # nothing to evaluate: the job has no test labels
        visualizer=False,
    )
    trainer = section(cfg, "trainer")
    engine = Engine(default_root_dir=work_dir / category.name, logger=False, callbacks=[writer], **trainer)

    start = time.perf_counter()
    engine.fit(model=model, datamodule=datamodule)
    trained = time.perf_counter()
    # Resizing in the dataset too gives every image of a batch one size (the pre-processor's resize is then a
    # no-op); the maps come out at image_size and the scorer resizes them to each mask.
    dataset = PredictDataset(category / "test", transform=Resize(image_size, antialias=True))
    loader = DataLoader(
        dataset, batch_size=cfg.data.eval_batch_size, num_workers=cfg.data.num_workers, collate_fn=dataset.collate_fn
    )
    engine.predict(model=model, dataloaders=loader, return_predictions=False)
    return trained - start, time.perf_counter() - trained


def run(config_path: Path, output_dir: Path) -> dict[str, Any]:
    from lightning.pytorch import seed_everything
    from omegaconf import OmegaConf

    cfg = OmegaConf.load(config_path)
    logger.info("Config:\n%s", OmegaConf.to_yaml(cfg))
    seed_everything(cfg.seed)  # the backbone is randomly initialised (pre_trained: false)
    benchmark = Path(cfg.benchmark)
    tests = read_index(benchmark)

    predictions = output_dir / "predictions"
    (predictions / "maps").mkdir(parents=True, exist_ok=True)
    (predictions / "scores.csv").write_text(SCORES_HEADER + "\n", encoding="utf-8")
    writer = PredictionWriter(predictions)
    train_s = predict_s = 0.0
    # Lightning's checkpoints go to a temporary directory: the output keeps only what the platform reads.
    with tempfile.TemporaryDirectory(prefix="padim-") as work_dir:
        for name in tests:
            category_train_s, category_predict_s = fit_and_predict(benchmark / name, cfg, writer, Path(work_dir))
            logger.info("%s: trained in %.1f s, predicted in %.1f s", name, category_train_s, category_predict_s)
            train_s, predict_s = train_s + category_train_s, predict_s + category_predict_s

    expected = sorted(Path(file).stem for files in tests.values() for file in files)
    if sorted(writer.written) != expected:
        raise RuntimeError(f"predicted {len(writer.written)} test images, the benchmark has {len(expected)}")
    model = section(cfg, "model")
    return {
        "params": {
            "method": "Padim",
            "backbone": str(model.get("backbone", "")),
            "pre_trained": str(model.get("pre_trained", "")).lower(),
            "image_size": "x".join(str(side) for side in cfg.image_size),
            "categories": str(len(tests)),
            "seed": str(cfg.seed),
        },
        "metrics": {
            "train_time_s": round(train_s, 3),
            "predict_time_s": round(predict_s, 3),
            "test_images": len(expected),
        },
    }


def main() -> int:
    parser = argparse.ArgumentParser(description="Train PaDiM per benchmark category and write predictions")
    parser.add_argument("--config", type=Path, required=True, help="path to config.yaml")
    parser.add_argument("--output", type=Path, required=True, help="directory for predictions/ and metrics.json")
    args = parser.parse_args()

    args.output.mkdir(parents=True, exist_ok=True)
    setup_logging(args.output)
    try:
        result = run(args.config, args.output)
    except Exception:
        logger.exception("Run failed")
        return 1
    (args.output / "metrics.json").write_text(json.dumps(result, indent=2))
    logger.info("Wrote %s: %s", args.output / "metrics.json", json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
