"""`anomalib.trainers.get_trainer` for the user guide's sample (removed from anomalib; absent in 2.7).

`get_trainer(config)` builds an `anomalib.engine.Engine` from `config.trainer` (plus its `default_root_dir`).
Options the trainer does not accept are dropped with a warning, and `accelerator: gpu` falls back to the
CPU with a warning when CUDA is not available, so the guide's config runs unchanged on any runner.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Mapping
from typing import Any

__all__ = ["get_trainer"]

_GPU_ACCELERATORS = {"gpu", "cuda"}


def _warn(message: str) -> None:
    print(f"[leadersboard] warning: {message}", file=sys.stderr, flush=True)


def _as_dict(section: Any) -> dict[str, Any]:
    if section is None:
        return {}
    try:
        from omegaconf import DictConfig, OmegaConf

        if isinstance(section, DictConfig):
            container = OmegaConf.to_container(section, resolve=True)
            return {str(k): v for k, v in container.items()} if isinstance(container, dict) else {}
    except ImportError:  # pragma: no cover - omegaconf comes with anomalib
        pass
    return dict(section) if isinstance(section, Mapping) else {}


def trainer_kwargs(config: Any) -> dict[str, Any]:
    """The Engine arguments taken from `config.trainer` (or from `config` itself if it has no `trainer`)."""
    import torch
    from lightning.pytorch import Trainer

    whole = _as_dict(config)
    section = _as_dict(whole["trainer"]) if "trainer" in whole else whole
    accepted = set(inspect.signature(Trainer.__init__).parameters) - {"self"}
    kwargs: dict[str, Any] = {}
    for key, value in section.items():
        if key in accepted:
            kwargs[key] = value
        else:
            _warn(f"get_trainer: ignoring trainer option {key!r} (not a Lightning Trainer argument)")
    accelerator = str(kwargs.get("accelerator", "")).lower()
    if accelerator in _GPU_ACCELERATORS and not torch.cuda.is_available():
        _warn(f"accelerator: {kwargs['accelerator']} was requested but no CUDA GPU is available; running on the CPU")
        kwargs["accelerator"] = "cpu"
    return kwargs


def get_trainer(config: Any) -> Any:
    """An anomalib Engine (it has the `fit` and `test` the guide calls) configured by `config.trainer`."""
    from anomalib.engine import Engine

    return Engine(**trainer_kwargs(config))
