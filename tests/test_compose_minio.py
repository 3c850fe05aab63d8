"""MinIO in the deployment: the reference bucket, and one identity per service whose policy is the Python description
(leadersboard/store_access.py), as the local stack's SeaweedFS identities are (tests/test_store_identities.py)."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from leadersboard.store_access import (
    MINIO_BUCKET_VARS,
    MLFLOW,
    RUNNER,
    SCORER,
    SERVICES,
    Bucket,
    access,
    compose_key_vars,
    render_minio_identities,
)
from tests.compose_fixtures import (
    MINIO_INIT,
    REQUIRED_FROM_ENV_FILE,
    app_settings,
    environment,
    init_script_lines,
    interpolate_str,
    prefix_of,
    runner_services,
    settings_class,
)


def store_identity_of(name: str) -> str:
    """The S3 identity each compose service must use."""
    return RUNNER if name.startswith("runner-gpu") else name


def _generated_block() -> str:
    found = re.search(r"# BEGIN generated identities\n(.*)# END generated identities", MINIO_INIT.read_text(), re.S)
    assert found, "init.sh lost its generated identities block"
    return found[1]


def _policies(services: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each service's policy as minio-init hands it to MinIO: the here-documents, with minio-init's environment."""
    variables = environment(services["minio-init"])
    documents = re.findall(r"cat > /tmp/policy-(\w+)\.json <<POLICY\n(.*?)\nPOLICY\n", _generated_block(), re.S)
    return {service: json.loads(interpolate_str(text, variables)) for service, text in documents}


def _actions_by_resource(policy: dict[str, Any]) -> dict[str, set[str]]:
    granted: dict[str, set[str]] = {}
    for statement in policy["Statement"]:
        assert statement["Effect"] == "Allow"
        for resource in statement["Resource"]:
            granted.setdefault(resource, set()).update(statement["Action"])
    return granted


def test_init_sh_carries_exactly_the_python_description() -> None:
    assert _generated_block() == render_minio_identities(), "regenerate it: python -m leadersboard.store_access"
    calls = [words for words in init_script_lines() if words[0] == "ensure_identity"]
    assert [words[1] for words in calls] == list(SERVICES), "one identity per service"
    for words in calls:
        access_var, secret_var = compose_key_vars(words[1])
        assert words[2:4] == [f"${access_var}", f"${secret_var}"]


def test_minio_init_creates_both_buckets_private(services: dict[str, Any]) -> None:
    lines = init_script_lines()
    for var in MINIO_BUCKET_VARS.values():
        assert ["mc", "mb", "--ignore-existing", f"$ALIAS/{var}"] in lines, var
        assert ["mc", "anonymous", "set", "none", f"$ALIAS/{var}"] in lines, var
    init = environment(services["minio-init"])
    assert init["LB_BUCKET"] != init["LB_REFERENCE_BUCKET"]


def test_the_runners_policy_leaves_out_the_reference_bucket_and_the_scorers_reads_it(
    services: dict[str, Any],
) -> None:
    policies = _policies(services)
    assert set(policies) == set(SERVICES)
    init = environment(services["minio-init"])
    main, reference = f"arn:aws:s3:::{init['LB_BUCKET']}", f"arn:aws:s3:::{init['LB_REFERENCE_BUCKET']}"
    runner = _actions_by_resource(policies[RUNNER])
    assert set(runner) == {main, f"{main}/*"}, "a runner's key must not reach the reference bucket"
    assert "s3:GetObject" in runner[f"{main}/*"] and "s3:PutObject" in runner[f"{main}/*"]
    scorer = _actions_by_resource(policies[SCORER])
    assert scorer[f"{reference}/*"] == {"s3:GetObject"}, "the scorer only reads the reference part"
    for service, policy in policies.items():
        granted = _actions_by_resource(policy)
        assert not any("*" in action for actions in granted.values() for action in actions), service
        assert all(resource in {main, f"{main}/*", reference, f"{reference}/*"} for resource in granted), service
        if f"{reference}/*" in granted:
            assert service in {SCORER, "ingest"}, f"{service} must not reach the reference bucket"


@pytest.mark.parametrize("name", ["ingest", "dispatcher", "scorer", "runner-gpu0"])
def test_each_service_uses_its_own_identity(
    name: str, raw: dict[str, Any], services: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    cls = settings_class(name)
    assert cls is not None
    prefix = prefix_of(cls)
    raw_env = environment(raw["services"][name])
    own = compose_key_vars(store_identity_of(name))
    for field, var in zip(("S3_ACCESS_KEY", "S3_SECRET_KEY"), own, strict=True):
        match = REQUIRED_FROM_ENV_FILE.match(raw_env[f"{prefix}{field}"])
        assert match and match["var"] == var, f"{name}: {prefix}{field} must be ${{{var}:?...}}"
    # minio-init creates that identity from the very same .env variables.
    init = environment(raw["services"]["minio-init"])
    for var in own:
        match = REQUIRED_FROM_ENV_FILE.match(init[var])
        assert match and match["var"] == var
    settings = app_settings(name, services, monkeypatch)
    reference = environment(services["minio-init"])["LB_REFERENCE_BUCKET"]
    if Bucket.REFERENCE in access(store_identity_of(name)):
        assert settings.reference_bucket == reference, name  # type: ignore[attr-defined]


def test_no_two_services_share_an_identity(raw: dict[str, Any]) -> None:
    used: dict[str, str] = {}
    for name, service in raw["services"].items():
        for var, value in environment(service).items():
            if var.endswith("S3_ACCESS_KEY") or var == "AWS_ACCESS_KEY_ID":
                match = REQUIRED_FROM_ENV_FILE.match(value)
                assert match, f"{name}: {var}"
                identity = match["var"]
                owner = store_identity_of(name)
                assert used.setdefault(identity, owner) == owner, f"{name} and {used[identity]} share {identity}"
    assert set(used) == {compose_key_vars(service)[0] for service in SERVICES}
    assert used[compose_key_vars(MLFLOW)[0]] == MLFLOW
    assert {store_identity_of(name) for name in runner_services(raw["services"])} == {RUNNER}
