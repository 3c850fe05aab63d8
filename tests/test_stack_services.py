"""The settings the local stack gives each of its processes (tools/stack/up.py `Stack.services`), built without
starting anything: an override wins over the value the stack sets itself, for every service, and reaches the
process through the environment it is started with."""

from __future__ import annotations

from pathlib import Path

import pytest

from tools.stack.up import Stack, StackPorts

# (the overrides' key, the process, a setting the stack itself gives that process, the override's value)
CASES = [
    ("ingest", "ingest", "s3_public_url", "https://store.example.org"),
    ("ingest", "ingest", "s3_endpoint_url", "http://10.0.0.5:9000"),
    ("dispatcher", "dispatcher", "s3_endpoint_url", "http://10.0.0.5:9000"),
    ("runner", "runner", "s3_endpoint_url", "http://10.0.0.5:9000"),
    ("runner", "runner-1", "work_dir", Path("/srv/runner")),
    ("scorer", "scorer", "reference_bucket", "other-reference"),
    ("bridge", "bridge", "bucket", "other-bucket"),
    ("frontend", "frontend", "ingest_public_url", "https://lb.example.org"),
]


@pytest.mark.parametrize(("service", "process", "name", "value"), CASES)
def test_an_override_wins_over_the_stacks_own_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, service: str, process: str, name: str, value: object
) -> None:
    stack = Stack(tmp_path / "data", ports=StackPorts.free(), runners=2, overrides={service: {name: value}})
    security_dir = tmp_path / "seaweedfs-security"
    built = {s.name: s for s in stack.services(security_dir)}[process]
    stack.overrides = {}
    own = {s.name: s for s in stack.services(security_dir)}[process].settings.model_dump()
    assert own[name] != value, "the case must override a value the stack gives"

    for variable, text in built.environment.items():  # what the process reads its settings from
        monkeypatch.setenv(variable, text)
    received = type(built.settings)().model_dump()

    assert received[name] == value
    assert {k: v for k, v in received.items() if k != name} == {k: v for k, v in own.items() if k != name}
