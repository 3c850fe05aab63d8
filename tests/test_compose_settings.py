"""Every compose environment variable is one the service's settings class reads, every secret comes from the
`.env` file, and the values agree with the design's ports and MLflow's accounts."""

from __future__ import annotations

import configparser
import fnmatch
import re
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from frontend.settings import FrontendSettings
from gpu_runner.settings import RunnerSettings
from ingest.settings import IngestSettings
from leadersboard.store_access import MLFLOW, compose_key_vars
from scorer.settings import ScorerSettings
from tests.compose_fixtures import (
    APP_SETTINGS,
    COMPOSE_FILE,
    ENV_EXAMPLE,
    GPU_HOST_FILE,
    NATS_CONF,
    PORTS,
    REQUIRED_FROM_ENV_FILE,
    ROOT,
    THIRD_PARTY_SECRETS,
    MissingVariable,
    app_settings,
    command_args,
    environment,
    filled_env,
    interpolate,
    load,
    nats_services,
    on_named_volume,
    option,
    prefix_of,
    published_ports,
    read_env_file,
    referenced_variables,
    runner_services,
    s3_services,
    settings_class,
    url,
    used_fields,
    volume_mounts,
)


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
    assert frontend.mlflow_public_url == f"http://{public}:{PORTS['mlflow']}"
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
        assert runner.web_public_url == f"http://{public}:{PORTS['frontend']}"
        assert runner.api_public_url == f"http://{public}:{PORTS['ingest']}"
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


def test_mlflow_alone_holds_s3_credentials_for_artifacts(raw: dict[str, Any], services: dict[str, Any]) -> None:
    mlflow = services["mlflow"]
    args = command_args(mlflow)
    assert args[:2] == ["mlflow", "server"]
    assert "--serve-artifacts" in args
    # Its own identity (compared before interpolation: the .env variables, not values equal by chance).
    raw_variables = environment(raw["services"]["mlflow"])
    for var, own in zip(("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"), compose_key_vars(MLFLOW), strict=True):
        match = REQUIRED_FROM_ENV_FILE.match(raw_variables[var])
        assert match and match["var"] == own, f"mlflow: {var} must be ${{{own}:?...}}"
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
    # The scorer logs verified scores with its own account, which ingest creates.
    scorer = app_settings("scorer", services, monkeypatch)
    assert isinstance(scorer, ScorerSettings) and ingest.mlflow_scorer_password is not None
    assert scorer.mlflow_username == ingest.mlflow_scorer_user
    assert scorer.mlflow_password == ingest.mlflow_scorer_password
    assert scorer.mlflow_tracking_uri == f"http://mlflow:{PORTS['mlflow']}"
    assert raw_env["scorer"]["LB_SCORER_MLFLOW_PASSWORD"] == raw_env["ingest"]["LB_INGEST_MLFLOW_SCORER_PASSWORD"]
    passwords = {raw_env["scorer"]["LB_SCORER_MLFLOW_PASSWORD"], raw_env["ingest"]["LB_INGEST_MLFLOW_RUNNER_PASSWORD"],
                 raw_env["ingest"]["LB_INGEST_MLFLOW_ADMIN_PASSWORD"]}  # fmt: skip
    assert len(passwords) == 3, "the admin, the runners and the scorer each have their own MLflow password"
