"""docs/deploy.md names only variables that exist and the user-facing URLs of the design's ports."""

from __future__ import annotations

import re

from leadersboard.settings import NatsSettings
from tests.compose_fixtures import DEPLOY_DOC, ENV_EXAMPLE, PORTS, SERVICE_CLASSES, prefix_of, read_env_file


def test_deploy_doc_names_only_variables_that_exist() -> None:
    text = DEPLOY_DOC.read_text()
    blocks = re.findall(r"^```[^\n]*\n(.*?)^```", text, re.M | re.S)
    assert blocks
    names = set(re.findall(r"\bLB_[A-Z0-9_*]*[A-Z0-9]", "\n".join(blocks)))
    assert names, "docs/deploy.md shows no LB_ variable at all?"
    example = read_env_file(ENV_EXAMPLE)
    prefixes = {prefix_of(cls): cls for cls in SERVICE_CLASSES}
    unknown = []
    stream_names = {value for value in NatsSettings().model_dump().values() if isinstance(value, str)}
    for name in sorted(names - stream_names):  # LB_EVENTS, LB_JOBS are streams, not variables
        if f"{name}_" in prefixes:
            continue  # a prefix alone, e.g. "LB_RUNNER_*"
        if name.startswith("LB_*_"):
            field = name.removeprefix("LB_*_").lower()
            if not all(field in cls.model_fields for cls in SERVICE_CLASSES if issubclass(cls, NatsSettings)):
                unknown.append(name)
            continue
        cls = next((c for p, c in prefixes.items() if name.startswith(p)), None)
        if cls is not None:
            if name[len(prefix_of(cls)) :].lower() not in cls.model_fields:
                unknown.append(name)
        elif name not in example:
            unknown.append(name)
    assert not unknown, f"docs/deploy.md names variables no settings class nor .env.example has: {unknown}"


def test_deploy_doc_lists_the_user_facing_urls() -> None:
    text = DEPLOY_DOC.read_text()
    for port in (PORTS["frontend"], PORTS["mlflow"], PORTS["console"]):
        assert f":{port}" in text
    assert f":{PORTS['ingest']}/api/v1" in text
