"""NATS in the deployment: each client its own user, nats.conf's permissions are the Python description, every
service on the same topology, and MinIO publishing manifest events to the events subject with JetStream."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from dispatcher.settings import DispatcherSettings
from leadersboard import keys
from leadersboard.nats_permissions import (
    DISPATCHER_CONSUMER,
    RUNNER_CONSUMER,
    SCORER_CONSUMER,
    compose_password_var,
    render_authorization,
)
from leadersboard.nats_permissions import USERS as NATS_USERS
from leadersboard.settings import NatsSettings
from tests.compose_fixtures import (
    NATS_CONF,
    PORTS,
    REQUIRED_FROM_ENV_FILE,
    RUNNER_SERVICE,
    THIRD_PARTY_SECRETS,
    app_settings,
    command_args,
    environment,
    init_script_lines,
    minio_targets,
    nats_services,
    on_named_volume,
    option,
    prefix_of,
    s3_services,
    settings_class,
    url,
)


def nats_user_of(name: str) -> str:
    """The NATS user each compose service must connect as (leadersboard/nats_permissions.py)."""
    if RUNNER_SERVICE.match(name):
        return "runner"
    return {
        "nats-init": "admin",
        "ingest": "ingest",
        "dispatcher": "dispatcher",
        "scorer": "scorer",
        "minio": "events",
    }[name]


def test_every_nats_client_connects_as_its_own_user(
    raw: dict[str, Any], services: dict[str, Any], monkeypatch: pytest.MonkeyPatch, env: dict[str, str]
) -> None:
    server = environment(services["nats"])
    assert {var: server[var] for var in THIRD_PARTY_SECRETS["nats"]} == {
        compose_password_var(user): env[compose_password_var(user)] for user in NATS_USERS
    }
    clients = [name for name in nats_services(services)] + ["minio"]
    assert {nats_user_of(name) for name in clients} == set(NATS_USERS), "every NATS user has its client"
    for name in clients:
        user = nats_user_of(name)
        own = compose_password_var(user)
        if name == "minio":
            raw_vars = environment(raw["services"]["minio"])
            assert environment(services["minio"])["MINIO_NOTIFY_NATS_USERNAME_LB"] == user
            raw_password = raw_vars["MINIO_NOTIFY_NATS_PASSWORD_LB"]
        else:
            settings = app_settings(name, services, monkeypatch)
            assert isinstance(settings, NatsSettings)
            assert settings.nats_user == user, f"{name} must connect as NATS user {user}"
            raw_password = environment(raw["services"][name])[f"{prefix_of(settings_class(name))}NATS_PASSWORD"]  # type: ignore[arg-type]
        # Its own password, required from .env: never another user's, never a default.
        match = REQUIRED_FROM_ENV_FILE.match(raw_password)
        assert match and match["var"] == own, f"{name}: the password must be ${{{own}:?...}}, not {raw_password}"
    assert not any(re.match(r"MINIO_NOTIFY_NATS_TOKEN_", var) for var in environment(services["minio"]))


def test_nats_conf_grants_exactly_the_python_description() -> None:
    """nats.conf's users and permissions are leadersboard/nats_permissions.py's, as the local stack's are."""
    text = NATS_CONF.read_text()
    generated = re.search(r"# BEGIN generated authorization\n(.*)# END generated authorization", text, re.S)
    assert generated, "nats.conf lost its generated authorization block"
    expected = render_authorization(NatsSettings(), {user: f"${compose_password_var(user)}" for user in NATS_USERS})
    assert generated[1] == expected, "regenerate it: python -m leadersboard.nats_permissions"
    assert text.count("authorization {") == 1, "one authorization block only"
    # No shared token beside the users, and no user that anonymous clients would become.
    assert not re.search(r"^\s*(token|no_auth_user)\s*[:=]", text, re.M)


def test_compose_uses_the_topology_names_the_permissions_name(
    services: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The permissions in nats.conf are rendered for the default stream, subject, bucket and consumer names.
    dispatcher = app_settings("dispatcher", services, monkeypatch)
    runner = app_settings("runner-gpu0", services, monkeypatch)
    scorer = app_settings("scorer", services, monkeypatch)
    assert dispatcher.consumer_name == DISPATCHER_CONSUMER  # type: ignore[attr-defined]
    assert runner.consumer_name == RUNNER_CONSUMER  # type: ignore[attr-defined]
    assert scorer.consumer_name == SCORER_CONSUMER  # type: ignore[attr-defined]
    defaults = NatsSettings()
    for name in nats_services(services):
        settings = app_settings(name, services, monkeypatch)
        for field in NatsSettings.model_fields:
            if field not in {"nats_url", "nats_user", "nats_password", "nats_replicas"}:
                assert getattr(settings, field) == getattr(defaults, field), f"{name}: {field}"


def test_nats_config_is_valid_for_nats_server(tmp_path: Path) -> None:
    from tools.stack.procs import bin_path

    nats_server = bin_path("nats-server")
    conf = tmp_path / "nats.conf"
    conf.write_text(re.sub(r"store_dir:\s*\S+", f"store_dir: {tmp_path / 'js'}", NATS_CONF.read_text()))
    passwords = {compose_password_var(user): f"pw{user}" for user in NATS_USERS}
    variables = {**passwords, "NATS_SERVER_NAME": "lb-nats-1"}
    checked = subprocess.run(
        [nats_server, "-t", "-c", str(conf)],
        env={**os.environ, **variables},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    missing = subprocess.run(
        [nats_server, "-t", "-c", str(conf)],
        env={k: v for k, v in (os.environ | passwords).items() if k != compose_password_var("runner")}
        | {"NATS_SERVER_NAME": "x"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert missing.returncode != 0, "nats-server must refuse to start without every user's password"


# --- MinIO publishes to the subject and bucket the services use ---------------------------------


def test_all_services_agree_on_the_nats_topology_and_the_bucket(
    services: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    topology = [name for name in NatsSettings.model_fields if name not in {"nats_url", "nats_user", "nats_password"}]
    seen: dict[str, set[Any]] = {}
    for name in nats_services(services):
        settings = app_settings(name, services, monkeypatch)
        for field in [*topology, "nats_url"]:
            seen.setdefault(field, set()).add(getattr(settings, field))
    for field, values in seen.items():
        assert len(values) == 1, f"services disagree on {field}: {values}"
    buckets = {app_settings(name, services, monkeypatch).bucket for name in s3_services(services)}  # type: ignore[attr-defined]
    assert buckets == {environment(services["minio-init"])["LB_BUCKET"]}
    assert len(buckets) == 1


def test_minio_publishes_to_the_events_subject_with_jetstream(
    compose: dict[str, Any], services: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    targets = minio_targets(services)
    assert list(targets) == ["LB"], targets
    target = targets["LB"]
    dispatcher = app_settings("dispatcher", services, monkeypatch)
    assert isinstance(dispatcher, DispatcherSettings)
    assert target["ENABLE"] == "on"
    assert target["JETSTREAM"] == "on"
    assert target["SUBJECT"] == dispatcher.events_subject == NatsSettings().events_subject
    host, _, port = target["ADDRESS"].partition(":")
    nats_url = url(dispatcher.nats_url)
    assert (host, int(port)) == (nats_url.hostname, nats_url.port)
    # The persistent outbox survives restarts.
    assert on_named_volume(services["minio"], target["QUEUE_DIR"], set(compose["volumes"]))


def test_minio_init_adds_the_event_rule_for_manifests(services: dict[str, Any]) -> None:
    lines = init_script_lines()
    assignments = {
        words[0].split("=", 1)[0]: words[0].split("=", 1)[1] for words in lines if re.match(r"^\w+=", words[0])
    }
    variables = {**environment(services["minio-init"]), **assignments}

    def expand(word: str) -> str:
        return re.sub(r"\$\{?(\w+)\}?", lambda m: variables[m[1]], word)

    events = [[expand(w) for w in words] for words in lines if words[:3] == ["mc", "event", "add"]]
    assert len(events) == 1, events
    event = events[0]
    alias_bucket, arn = event[3], event[4]
    _alias, _, bucket = alias_bucket.partition("/")
    assert bucket == variables["LB_BUCKET"]
    alias_set = next(words for words in lines if words[:3] == ["mc", "alias", "set"])
    assert alias_set[4] == f"http://minio:{PORTS['s3']}"
    target_id = next(iter(minio_targets(services)))
    assert arn == f"arn:minio:sqs::{target_id}:nats"
    assert option(event, "--event") == "put"  # = s3:ObjectCreated:*
    prefix = option(event, "--prefix")
    assert prefix == "submissions/"
    manifest = keys.manifest_key("alice", keys.new_submission_id())
    assert manifest.startswith(prefix)
    suffix = option(event, "--suffix")
    assert suffix is None or manifest.endswith(suffix)
    assert not keys.file_key("alice", "0123456789ab", "main.py").endswith(suffix or "\0")
    assert "--ignore-existing" in event, "minio-init runs on every `up`: it must be idempotent"
    commands = {" ".join(words[i : i + 3]) for words in lines for i, word in enumerate(words) if word == "mc"}
    assert "mc mb --ignore-existing" in commands
    assert "mc cors set" in commands
    assert "mc admin user" in commands and "mc admin policy" in commands
    # The same bucket everywhere, MLflow's artifacts included.
    destination = option(command_args(services["mlflow"]), "--artifacts-destination")
    assert destination == f"s3://{bucket}/mlflow"
