"""Bounds on everything a user controls, and MLflow's own naming rules, in one place.

A user's metadata, params and metric names flow into MLflow (tags, params, metrics, experiment
names) and into NATS (job records in a KV bucket, whose values must fit the server's max_payload).
Every bound here is at least as strict as the system the value flows into, so a value accepted at
the edge is never refused later, when refusing it would waste a whole run. `tests/test_limits.py`
checks the name rule against MLflow's own validator.
"""

from __future__ import annotations

import posixpath
import re

__all__ = [
    "MAX_DATASET_CHARS",
    "MAX_METADATA_BYTES",
    "MAX_METADATA_DEPTH",
    "MAX_METADATA_KEYS",
    "MAX_METADATA_VALUE_CHARS",
    "MAX_METRICS",
    "MAX_NAME_CHARS",
    "MAX_PARAMS",
    "MAX_PARAM_VALUE_CHARS",
    "MAX_RECORD_BYTES",
    "MLFLOW_MAX_EXPERIMENT_NAME_CHARS",
    "MLFLOW_MAX_KEY_CHARS",
    "MLFLOW_MAX_PARAMS_PER_BATCH",
    "MLFLOW_MAX_PARAM_VALUE_CHARS",
    "MLFLOW_MAX_RUN_NAME_CHARS",
    "MLFLOW_MAX_TAG_VALUE_CHARS",
    "MLFLOW_NAME_RULE",
    "json_depth",
    "mlflow_name_problem",
]

# MLflow 3's own limits (mlflow/utils/validation.py): the floor for ours.
MLFLOW_MAX_KEY_CHARS = 250
MLFLOW_MAX_PARAM_VALUE_CHARS = 6000
MLFLOW_MAX_TAG_VALUE_CHARS = 8000
MLFLOW_MAX_EXPERIMENT_NAME_CHARS = 500
MLFLOW_MAX_RUN_NAME_CHARS = 250
"""The `runs.name` column of MLflow's database."""
MLFLOW_MAX_PARAMS_PER_BATCH = 100
MLFLOW_NAME_RULE = (
    "names may only contain letters, digits, underscores (_), dashes (-), periods (.), spaces ( ), colons (:) "
    "and slashes (/), and must not be empty, start with '/' or hold '.' or '..' parts or a double slash"
)
_MLFLOW_NAME = re.compile(r"^[/\w.\- :]*$")

# Ours. Metadata becomes MLflow tags `metadata.<key>` (and `method`, `description`), so its keys follow
# MLflow's name rule with room for the prefix.
MAX_NAME_CHARS = 200
"""A metric name, param key or metadata key: MLflow allows 250, minus the `metadata.` prefix we add."""
MAX_METADATA_KEYS = 50
MAX_METADATA_DEPTH = 5
"""Objects and lists nested inside `metadata` at most this deep (the top-level object is depth 1)."""
MAX_METADATA_VALUE_CHARS = 5000
"""A string anywhere in metadata; the description is shown as the run's note in MLflow."""
MAX_METADATA_BYTES = 16 * 1024
"""The whole metadata object as compact JSON."""
MAX_DATASET_CHARS = 100
"""`metadata.dataset` names an MLflow experiment and a leaderboard."""
MAX_PARAMS = 100
"""Params in metrics.json: one MLflow batch."""
MAX_PARAM_VALUE_CHARS = 500
"""A param value as stored in the job record and MLflow (longer ones are cut with a note)."""
MAX_METRICS = 200
MAX_RECORD_BYTES = 256 * 1024
"""A job record in the KV bucket; NATS refuses messages over max_payload (1 MiB by default)."""


def mlflow_name_problem(name: str) -> str | None:
    """Why MLflow would refuse `name` as a metric name, param key or tag key (None: it is fine)."""
    if len(name) > MAX_NAME_CHARS:
        return f"is {len(name)} characters long; at most {MAX_NAME_CHARS} are allowed"
    if not _MLFLOW_NAME.match(name):
        return MLFLOW_NAME_RULE
    normalized = posixpath.normpath(name)
    if normalized != name or normalized == "." or normalized.startswith(("..", "/")):
        return MLFLOW_NAME_RULE
    return None


def json_depth(value: object, *, limit: int) -> int:
    """How deeply `value` (parsed JSON) nests objects and lists, counting up to `limit + 1` at most.

    Iterative, so a document nested thousands of levels deep costs no recursion.
    """
    deepest = 0
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if not isinstance(item, dict | list):
            continue
        deepest = max(deepest, depth)
        if deepest > limit:
            return deepest
        children = item.values() if isinstance(item, dict) else item
        stack.extend((child, depth + 1) for child in children)
    return deepest
