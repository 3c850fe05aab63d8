"""Fill the shared, read-only weights cache that sandboxed jobs see as HF_HOME and TORCH_HOME.

Jobs have no network, so `pre_trained: true` works only with weights provisioned beforehand. On a machine
with internet access, as the admin (the directory then goes read-only into every job):

    python -m gpu_runner.weights --cache /srv/leadersboard/weights --timm resnet18 --timm wide_resnet50_2
    # then on each runner: LB_RUNNER_WEIGHTS_CACHE_DIR=/srv/leadersboard/weights

It downloads with timm (what anomalib's feature extractors call) into the Hugging Face hub cache layout
under `--cache`, then loads each model again offline, the way a job will.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

__all__ = ["cache_environment", "fill_cache", "main", "make_readable"]


def cache_environment(cache: Path) -> dict[str, str]:
    """The variables a job gets for the cache (gpu_runner.execute.job_environment sets the same)."""
    return {"HF_HOME": str(cache), "TORCH_HOME": str(cache)}


def fill_cache(cache: Path, timm_models: list[str]) -> None:
    cache.mkdir(parents=True, exist_ok=True)
    os.environ.update(cache_environment(cache))  # before huggingface_hub or timm read them
    import timm

    for name in timm_models:
        print(f"downloading {name} into {cache}", flush=True)
        timm.create_model(name, pretrained=True)
    os.environ["HF_HUB_OFFLINE"] = "1"
    for name in timm_models:
        timm.create_model(name, pretrained=True)
        print(f"{name}: loads offline from {cache}", flush=True)
    make_readable(cache)


def make_readable(cache: Path) -> None:
    """Jobs run as an unprivileged uid: every file must be world-readable (safetensors writes 0600)."""
    for path in [cache, *cache.rglob("*")]:
        if not path.is_symlink():
            path.chmod(path.stat().st_mode | (0o555 if path.is_dir() else 0o444))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m gpu_runner.weights", description="Fill the read-only weights cache of sandboxed jobs."
    )
    parser.add_argument("--cache", type=Path, required=True, help="the weights cache directory to fill")
    parser.add_argument("--timm", action="append", default=[], metavar="MODEL", help="a timm model, e.g. resnet18")
    args = parser.parse_args(argv)
    if not args.timm:
        parser.error("name at least one model with --timm")
    try:
        fill_cache(args.cache.resolve(), args.timm)
    except Exception as exc:  # no network, unknown model...
        print(f"could not fill the cache: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
