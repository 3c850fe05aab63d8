"""The bounds of a submission's `metadata`, checked where the create request arrives.

Metadata becomes MLflow tags (`metadata.<key>`, `method`, `description`, the run's note), its `dataset` an
MLflow experiment and a leaderboard, and all of it travels in the manifest and in the job record (a NATS
message). A value accepted here is never refused further down, where refusing it would waste a whole run
or stop a service: each bound is in `leadersboard/limits.py` with its reason.
"""

from __future__ import annotations

import json
import math
from typing import Any

from leadersboard.limits import (
    MAX_DATASET_CHARS,
    MAX_METADATA_BYTES,
    MAX_METADATA_DEPTH,
    MAX_METADATA_KEYS,
    MAX_METADATA_VALUE_CHARS,
    MAX_NAME_CHARS,
    json_depth,
    mlflow_name_problem,
)

__all__ = ["FieldProblem", "check_metadata"]

_SHOWN_KEY_CHARS = 60
_STRING_FIELDS = ("method", "description")


class FieldProblem(ValueError):
    """A problem deeper than the field whose validator found it: `path` goes on from that field's location."""

    def __init__(self, path: tuple[str, ...], problem: str) -> None:
        super().__init__(f"{'.'.join(path)}: {problem}" if path else problem)
        self.path = path
        self.problem = problem


def _shown(key: str) -> str:
    """A key as an error message names it: a huge key is cut, so the answer stays small."""
    return key if len(key) <= _SHOWN_KEY_CHARS else f"{key[:_SHOWN_KEY_CHARS]}…"


def check_metadata(metadata: dict[str, Any]) -> None:
    """Raise FieldProblem naming the first part of `metadata` (parsed JSON) that is over a bound."""
    if len(metadata) > MAX_METADATA_KEYS:
        raise FieldProblem((), f"has {len(metadata)} keys; at most {MAX_METADATA_KEYS} are allowed")
    for key in metadata:
        problem = mlflow_name_problem(key)
        if problem is not None:
            raise FieldProblem((_shown(key),), f"the key becomes an MLflow tag name, and {problem}")
    _check_known_fields(metadata)
    # Before walking it: the walk, the manifest's serializer and every later reader stay shallow.
    if json_depth(metadata, limit=MAX_METADATA_DEPTH) > MAX_METADATA_DEPTH:
        raise FieldProblem((), f"nests objects and lists more than {MAX_METADATA_DEPTH} levels deep")
    _check_values(metadata)
    size = len(json.dumps(metadata, separators=(",", ":"), ensure_ascii=False).encode("utf-8", "surrogatepass"))
    if size > MAX_METADATA_BYTES:
        raise FieldProblem((), f"is {size} bytes as compact JSON; at most {MAX_METADATA_BYTES} are allowed")


def _check_known_fields(metadata: dict[str, Any]) -> None:
    """`dataset` names an MLflow experiment and a leaderboard; `method` and `description` are shown as text."""
    if "dataset" in metadata:
        dataset = metadata["dataset"]
        if not isinstance(dataset, str):
            raise FieldProblem(("dataset",), "must be a string (the dataset's name)")
        if len(dataset) > MAX_DATASET_CHARS:
            raise FieldProblem(("dataset",), f"is {len(dataset)} characters long; at most {MAX_DATASET_CHARS}")
        problem = mlflow_name_problem(dataset)
        if problem is not None:
            raise FieldProblem(("dataset",), f"names an MLflow experiment, and {problem}")
    for name in _STRING_FIELDS:
        if name in metadata and not isinstance(metadata[name], str):
            raise FieldProblem((name,), "must be a string")


def _check_values(metadata: dict[str, Any]) -> None:
    """Every string (key or value) and number anywhere in `metadata`; iterative, like json_depth."""
    stack: list[tuple[tuple[str, ...], Any]] = [((_shown(k),), v) for k, v in metadata.items()]
    while stack:
        path, value = stack.pop()
        if isinstance(value, str) and len(value) > MAX_METADATA_VALUE_CHARS:
            raise FieldProblem(path, f"is {len(value)} characters long; at most {MAX_METADATA_VALUE_CHARS}")
        if isinstance(value, float) and not math.isfinite(value):
            raise FieldProblem(path, "must be a finite number")
        if isinstance(value, dict):
            for key, item in value.items():
                name = str(key)
                if len(name) > MAX_NAME_CHARS:
                    raise FieldProblem(
                        (*path, _shown(name)), f"the key is {len(name)} characters; at most {MAX_NAME_CHARS}"
                    )
                stack.append(((*path, name), item))
        elif isinstance(value, list):
            stack.extend(((*path, str(index)), item) for index, item in enumerate(value))
