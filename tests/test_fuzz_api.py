"""The HTTP API fuzzed from its own OpenAPI document (schemathesis) against the real ingest process."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from pydantic import SecretStr
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from ingest.settings import IngestSettings
from leadersboard.settings import S3Settings, settings_env
from leadersboard.stack.procs import ManagedProcess, free_port, http_ready
from leadersboard.stack.services import NatsServer, start_nats
from leadersboard.tokens import new_token

ADMIN = new_token()
# What the API promises: no 5xx, only documented status codes and content types, bodies as documented.
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture(scope="module")
def ingest_url(tmp_path_factory: pytest.TempPathFactory, seaweed: object) -> Iterator[str]:
    root = tmp_path_factory.mktemp("fuzz")
    nats: NatsServer = start_nats(root, port=free_port())
    s3: S3Settings = seaweed.settings()  # type: ignore[attr-defined]
    from leadersboard.s3 import ensure_bucket, make_client

    ensure_bucket(make_client(s3), s3.bucket)
    port = free_port()
    settings = IngestSettings(
        **nats.settings().model_dump(), **s3.model_dump(), port=port, admin_token=SecretStr(ADMIN),
        manifest_secret=SecretStr("fuzz-secret"),
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    ingest = ManagedProcess(
        "ingest", [sys.executable, "-m", "ingest"], root / "ingest.log", env=settings_env(settings),
        ready=http_ready(f"{url}/api/v1/health"),
    )  # fmt: skip
    ingest.start().wait_ready(60)
    try:
        yield url
    finally:
        ingest.stop()
        nats.process.stop()
        assert "Traceback" not in Path(root / "ingest.log").read_text(), "ingest logged an unhandled error"


@pytest.fixture(scope="module")
def api_schema(ingest_url: str) -> schemathesis.BaseSchema:
    schema = schemathesis.openapi.from_url(f"{ingest_url}/api/v1/openapi.json")
    schema.config.update(base_url=ingest_url)
    return schema


@pytest.fixture(scope="module")
def user_token(ingest_url: str) -> str:
    response = httpx.post(f"{ingest_url}/api/v1/admin/tokens", json={"user": "fuzzer"},
                          headers={"Authorization": f"Bearer {ADMIN}"})  # fmt: skip
    response.raise_for_status()
    return str(response.json()["token"])


def fuzz(schema: schemathesis.BaseSchema, token: str, max_examples: int = 25) -> list[str]:
    """Every operation of the document, with generated valid and invalid inputs; the failures found."""
    failures = []
    for result in schema.get_all_operations():
        operation = result.ok()

        @settings(max_examples=max_examples, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))  # fmt: skip
        @given(case=operation.as_strategy())
        def check(case: schemathesis.Case) -> None:
            case.call_and_validate(headers={"Authorization": f"Bearer {token}"}, checks=CHECKS)

        try:
            check()
        except Exception as exc:  # the check's own report names the request and the broken promise
            failures.append(f"{operation.label}: {exc}"[:2000])
    return failures


@pytest.mark.slow
def test_as_a_user_no_server_error_and_responses_match_the_schema(api_schema, user_token: str) -> None:
    assert fuzz(api_schema, user_token) == []


@pytest.mark.slow
def test_as_an_admin_no_server_error_and_responses_match_the_schema(api_schema) -> None:
    assert fuzz(api_schema, ADMIN) == []
