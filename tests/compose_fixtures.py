"""The production deployment files (docker-compose.yml, infra/, .env.example) parsed as `docker compose` reads them.

No Docker engine and no network: the compose file is parsed and interpolated the way `docker compose` does
with a `.env` made from `.env.example`. The compose, image and deploy-doc tests (tests/test_compose_*.py,
tests/test_images.py, tests/test_deploy_doc.py) check the result against the settings classes, the NATS
topology and MinIO's event configuration. The lists of environment variables come from the settings classes
at test time, so a new setting is checked without editing here.
"""

from __future__ import annotations

import os
import re
import shlex
import urllib.parse
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml
from pydantic_settings import BaseSettings

from dispatcher.settings import DispatcherSettings
from frontend.settings import FrontendSettings
from gpu_runner.settings import RunnerSettings
from ingest.settings import IngestSettings
from leadersboard.nats_permissions import USERS as NATS_USERS
from leadersboard.nats_permissions import compose_password_var
from leadersboard.settings import NatsSettings, S3Settings
from leadersboard.store_access import SERVICES as STORE_SERVICES
from leadersboard.store_access import compose_key_vars
from scorer.settings import ScorerSettings
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
    "scorer": ScorerSettings,
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
    ScorerSettings,
    BridgeSettings,
)
MLFLOW_AUTH_SECRETS = ["MLFLOW_AUTH_ADMIN_PASSWORD", "MLFLOW_FLASK_SERVER_SECRET_KEY"]
# Values that must never have a default in the compose file: compose must refuse to start without them.
THIRD_PARTY_SECRETS = {
    "minio": ["MINIO_ROOT_USER", "MINIO_ROOT_PASSWORD"],
    "minio-init": ["MINIO_ROOT_USER", "MINIO_ROOT_PASSWORD", *(v for s in STORE_SERVICES for v in compose_key_vars(s))],
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


# --- fixtures (tests/conftest.py registers them) and what the tests read from a service -------------


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


def nats_services(services: dict[str, Any]) -> list[str]:
    return [name for name in services if (cls := settings_class(name)) is not None and issubclass(cls, NatsSettings)]


def s3_services(services: dict[str, Any]) -> list[str]:
    return [
        name
        for name in services
        if (cls := settings_class(name)) is not None and issubclass(cls, S3Settings) and name not in NATS_ONLY
    ]


def minio_targets(services: dict[str, Any]) -> dict[str, dict[str, str]]:
    targets: dict[str, dict[str, str]] = {}
    for var, value in environment(services["minio"]).items():
        match = re.fullmatch(r"MINIO_NOTIFY_NATS_([A-Z_]+?)_([A-Za-z0-9]+)", var)
        if match:
            targets.setdefault(match[2], {})[match[1]] = value
    return targets


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
