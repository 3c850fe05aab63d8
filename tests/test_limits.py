"""The bounds of leadersboard/limits.py agree with MLflow's own validator and are at least as strict."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st
from mlflow.exceptions import MlflowException
from mlflow.utils import validation

from leadersboard import limits

NAME_PIECES = st.text(alphabet="aZ9_-. :/<>()%#?*\\'\"日é\t\n", max_size=12)


def mlflow_accepts(name: str) -> bool:
    try:
        validation._validate_metric_name(name)
        validation._validate_param_name(name)
        validation._validate_tag_name(name)
    except MlflowException:
        return False
    return True


@given(NAME_PIECES)
def test_the_name_rule_is_mlflows_own(name: str) -> None:
    assert (limits.mlflow_name_problem(name) is None) == mlflow_accepts(name)


@pytest.mark.parametrize("name", ["image AUROC (%)", "x<y", "", "/abs", "a//b", "a/../b", "..", "."])
def test_names_mlflow_refuses_are_refused_with_the_rule(name: str) -> None:
    assert not mlflow_accepts(name)
    assert limits.mlflow_name_problem(name) == limits.MLFLOW_NAME_RULE


def test_a_name_too_long_says_its_length() -> None:
    problem = limits.mlflow_name_problem("m" * (limits.MAX_NAME_CHARS + 1))
    assert problem is not None and str(limits.MAX_NAME_CHARS + 1) in problem


def test_our_bounds_are_within_mlflows() -> None:
    assert len("metadata.") + limits.MAX_NAME_CHARS <= validation.MAX_ENTITY_KEY_LENGTH
    assert limits.MLFLOW_MAX_KEY_CHARS == validation.MAX_ENTITY_KEY_LENGTH
    assert limits.MLFLOW_MAX_PARAM_VALUE_CHARS == validation.MAX_PARAM_VAL_LENGTH
    assert limits.MLFLOW_MAX_TAG_VALUE_CHARS == validation.MAX_TAG_VAL_LENGTH
    assert limits.MLFLOW_MAX_PARAMS_PER_BATCH == validation.MAX_PARAMS_TAGS_PER_BATCH
    assert limits.MAX_PARAMS <= validation.MAX_PARAMS_TAGS_PER_BATCH
    assert limits.MAX_METRICS <= validation.MAX_METRICS_PER_BATCH
    assert limits.MAX_METADATA_VALUE_CHARS <= validation.MAX_TAG_VAL_LENGTH
    assert limits.MAX_PARAM_VALUE_CHARS <= validation.MAX_PARAM_VAL_LENGTH
    assert limits.MAX_DATASET_CHARS <= validation.MAX_EXPERIMENT_NAME_LENGTH
    assert limits.MAX_RECORD_BYTES < 1024 * 1024  # nats-server's default max_payload


def test_depth_is_counted_without_recursion() -> None:
    assert limits.json_depth({"a": [{"b": 1}]}, limit=5) == 3
    assert limits.json_depth("flat", limit=5) == 0
    deep: object = 1
    for _ in range(100_000):
        deep = [deep]
    assert limits.json_depth(deep, limit=5) == 6  # stops counting past the limit
    assert limits.json_depth(json.loads("[" * 50 + "]" * 50), limit=100) == 50
