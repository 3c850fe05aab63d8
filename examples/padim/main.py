"""LeadersBoard example submission: PaDiM anomaly detection with anomalib 2.7.

The runner calls, in a working directory holding the uploaded files (zips already extracted):

    python main.py --config config.yaml --output OUTDIR

and reads OUTDIR/metrics.json = {"params": {str: str}, "metrics": {str: number}}.
"""

from __future__ import annotations

import argparse
import inspect
import json
import logging
import sys
import time
from pathlib import Path

logger = logging.getLogger("padim_example")


def setup_logging(output_dir: Path) -> None:
    """Log to stdout and to OUTPUT/training.log."""
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    for handler in (logging.StreamHandler(sys.stdout), logging.FileHandler(output_dir / "training.log")):
        handler.setFormatter(fmt)
        root.addHandler(handler)


def trainer_kwargs(trainer_cfg: dict) -> dict:
    """Keep only keys that lightning's Trainer accepts; fall back to CPU when no GPU is present."""
    import torch
    from lightning.pytorch import Trainer

    # default_root_dir is always --output, so it is not taken from the config
    accepted = set(inspect.signature(Trainer.__init__).parameters) - {"self", "default_root_dir"}
    kwargs = {}
    for key, value in trainer_cfg.items():
        if key in accepted:
            kwargs[key] = value
        else:
            logger.warning("Ignoring trainer option %r (not accepted here)", key)
    if kwargs.get("accelerator") in {"gpu", "cuda"} and not torch.cuda.is_available():
        logger.warning("accelerator=%s requested but CUDA is not available; using cpu", kwargs["accelerator"])
        kwargs["accelerator"] = "cpu"
    return kwargs


def run(config_path: Path, output_dir: Path) -> dict:
    from anomalib.data import get_datamodule
    from anomalib.engine import Engine
    from anomalib.models import get_model
    from lightning.pytorch import seed_everything
    from omegaconf import OmegaConf

    cfg = OmegaConf.load(config_path)
    logger.info("Config:\n%s", OmegaConf.to_yaml(cfg))
    seed = int(cfg.get("seed", 0))
    seed_everything(seed)  # the backbone is randomly initialised (pre_trained: false)

    datamodule = get_datamodule(cfg.data)

    # `image_size` is not a Padim argument: it sets the resize done by the model's pre-processor.
    model_cfg = OmegaConf.to_container(cfg.model, resolve=True)
    image_size = model_cfg.pop("image_size", None)
    model = get_model(model_cfg)
    if image_size is not None:
        model.pre_processor = model.configure_pre_processor(image_size=tuple(image_size))
        logger.info("Pre-processor resizes images to %s", tuple(image_size))

    trainer_cfg = OmegaConf.to_container(cfg.get("trainer", {}), resolve=True)
    engine = Engine(default_root_dir=output_dir, **trainer_kwargs(trainer_cfg))

    start = time.perf_counter()
    engine.fit(model=model, datamodule=datamodule)
    train_time = time.perf_counter() - start
    results = engine.test(model=model, datamodule=datamodule)

    metrics = {
        name: float(value)
        for name, value in (results[0] if results else {}).items()
        if isinstance(value, int | float) or hasattr(value, "item")
    }
    metrics["train_time_s"] = round(train_time, 3)
    init_args = model_cfg.get("init_args", {})
    params = {
        "method": model_cfg["class_path"].split(".")[-1],
        "backbone": str(init_args.get("backbone", "")),
        "dataset": f"{cfg.data.get('name', 'folder')}/{cfg.data.init_args.get('name', '')}",
        "max_epochs": str(trainer_cfg.get("max_epochs", "")),
        "seed": str(seed),
    }
    return {"params": params, "metrics": metrics}


def main() -> int:
    parser = argparse.ArgumentParser(description="Train and test PaDiM with anomalib")
    parser.add_argument("--config", type=Path, required=True, help="path to config.yaml")
    parser.add_argument("--output", type=Path, required=True, help="directory for metrics.json and logs")
    args = parser.parse_args()

    args.output.mkdir(parents=True, exist_ok=True)
    setup_logging(args.output)
    if not args.config.is_file():
        logger.error("Config file not found: %s", args.config)
        return 2
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
