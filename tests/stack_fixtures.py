"""A whole local stack (every process of `leadersboard up`) on free ports, for end-to-end tests."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from leadersboard.client import Client
from leadersboard.models.records import JobRecord
from tools.stack.up import Stack, StackPorts

__all__ = ["admin", "client_for", "demo", "mlflow_admin_url", "running_stack", "stack", "write_submission"]

TOY_MAIN = """
import argparse, json, pathlib
parser = argparse.ArgumentParser()
parser.add_argument("--config", required=True)
parser.add_argument("--output", required=True)
args = parser.parse_args()
print("config says", pathlib.Path(args.config).read_text().strip())
out = pathlib.Path(args.output)
out.mkdir(parents=True, exist_ok=True)
{body}
"""


def write_submission(root: Path, body: str, config: str = "dataset: toy\n") -> Path:
    """A submission directory whose main.py runs `body` after parsing the guide's arguments."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "main.py").write_text(TOY_MAIN.format(body=textwrap.dedent(body)))
    (root / "config.yaml").write_text(config)
    return root


@contextmanager
def running_stack(
    data_dir: Path, ports: StackPorts | None = None, **options: Any
) -> Iterator[tuple[Stack, dict[str, Any]]]:
    stack = Stack(data_dir, ports=ports or StackPorts.free(), **{"with_frontend": False, **options})
    try:
        info = stack.start()
    except Exception as exc:
        pytest.fail(f"the stack did not start: {exc}")
    try:
        yield stack, info
    finally:
        stack.stop()


def client_for(info: dict[str, Any], token_key: str = "demo_token") -> Client:
    return Client(info["urls"]["ingest"], info[token_key])


# The shared fixtures (registered in tests/conftest.py). `stack` is module-scoped: one stack per test module,
# with the default settings. A module that needs other settings defines its own `stack` (it says which and
# why); `demo` and `admin` then use that one, since pytest resolves a fixture's arguments from the test's module.


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, dict[str, Any]]]:
    with running_stack(tmp_path_factory.mktemp("stack")) as started:
        yield started


@pytest.fixture
def demo(stack: tuple[Stack, dict[str, Any]]) -> Iterator[Client]:
    """The stack's demo user."""
    with client_for(stack[1]) as client:
        yield client


@pytest.fixture(scope="module")
def admin(stack: tuple[Stack, dict[str, Any]]) -> Iterator[Client]:
    """The stack's bootstrap admin."""
    with client_for(stack[1], "admin_token") as client:
        yield client


def mlflow_admin_url(info: dict[str, Any], user: str = "admin", token_key: str = "admin_token") -> str:
    """The public MLflow URL (ingest's proxy) with a user's name and API token in it, for MlflowClient."""
    return info["urls"]["mlflow"].replace("http://", f"http://{user}:{info[token_key]}@", 1)


def max_overlap(records: list[JobRecord]) -> int:
    """The most jobs running at once among `records` (finished ones, by their start and end times)."""
    edges = sorted([(r.started_at, 1) for r in records] + [(r.finished_at, -1) for r in records])
    running = peak = 0
    for _, step in edges:
        running += step
        peak = max(peak, running)
    return peak
