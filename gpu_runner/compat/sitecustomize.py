"""Loaded by every Python process of a job (the runner puts this directory on PYTHONPATH).

It only registers an import hook: `import anomalib.trainers` (the user guide's sample, absent from
anomalib 2.7) then loads `anomalib_trainers_compat` under that name. Nothing is imported eagerly.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import sys
from collections.abc import Sequence
from types import ModuleType

_NAME = "anomalib.trainers"
_SHIM = "anomalib_trainers_compat"


class _TrainersFinder(importlib.abc.MetaPathFinder):
    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != _NAME:
            return None
        for finder in sys.meta_path:  # a real anomalib.trainers (a later anomalib) wins
            if finder is self:
                continue
            found = getattr(finder, "find_spec", None)
            spec: importlib.machinery.ModuleSpec | None = found(fullname, path, target) if found else None
            if spec is not None:
                return spec
        shim = importlib.util.find_spec(_SHIM)
        if shim is None or shim.origin is None:
            return None
        return importlib.util.spec_from_file_location(fullname, shim.origin)


if not any(isinstance(finder, _TrainersFinder) for finder in sys.meta_path):
    sys.meta_path.insert(0, _TrainersFinder())
