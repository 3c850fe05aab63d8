"""docker-compose.yml runs MLflow with the local stack's memory settings (tools/stack/services.py)."""

from __future__ import annotations

from typing import Any

from tests.compose_fixtures import environment
from tools.stack.services import MLFLOW_FOOTPRINT_ENV


def test_compose_mlflow_has_the_stacks_memory_settings(services: dict[str, Any]) -> None:
    variables = environment(services["mlflow"])
    assert MLFLOW_FOOTPRINT_ENV.items() <= variables.items(), "docker-compose.yml's mlflow misses a setting"
