"""The HTTP API fuzzed from its own OpenAPI document (schemathesis) against the real ingest process."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from leadersboard.tokens import new_token
from tests.api_fixtures import ingest_process
from tools.stack.services import Seaweed

ADMIN = new_token()
# What the API promises: no 5xx, only documented status codes and content types, bodies as documented.
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture(scope="module")
def ingest_url(tmp_path_factory: pytest.TempPathFactory, seaweed: Seaweed) -> Iterator[str]:
    with ingest_process(tmp_path_factory.mktemp("fuzz"), seaweed, admin_token=ADMIN) as (url, log_path):
        yield url
        assert "Traceback" not in log_path.read_text(), "ingest logged an unhandled error"


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
