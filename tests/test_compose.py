"""The production deployment (docker-compose.yml, .env.example, infra/, docs/deploy.md) agrees with the code.

No Docker engine and no network: the compose file is parsed, interpolated the way `docker compose` does
with a `.env` made from `.env.example`, validated against the official Compose specification schema
(vendored by the `check-jsonschema` package), and then checked against the settings classes, the NATS
topology, MinIO's event configuration and the dispatcher's event handling. The lists of environment
variables come from the settings classes at test time, so a new setting is checked without editing here.
"""

from __future__ import annotations

import ast
import asyncio
import configparser
import copy
import fnmatch
import importlib.resources
import json
import os
import re
import shlex
import subprocess
import tomllib
import urllib.parse
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator
from pydantic import SecretStr
from pydantic_settings import BaseSettings

from dispatcher.intake import Intake
from dispatcher.service import CREATED_EVENTS
from dispatcher.settings import DispatcherSettings
from frontend.settings import FrontendSettings
from gpu_runner.settings import RunnerSettings
from ingest.settings import IngestSettings
from leadersboard import keys
from leadersboard.models.s3_events import S3EventEnvelope
from leadersboard.nats_permissions import (
    DISPATCHER_CONSUMER,
    RUNNER_CONSUMER,
    compose_password_var,
    render_authorization,
)
from leadersboard.nats_permissions import USERS as NATS_USERS
from leadersboard.settings import NatsSettings, S3Settings
from tests.reference import MINIO_EVENT_SAMPLE
from tools.bridge.settings import BridgeSettings

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "docker-compose.yml"
GPU_HOST_FILE = ROOT / "infra" / "compose.gpu-host.yml"  # runners on additional GPU hosts
ENV_EXAMPLE = ROOT / ".env.example"
DEPLOY_DOC = ROOT / "docs" / "deploy.md"
NATS_CONF = ROOT / "infra" / "nats" / "nats.conf"
MINIO_INIT = ROOT / "infra" / "minio" / "init.sh"

# The design's fixed ports (DESIGN.md, "Default ports").
PORTS = {"frontend": 8501, "mlflow": 5010, "ingest": 8000, "s3": 9000, "console": 9001, "nats": 4222}

# Which settings class reads each LeadersBoard container's environment. nats-init declares the NATS
# topology with the dispatcher's settings. The bridge is local-only: MinIO publishes natively here.
APP_SETTINGS: dict[str, type[BaseSettings]] = {
    "ingest": IngestSettings,
    "dispatcher": DispatcherSettings,
    "nats-init": DispatcherSettings,
    "frontend": FrontendSettings,
}
# nats-init only declares the NATS topology: of the dispatcher's settings it needs the NATS ones alone.
NATS_ONLY = {"nats-init"}
RUNNER_SERVICE = re.compile(r"^runner-gpu(?P<n>\d+)$")
THIRD_PARTY = {"nats", "minio", "minio-init", "mlflow"}
ONE_SHOT = {"nats-init", "minio-init"}
SERVICE_CLASSES: tuple[type[BaseSettings], ...] = (
    IngestSettings,
    DispatcherSettings,
    RunnerSettings,
    FrontendSettings,
    BridgeSettings,
)
MLFLOW_AUTH_SECRETS = ["MLFLOW_AUTH_ADMIN_PASSWORD", "MLFLOW_FLASK_SERVER_SECRET_KEY"]
# Values that must never have a default in the compose file: compose must refuse to start without them.
THIRD_PARTY_SECRETS = {
    "minio": ["MINIO_ROOT_USER", "MINIO_ROOT_PASSWORD"],
    "minio-init": ["MINIO_ROOT_USER", "MINIO_ROOT_PASSWORD", "LB_S3_ACCESS_KEY", "LB_S3_SECRET_KEY"],
    "mlflow": ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", *MLFLOW_AUTH_SECRETS],
    "nats": [compose_password_var(user) for user in NATS_USERS],
}
REQUIRED_FROM_ENV_FILE = re.compile(r"^\$\{(?P<var>[A-Za-z_][A-Za-z0-9_]*):\?[^}]+\}$")


# --- compose interpolation (the subset of the Compose spec's syntax this file may use) -------------


class MissingVariable(Exception):
    pass


_VARIABLE = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}"
    r"|(?P<named>[A-Za-z_][A-Za-z0-9_]*))"
)


def interpolate_str(text: str, env: dict[str, str]) -> str:
    def replace(match: re.Match[str]) -> str:
        if match["escaped"]:
            return "$"
        name = match["braced"] or match["named"]
        op, arg = match["op"], match["arg"] or ""
        value = env.get(name)
        unset_or_empty = not value
        if op in (":-", "-"):
            return arg if (unset_or_empty if op == ":-" else value is None) else str(value)
        if op in (":?", "?"):
            if unset_or_empty if op == ":?" else value is None:
                raise MissingVariable(f"{name}: {arg}")
            return str(value)
        if op in (":+", "+"):
            return arg if not (unset_or_empty if op == ":+" else value is None) else ""
        return value or ""

    return _VARIABLE.sub(replace, text)


def interpolate(node: Any, env: dict[str, str]) -> Any:
    if isinstance(node, str):
        return interpolate_str(node, env)
    if isinstance(node, list):
        return [interpolate(item, env) for item in node]
    if isinstance(node, dict):
        return {key: interpolate(value, env) for key, value in node.items()}
    return node


def referenced_variables(node: Any) -> dict[str, set[str]]:
    """Every `${VAR...}` in the file, with the operators it is used with ("" for none)."""
    found: dict[str, set[str]] = {}
    if isinstance(node, str):
        for match in _VARIABLE.finditer(node):
            name = match["braced"] or match["named"]
            if name:
                found.setdefault(name, set()).add(match["op"] or "")
    elif isinstance(node, list | dict):
        for item in node.values() if isinstance(node, dict) else node:
            for name, ops in referenced_variables(item).items():
                found.setdefault(name, set()).update(ops)
    return found


def read_env_file(path: Path) -> dict[str, str]:
    env: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.partition("=")
        assert sep, f"{path.name}: not NAME=value: {line!r}"
        env[name.strip()] = value.strip()
    return env


def filled_env() -> dict[str, str]:
    """`.env.example` with every empty value filled in, as an operator would."""
    env = read_env_file(ENV_EXAMPLE)
    fills = {"LB_PUBLIC_HOST": "lb.example.org"}
    for name, value in env.items():
        if not value:
            env[name] = fills.get(name, f"test-{name.lower().replace('_', '-')}-0123456789")
    return env


# --- fixtures ---------------------------------------------------------------------------------------


def load(path: Path) -> dict[str, Any]:
    document = yaml.safe_load(path.read_text())  # resolves anchors and `<<` merge keys
    assert isinstance(document, dict)
    return document


@pytest.fixture(scope="module")
def raw() -> dict[str, Any]:
    return load(COMPOSE_FILE)


@pytest.fixture(scope="module")
def gpu_host_raw() -> dict[str, Any]:
    return load(GPU_HOST_FILE)


@pytest.fixture(scope="module")
def env() -> dict[str, str]:
    return filled_env()


@pytest.fixture(scope="module")
def compose(raw: dict[str, Any], env: dict[str, str]) -> dict[str, Any]:
    resolved = interpolate(raw, env)
    assert isinstance(resolved, dict)
    return resolved


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


@pytest.fixture(scope="module")
def gpu_host_services(gpu_host_raw: dict[str, Any], env: dict[str, str]) -> dict[str, dict[str, Any]]:
    resolved = interpolate(gpu_host_raw, env)
    assert isinstance(resolved, dict)
    return resolved["services"]


def environment(service: dict[str, Any]) -> dict[str, str]:
    value = service.get("environment") or {}
    if isinstance(value, list):  # the list form NAME=value
        value = dict(item.split("=", 1) for item in value)
    return {str(k): "" if v is None else str(v) for k, v in value.items()}


def runner_services(services: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: service for name, service in services.items() if RUNNER_SERVICE.match(name)}


def settings_class(name: str) -> type[BaseSettings] | None:
    if RUNNER_SERVICE.match(name):
        return RunnerSettings
    return APP_SETTINGS.get(name)


def used_fields(name: str) -> dict[str, Any]:
    """The fields of the service's settings class that its process uses (all of them but for NATS_ONLY)."""
    cls = settings_class(name)
    assert cls is not None
    if name in NATS_ONLY:
        return {field: info for field, info in cls.model_fields.items() if field in NatsSettings.model_fields}
    return dict(cls.model_fields)


def prefix_of(cls: type[BaseSettings]) -> str:
    return str(cls.model_config.get("env_prefix", "")).upper()


def app_settings(name: str, services: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> BaseSettings:
    """The settings object the service's process builds from its container environment."""
    cls = settings_class(name)
    assert cls is not None
    prefix = prefix_of(cls)
    for var in list(os.environ):
        if var.upper().startswith(prefix):
            monkeypatch.delenv(var)
    with monkeypatch.context() as patch:
        for var, value in environment(services[name]).items():
            patch.setenv(var, value)
        return cls()


def depends_on(service: dict[str, Any]) -> dict[str, str]:
    value = service.get("depends_on") or {}
    if isinstance(value, list):
        return {name: "service_started" for name in value}
    return {name: (spec or {}).get("condition", "service_started") for name, spec in value.items()}


def url(text: str) -> urllib.parse.SplitResult:
    return urllib.parse.urlsplit(text)


def published_ports(service: dict[str, Any]) -> dict[int, int]:
    """Container port -> host port."""
    ports: dict[int, int] = {}
    for entry in service.get("ports") or []:
        if isinstance(entry, dict):
            ports[int(entry["target"])] = int(entry["published"])
            continue
        parts = str(entry).split("/")[0].split(":")
        ports[int(parts[-1])] = int(parts[-2]) if len(parts) >= 2 else int(parts[-1])
    return ports


def command_args(service: dict[str, Any]) -> list[str]:
    command = service.get("command") or []
    return shlex.split(command) if isinstance(command, str) else [str(c) for c in command]


def option(args: list[str], name: str) -> str | None:
    for index, arg in enumerate(args):
        if arg.startswith(f"{name}="):
            return arg.split("=", 1)[1]
        if arg == name and index + 1 < len(args):
            return args[index + 1]
    return None


def volume_mounts(service: dict[str, Any]) -> list[tuple[str, str]]:
    """(source, target) of each mount in the short `SOURCE:TARGET[:MODE]` form or the long form."""
    mounts = []
    for entry in service.get("volumes") or []:
        if isinstance(entry, dict):
            mounts.append((str(entry.get("source", "")), str(entry["target"])))
        else:
            source, target = str(entry).split(":")[:2]
            mounts.append((source, target))
    return mounts


def on_named_volume(service: dict[str, Any], path: str, named: set[str]) -> bool:
    return any(
        source in named and PurePosixPath(path).is_relative_to(target) for source, target in volume_mounts(service)
    )


# --- the file itself ---------------------------------------------------------------------------------


def compose_schema_validator() -> Draft202012Validator:
    vendor = importlib.resources.files("check_jsonschema.builtin_schemas.vendor")
    schema = json.loads((vendor / "compose-spec.json").read_text())
    assert "Compose Specification" in schema.get("title", "")
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


@pytest.mark.parametrize("path", [COMPOSE_FILE, GPU_HOST_FILE], ids=["main", "gpu-host"])
def test_compose_files_validate_against_the_compose_specification(path: Path, env: dict[str, str]) -> None:
    validator = compose_schema_validator()
    written = load(path)
    for label, document in (("as written", written), ("interpolated", interpolate(written, env))):
        errors = [f"{e.json_path}: {e.message}" for e in validator.iter_errors(document)]
        assert not errors, f"{path.name} ({label}) breaks the Compose specification:\n" + "\n".join(errors)


def test_the_schema_validator_is_no_pushover(compose: dict[str, Any]) -> None:
    validator = compose_schema_validator()
    broken = copy.deepcopy(compose)
    broken["services"]["ingest"]["restart_policy"] = "always"
    assert list(validator.iter_errors(broken))


def test_services_are_the_expected_ones(services: dict[str, Any]) -> None:
    names = set(services)
    assert set(APP_SETTINGS) | THIRD_PARTY <= names
    runners = runner_services(services)
    assert runners, "at least one runner-gpuN service"
    unknown = names - set(APP_SETTINGS) - THIRD_PARTY - set(runners)
    assert not unknown, f"services this test does not know how to check: {sorted(unknown)}"
    everything = json.dumps(services)
    assert prefix_of(BridgeSettings) not in everything, "the bridge is local-only: MinIO publishes events natively"


def test_restart_policies_health_checks_and_logging(services: dict[str, Any]) -> None:
    for name, service in services.items():
        if name in ONE_SHOT:
            assert service.get("restart") == "no", f"{name} runs once: restart 'no'"
            continue
        assert service.get("restart") == "unless-stopped", name
        test = (service.get("healthcheck") or {}).get("test")
        assert test and test != ["NONE"], f"{name} needs a health check"
        assert service.get("logging", {}).get("options", {}).get("max-size"), f"{name}: rotate its logs"


def test_dependencies_exist_and_start_in_order(services: dict[str, Any]) -> None:
    for name, service in services.items():
        for dependency, condition in depends_on(service).items():
            assert dependency in services, f"{name} depends on unknown {dependency}"
            assert condition in {"service_started", "service_healthy", "service_completed_successfully"}
            if condition == "service_healthy":
                assert services[dependency].get("healthcheck"), f"{dependency} has no health check"
            if condition == "service_completed_successfully":
                assert dependency in ONE_SHOT
    # The JetStream stream must exist before MinIO publishes: NATS healthy -> nats-init completed -> minio.
    assert depends_on(services["nats-init"]) == {"nats": "service_healthy"}
    assert depends_on(services["minio"]).get("nats-init") == "service_completed_successfully"
    assert depends_on(services["minio-init"]).get("minio") == "service_healthy"
    # Every LeadersBoard service starts on a declared topology and a configured bucket.
    for name in ["ingest", "dispatcher", *runner_services(services)]:
        assert depends_on(services[name]).get("minio-init") == "service_completed_successfully", name
        assert depends_on(services[name]).get("nats-init") == "service_completed_successfully", name
    for name in runner_services(services):
        assert depends_on(services[name]).get("mlflow") == "service_healthy", name


def test_nats_init_declares_the_topology_with_the_dispatchers_settings(services: dict[str, Any]) -> None:
    args = command_args(services["nats-init"])
    assert args[:2] == ["python", "-c"]
    tree = ast.parse(args[2])  # valid Python
    calls = {ast.unparse(node.func) for node in ast.walk(tree) if isinstance(node, ast.Call)}
    assert "nats_io.ensure_topology" in calls
    assert "DispatcherSettings" in calls
    assert any(call.endswith("wait_for") for call in calls), "a bounded wait: a wrong password must fail the init"
    init, dispatcher = environment(services["nats-init"]), environment(services["dispatcher"])
    # The same NATS settings as the dispatcher, but as the admin: only the admin may declare streams.
    credentials = {f"{prefix_of(DispatcherSettings)}NATS_USER", f"{prefix_of(DispatcherSettings)}NATS_PASSWORD"}
    assert {k: v for k, v in init.items() if k not in credentials}.items() <= dispatcher.items()
    assert {var.removeprefix(prefix_of(DispatcherSettings)).lower() for var in init} <= set(NatsSettings.model_fields)


def test_named_volumes_and_bind_mounts(compose: dict[str, Any], services: dict[str, Any]) -> None:
    declared = set(compose.get("volumes") or {})
    used = set()
    for name, service in services.items():
        for source, _target in volume_mounts(service):
            if source.startswith((".", "/")):
                assert (ROOT / source).resolve().is_file(), f"{name} mounts missing {source}"
            else:
                assert source in declared, f"{name} uses undeclared volume {source}"
                used.add(source)
    assert used == declared, f"declared but unused volumes: {sorted(declared - used)}"
    # State lives on named volumes.
    nats_conf = NATS_CONF.read_text()
    store_dir = re.search(r"store_dir:\s*(\S+)", nats_conf)
    assert store_dir and on_named_volume(services["nats"], store_dir[1], declared)
    assert on_named_volume(services["minio"], command_args(services["minio"])[1], declared)
    backend = option(command_args(services["mlflow"]), "--backend-store-uri")
    assert backend and backend.startswith("sqlite:////")
    assert on_named_volume(services["mlflow"], backend.removeprefix("sqlite:///"), declared)


# --- settings: every variable is read by the service, every required one is set ---------------------


@pytest.mark.parametrize("name", [*APP_SETTINGS, "runner-gpu0"])
def test_environment_is_what_the_settings_class_reads(
    name: str, services: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    cls = settings_class(name)
    assert cls is not None
    prefix = prefix_of(cls)
    variables = environment(services[name])
    for var in variables:
        assert var.startswith(prefix), f"{name}: {var} does not start with {prefix}"
        field = var[len(prefix) :].lower()
        assert field in used_fields(name), f"{name}: {var} is no field of {cls.__name__} it uses"
    for field_name, field in used_fields(name).items():
        var = f"{prefix}{field_name}".upper()
        if field.is_required():
            assert var in variables, f"{name}: {var} is required by {cls.__name__}"
        if field.default == SecretStr(""):  # a secret whose empty default is only good for development
            assert variables.get(var), f"{name}: {var} must be set to a non-empty secret"
    # The values parse: this is the settings object the process builds.
    settings = app_settings(name, services, monkeypatch)
    for field_name, field in used_fields(name).items():
        if field.default == SecretStr(""):
            assert getattr(settings, field_name).get_secret_value(), field_name


def test_every_runner_reads_its_settings(services: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    reference = environment(services["runner-gpu0"])
    for name, service in runner_services(services).items():
        variables = environment(service)
        assert set(variables) == set(reference), f"{name} and runner-gpu0 set different variables"
        settings = app_settings(name, services, monkeypatch)
        assert isinstance(settings, RunnerSettings)


@pytest.mark.parametrize("path", [COMPOSE_FILE, GPU_HOST_FILE], ids=["main", "gpu-host"])
def test_secrets_come_from_the_env_file_without_defaults(path: Path) -> None:
    raw = load(path)
    for name, service in raw["services"].items():
        variables = environment(service)
        expected = list(THIRD_PARTY_SECRETS.get(name, []))
        cls = settings_class(name)
        if cls is not None:
            prefix = prefix_of(cls)
            expected += [
                f"{prefix}{field_name}".upper()
                for field_name, field in used_fields(name).items()
                if field.annotation is SecretStr or "SecretStr" in str(field.annotation)
                if f"{prefix}{field_name}".upper() in variables or field.default == SecretStr("")
            ]
        for var in expected:
            assert var in variables, f"{name}: {var} is not set"
            assert REQUIRED_FROM_ENV_FILE.match(variables[var]), (
                f"{name}: {var}={variables[var]!r} must be ${{VAR:?...}}: no default secret, compose refuses to start"
            )
    for name, value in environment(raw["services"].get("minio", {})).items():
        if re.match(r"MINIO_NOTIFY_NATS_(TOKEN|PASSWORD)_", name):
            assert REQUIRED_FROM_ENV_FILE.match(value), name


def test_env_example_documents_every_variable_and_sets_no_secret(
    raw: dict[str, Any], gpu_host_raw: dict[str, Any]
) -> None:
    example = read_env_file(ENV_EXAMPLE)
    referenced = referenced_variables([raw, gpu_host_raw])
    assert set(referenced) == set(example), (
        f"in compose only: {sorted(set(referenced) - set(example))}; "
        f"in .env.example only: {sorted(set(example) - set(referenced))}"
    )
    for var, ops in referenced.items():
        if ":?" in ops:
            assert example[var] == "", f".env.example must leave {var} empty: a copied .env must not start as is"
        else:
            assert ops <= {":-"}, f"{var} is used as {ops}: give it a default or make it required"
    # A .env copied unchanged from the example does not start: every required value is missing.
    with pytest.raises(MissingVariable):
        interpolate(raw, example)
    for var, ops in referenced.items():
        if ":?" in ops:
            with pytest.raises(MissingVariable, match=var):
                interpolate([raw, gpu_host_raw], {**filled_env(), var: ""})


def nats_user_of(name: str) -> str:
    """The NATS user each compose service must connect as (leadersboard/nats_permissions.py)."""
    if RUNNER_SERVICE.match(name):
        return "runner"
    return {"nats-init": "admin", "ingest": "ingest", "dispatcher": "dispatcher", "minio": "events"}[name]


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
    assert dispatcher.consumer_name == DISPATCHER_CONSUMER  # type: ignore[attr-defined]
    assert runner.consumer_name == RUNNER_CONSUMER  # type: ignore[attr-defined]
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


# --- names and ports agree between compose, MinIO's event configuration and the code ----------------


def nats_services(services: dict[str, Any]) -> list[str]:
    return [name for name in services if (cls := settings_class(name)) is not None and issubclass(cls, NatsSettings)]


def s3_services(services: dict[str, Any]) -> list[str]:
    return [
        name
        for name in services
        if (cls := settings_class(name)) is not None and issubclass(cls, S3Settings) and name not in NATS_ONLY
    ]


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


def minio_targets(services: dict[str, Any]) -> dict[str, dict[str, str]]:
    targets: dict[str, dict[str, str]] = {}
    for var, value in environment(services["minio"]).items():
        match = re.fullmatch(r"MINIO_NOTIFY_NATS_([A-Z_]+?)_([A-Za-z0-9]+)", var)
        if match:
            targets.setdefault(match[2], {})[match[1]] = value
    return targets


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


def init_script_lines() -> list[list[str]]:
    """infra/minio/init.sh as shell words per command (comments and here-documents dropped)."""
    lines, heredoc = [], None
    for line in MINIO_INIT.read_text().splitlines():
        if heredoc:
            heredoc = None if line.strip() == heredoc else heredoc
            continue
        words = shlex.split(line, comments=True)
        if words:
            lines.append(words)
            marker = re.search(r"<<\s*'?(\w+)'?", line)
            heredoc = marker[1] if marker else None
    return lines


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


def test_ports_agree_with_the_design_and_the_settings(
    services: dict[str, Any], monkeypatch: pytest.MonkeyPatch, env: dict[str, str]
) -> None:
    public = env["LB_PUBLIC_HOST"]
    ingest = app_settings("ingest", services, monkeypatch)
    frontend = app_settings("frontend", services, monkeypatch)
    assert isinstance(ingest, IngestSettings) and isinstance(frontend, FrontendSettings)
    # The public MLflow port is ingest's authenticating proxy; MLflow itself is not published.
    proxy = ingest.mlflow_proxy_port
    assert published_ports(services["ingest"]) == {ingest.port: PORTS["ingest"], proxy: PORTS["mlflow"]}
    assert ingest.host == "0.0.0.0"
    assert published_ports(services["frontend"]) == {frontend.port: PORTS["frontend"]}
    assert frontend.host == "0.0.0.0"
    mlflow_args = command_args(services["mlflow"])
    assert published_ports(services["mlflow"]) == {}
    assert option(mlflow_args, "--host") == "0.0.0.0"
    assert ingest.mlflow_upstream_url == f"http://mlflow:{option(mlflow_args, '--port')}"
    minio_args = command_args(services["minio"])
    assert option(minio_args, "--console-address") == f":{PORTS['console']}"
    assert published_ports(services["minio"]) == {PORTS["s3"]: PORTS["s3"], PORTS["console"]: PORTS["console"]}
    nats_port = re.search(r"^port:\s*(\d+)", NATS_CONF.read_text(), re.M)
    assert nats_port and published_ports(services["nats"]) == {int(nats_port[1]): PORTS["nats"]}
    monitor = re.search(r"^http_port:\s*(\d+)", NATS_CONF.read_text(), re.M)
    assert monitor and f":{monitor[1]}/" in " ".join(services["nats"]["healthcheck"]["test"])
    assert int(monitor[1]) not in published_ports(services["nats"]), "keep the monitoring port private"

    # Inside the compose network services use service names; what users get uses LB_PUBLIC_HOST.
    for name in nats_services(services):
        assert url(app_settings(name, services, monkeypatch).nats_url)[:2] == ("nats", f"nats:{PORTS['nats']}")  # type: ignore[attr-defined]
    for name in s3_services(services):
        settings = app_settings(name, services, monkeypatch)
        assert settings.s3_endpoint_url == f"http://minio:{PORTS['s3']}"  # type: ignore[attr-defined]
    assert ingest.s3_public_url == f"http://{public}:{PORTS['s3']}"
    assert environment(services["mlflow"])["MLFLOW_S3_ENDPOINT_URL"] == f"http://minio:{PORTS['s3']}"
    assert ingest.mlflow_public_url == frontend.mlflow_public_url == f"http://{public}:{PORTS['mlflow']}"
    assert frontend.ingest_public_url == f"http://{public}:{PORTS['ingest']}"
    assert frontend.store_console_url == f"http://{public}:{PORTS['console']}"
    assert ingest.cors_origins == [f"http://{public}:{PORTS['frontend']}"]
    assert environment(services["minio"])["MINIO_API_CORS_ALLOW_ORIGIN"] == f"http://{public}:{PORTS['frontend']}"
    assert environment(services["minio-init"])["LB_CORS_ORIGIN"] == f"http://{public}:{PORTS['frontend']}"
    for name in runner_services(services):
        runner = app_settings(name, services, monkeypatch)
        assert isinstance(runner, RunnerSettings)
        assert runner.mlflow_tracking_uri == f"http://mlflow:{PORTS['mlflow']}"
        assert runner.mlflow_public_url == f"http://{public}:{PORTS['mlflow']}"
    # MLflow >= 3.5 answers only the Host headers it allows: the runners' and the users'.
    allowed = environment(services["mlflow"])["MLFLOW_SERVER_ALLOWED_HOSTS"].split(",")
    for host in (f"mlflow:{PORTS['mlflow']}", f"{public}:{PORTS['mlflow']}"):
        assert any(fnmatch.fnmatch(host, pattern) for pattern in allowed), host
    # The UI's POSTs carry the public page's Origin through the proxy: MLflow blocks other cross-origin writes.
    origins = environment(services["mlflow"])["MLFLOW_SERVER_CORS_ALLOWED_ORIGINS"].split(",")
    assert origins == [f"http://{public}:{PORTS['mlflow']}"]
    # Health checks probe the ports the services listen on.
    assert f"127.0.0.1:{ingest.port}/api/v1/health" in " ".join(services["ingest"]["healthcheck"]["test"])
    assert f"127.0.0.1:{frontend.port}/" in " ".join(services["frontend"]["healthcheck"]["test"])
    assert f"127.0.0.1:{PORTS['mlflow']}/health" in " ".join(services["mlflow"]["healthcheck"]["test"])


def test_mlflow_alone_holds_s3_credentials_for_artifacts(services: dict[str, Any]) -> None:
    mlflow = services["mlflow"]
    args = command_args(mlflow)
    assert args[:2] == ["mlflow", "server"]
    assert "--serve-artifacts" in args
    variables = environment(mlflow)
    assert variables["AWS_ACCESS_KEY_ID"] == environment(services["ingest"])["LB_INGEST_S3_ACCESS_KEY"]
    assert variables["AWS_SECRET_ACCESS_KEY"] == environment(services["ingest"])["LB_INGEST_S3_SECRET_KEY"]
    for name, service in services.items():
        if name != "mlflow":
            leaked = [v for v in environment(service) if v.startswith(("AWS_", "MLFLOW_"))]
            assert not leaked, f"{name} must not get MLflow's S3 settings: {leaked}"


def test_mlflow_authenticates_and_only_the_platform_holds_accounts(
    raw: dict[str, Any], services: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """MLflow runs its basic-auth app; ingest holds its admin password, the runners the runner account's."""
    mlflow = services["mlflow"]
    assert "--app-name=basic-auth" in command_args(mlflow) or option(command_args(mlflow), "--app-name") == "basic-auth"
    variables = environment(mlflow)
    assert variables["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "false"
    config_path = variables["MLFLOW_AUTH_CONFIG_PATH"]
    source = next(src for src, target in volume_mounts(mlflow) if target == config_path)
    config = configparser.ConfigParser()
    config.read(ROOT / source)
    assert config["mlflow"]["default_permission"] == "EDIT"  # the runner account writes runs in any experiment
    database = config["mlflow"]["database_uri"]
    assert database.startswith("sqlite:////")
    assert on_named_volume(mlflow, database.removeprefix("sqlite:///"), set(raw["volumes"])), "accounts persist"
    ingest = app_settings("ingest", services, monkeypatch)
    assert isinstance(ingest, IngestSettings)
    assert ingest.mlflow_admin_user == config["mlflow"]["admin_username"]
    # The same .env variables on both sides (compared before interpolation: no two secrets may be equal by chance).
    raw_env = {name: environment(service) for name, service in raw["services"].items()}
    assert raw_env["ingest"]["LB_INGEST_MLFLOW_ADMIN_PASSWORD"] == raw_env["mlflow"]["MLFLOW_AUTH_ADMIN_PASSWORD"]
    for name in runner_services(services):
        runner = app_settings(name, services, monkeypatch)
        assert isinstance(runner, RunnerSettings) and ingest.mlflow_runner_password is not None
        assert runner.mlflow_username == ingest.mlflow_runner_user
        assert runner.mlflow_password == ingest.mlflow_runner_password
        assert raw_env[name]["LB_RUNNER_MLFLOW_PASSWORD"] == raw_env["ingest"]["LB_INGEST_MLFLOW_RUNNER_PASSWORD"]
        assert raw_env[name]["LB_RUNNER_MLFLOW_PASSWORD"] != raw_env["ingest"]["LB_INGEST_MLFLOW_ADMIN_PASSWORD"]


def check_runners(services: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    assert runner_services(services)
    seen_gpus, seen_ids, seen_uids = set(), set(), set()
    for name, service in runner_services(services).items():
        assert service["build"]["dockerfile"] == "infra/Dockerfile.runner"
        devices = service["deploy"]["resources"]["reservations"]["devices"]
        assert len(devices) == 1, name
        device = devices[0]
        assert device["capabilities"] == ["gpu"]
        assert device.get("driver", "nvidia") == "nvidia"
        assert "count" not in device, "count and device_ids exclude each other"
        assert len(device["device_ids"]) == 1, f"{name}: one GPU per runner"
        gpu = str(device["device_ids"][0])
        match = RUNNER_SERVICE.match(name)
        assert match and match["n"] == gpu, f"{name} reserves GPU {gpu}: name it runner-gpu{gpu}"
        assert gpu not in seen_gpus, f"GPU {gpu} reserved twice"
        seen_gpus.add(gpu)
        runner = app_settings(name, services, monkeypatch)
        assert isinstance(runner, RunnerSettings)
        # The container sees only its reserved GPU, and CUDA numbers the visible devices from 0.
        assert runner.gpu == "0", f"{name}: inside its container the reserved GPU is CUDA device 0"
        assert runner.runner_id not in seen_ids, f"{name}: runner ids must be unique"
        seen_ids.add(runner.runner_id)
        # RLIMIT_NPROC counts per uid across the host: the jobs of two runners must not share a uid.
        if "job_uid" in RunnerSettings.model_fields:
            job_uid = runner.job_uid  # type: ignore[attr-defined]
            assert job_uid != 0 and job_uid not in seen_uids, f"{name}: give its jobs their own uid"
            seen_uids.add(job_uid)
        assert "SYS_ADMIN" in service.get("cap_add", []), "bubblewrap needs to create namespaces"
        assert service.get("restart") == "unless-stopped"
        assert service.get("healthcheck", {}).get("test")


def test_runners_one_gpu_each(services: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    check_runners(services, monkeypatch)


def test_gpu_host_runners_reach_the_main_host(
    gpu_host_services: dict[str, Any], services: dict[str, Any], monkeypatch: pytest.MonkeyPatch, env: dict[str, str]
) -> None:
    assert set(gpu_host_services) == set(runner_services(gpu_host_services)), "only runners on a GPU host"
    check_runners(gpu_host_services, monkeypatch)
    main = app_settings("runner-gpu0", services, monkeypatch)
    assert isinstance(main, RunnerSettings)
    public = env["LB_PUBLIC_HOST"]
    for name, service in gpu_host_services.items():
        assert service["build"]["context"] == "..", "the build context is the repository root"
        assert set(environment(service)) == set(environment(services["runner-gpu0"])), name
        remote = app_settings(name, gpu_host_services, monkeypatch)
        assert isinstance(remote, RunnerSettings)
        assert (url(remote.nats_url).hostname, url(remote.nats_url).port) == (public, PORTS["nats"])
        assert remote.s3_endpoint_url == f"http://{public}:{PORTS['s3']}"
        assert remote.mlflow_tracking_uri == remote.mlflow_public_url == f"http://{public}:{PORTS['mlflow']}"
        assert remote.runner_id != main.runner_id
        for field in ["bucket", "s3_access_key", "s3_secret_key", *NatsSettings.model_fields]:
            if field not in {"nats_url"}:
                assert getattr(remote, field) == getattr(main, field), field


# --- the dispatcher accepts what MinIO publishes --------------------------------------------------


def minio_event(event_name: str, key: str, bucket: str) -> bytes:
    """The real MinIO sample with another event, bucket and object key, built the way MinIO builds it."""
    envelope = json.loads(MINIO_EVENT_SAMPLE.read_text())
    record = envelope["Records"][0]
    record["eventName"] = event_name
    record["eventTime"] = "2026-11-26T10:11:12.345Z"
    record["s3"]["bucket"]["name"] = bucket
    record["s3"]["bucket"]["arn"] = f"arn:aws:s3:::{bucket}"
    record["s3"]["object"]["key"] = urllib.parse.quote_plus(key, safe="")  # Go's url.QueryEscape
    envelope["EventName"] = event_name
    envelope["Key"] = f"{bucket}/{key}"
    return json.dumps(envelope).encode()


def dispatched(data: bytes, bucket: str) -> list[keys.ManifestKey]:
    """What the dispatcher's real event handler hands on for `data` (nothing else of it runs)."""
    seen: list[keys.ManifestKey] = []
    intake = Intake.__new__(Intake)
    intake.settings = DispatcherSettings(bucket=bucket)

    async def dispatch(where: keys.ManifestKey) -> None:
        seen.append(where)

    intake.dispatch = dispatch  # type: ignore[method-assign]
    asyncio.run(intake.handle_event(data))
    return seen


def test_the_reference_sample_parses_and_is_no_job() -> None:
    data = MINIO_EVENT_SAMPLE.read_bytes()
    envelope = S3EventEnvelope.model_validate_json(data)
    assert envelope.Records[0].eventName == "s3:ObjectCreated:Put"
    assert dispatched(data, envelope.Records[0].s3.bucket.name) == []


@pytest.mark.parametrize("kind", ["Put", "Post", "Copy", "CompleteMultipartUpload"])
def test_dispatcher_accepts_minio_created_events_of_a_manifest(kind: str) -> None:
    bucket = S3Settings().bucket
    submission_id = keys.new_submission_id()
    key = keys.manifest_key("alice", submission_id)
    data = minio_event(f"s3:ObjectCreated:{kind}", key, bucket)
    envelope = S3EventEnvelope.model_validate_json(data)
    record = envelope.Records[0]
    assert record.eventName in CREATED_EVENTS
    assert "%2F" in record.s3.object.key, "MinIO URL-escapes the key in the record"
    where = keys.parse_manifest_key(urllib.parse.unquote_plus(record.s3.object.key))
    assert where == keys.ManifestKey(user="alice", submission_id=submission_id)
    assert envelope.Key == f"{bucket}/{key}"
    assert dispatched(data, bucket) == [where]
    assert dispatched(data, "another-bucket") == []


@pytest.mark.parametrize("kind", ["PutTagging", "PutRetention", "PutLegalHold"])
def test_dispatcher_ignores_created_events_without_new_content(kind: str) -> None:
    bucket = S3Settings().bucket
    data = minio_event(f"s3:ObjectCreated:{kind}", keys.manifest_key("alice", keys.new_submission_id()), bucket)
    envelope = S3EventEnvelope.model_validate_json(data)
    assert envelope.Records[0].eventName not in CREATED_EVENTS
    assert dispatched(data, bucket) == []


def test_dispatcher_ignores_uploaded_files_even_with_escaped_names() -> None:
    bucket = S3Settings().bucket
    submission_id = keys.new_submission_id()
    for path in ["main.py", "data/my dataset.zip", "sub/manifest.json", "ü+%.txt"]:
        key = keys.file_key("alice", submission_id, path)
        data = minio_event("s3:ObjectCreated:Put", key, bucket)
        record = S3EventEnvelope.model_validate_json(data).Records[0]
        assert urllib.parse.unquote_plus(record.s3.object.key) == key
        assert dispatched(data, bucket) == []


# --- images ------------------------------------------------------------------------------------------


def dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", path.read_text())
    instructions = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
    return instructions


def dockerignore_patterns() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def ignored(relative: str, patterns: list[str]) -> bool:
    result = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").strip("/")
        candidates = [pattern, pattern.removeprefix("**/")]
        parts = relative.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if any(fnmatch.fnmatch(p, c) for c in candidates for p in prefixes):
            result = not negate
    return result


def copied_into_image(path: Path) -> dict[str, str]:
    """Image path -> build-context source, for every COPY (WORKDIR-relative destinations resolved)."""
    workdir, copied = PurePosixPath("/"), {}
    for keyword, rest in dockerfile_instructions(path):
        if keyword == "WORKDIR":
            workdir = workdir / rest
        elif keyword == "COPY":
            words = [w for w in shlex.split(rest) if not w.startswith("--")]
            *sources, destination = words
            target = workdir / destination
            for source in sources:
                name = PurePosixPath(source).name
                image_path = target / name if destination.endswith("/") or len(sources) > 1 else target
                copied[str(image_path)] = source
    return copied


@pytest.mark.parametrize(
    ("dockerfile", "extra"), [("infra/Dockerfile", "frontend"), ("infra/Dockerfile.runner", "runner")]
)
def test_dockerfiles_copy_what_exists_and_install_their_extra(dockerfile: str, extra: str) -> None:
    path = ROOT / dockerfile
    patterns = dockerignore_patterns()
    copied = copied_into_image(path)
    assert copied
    for source in copied.values():
        assert (ROOT / source).exists(), f"{dockerfile}: COPY {source}: no such file in the build context"
        assert not ignored(source, patterns), f"{dockerfile}: COPY {source} is excluded by .dockerignore"
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = {p.rstrip("*").rstrip(".") for p in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]}
    sources = set(copied.values())
    missing = packages - sources
    assert not missing, f"{dockerfile} does not copy the packages {sorted(missing)}"
    assert {"pyproject.toml", pyproject["project"]["readme"]} <= sources
    assert "/opt/leadersboard/healthcheck.py" in copied, "the compose health checks run this path"
    runs = " ".join(rest for keyword, rest in dockerfile_instructions(path) if keyword == "RUN")
    assert f'pip install ".[{extra}]"' in runs
    assert f"['optional-dependencies']['{extra}']" in runs, "the dependency layer installs the same extra"
    assert extra in pyproject["project"]["optional-dependencies"]
    installed_extras = {e for group in re.findall(r"\.\[([^\]]*)\]", runs) for e in group.split(",")}
    assert "local" not in installed_extras, "the local stack's binaries stay out of production images"
    base = next(rest for keyword, rest in dockerfile_instructions(path) if keyword == "FROM")
    if extra == "runner":
        arg = next(rest for keyword, rest in dockerfile_instructions(path) if keyword == "ARG")
        assert base == "${CUDA_IMAGE}" and arg.startswith("CUDA_IMAGE=nvidia/cuda:")
        assert re.search(r"apt-get install [^&]*\bbubblewrap\b", runs), "the job sandbox"
        assert re.search(r"apt-get install [^&]*\butil-linux\b", runs), "prlimit and setpriv for the sandbox"
        assert "python3.11" in runs
    else:
        assert base.startswith("python:3.11-slim")
    for pattern in [".venv", ".leadersboard", "**/*.zip"]:
        assert pattern in patterns, f".dockerignore should exclude {pattern}"


def test_compose_builds_from_infra(services: dict[str, Any]) -> None:
    for name, service in services.items():
        if name in THIRD_PARTY - {"mlflow"}:
            assert "build" not in service, name
            continue
        build = service["build"]
        assert build["context"] == "."
        assert (ROOT / build["dockerfile"]).is_file()
        expected = "infra/Dockerfile.runner" if RUNNER_SERVICE.match(name) else "infra/Dockerfile"
        assert build["dockerfile"] == expected, name
        for word in (service.get("healthcheck") or {}).get("test", []):
            if word.endswith("healthcheck.py"):
                assert word in copied_into_image(ROOT / expected), f"{name}: {word} is not in its image"


def test_healthcheck_script_knows_the_services_it_is_used_for(services: dict[str, Any]) -> None:
    script = (ROOT / "infra" / "healthcheck.py").read_text()
    ast.parse(script)
    for name, service in services.items():
        test = (service.get("healthcheck") or {}).get("test", [])
        if any(str(word).endswith("healthcheck.py") for word in test):
            mode, argument = test[-2], test[-1]
            assert mode in {"http", "nats"}
            if mode == "nats":
                cls = settings_class(name)
                assert cls is not None and f"{cls.__name__}()" in script
                assert argument in name


# --- docs -------------------------------------------------------------------------------------------


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
