"""docker-compose.yml and infra/compose.gpu-host.yml as files: valid Compose, the expected services, restarts,
health checks, start order, volumes, and one GPU per runner (the parsing is tests/compose_fixtures.py's)."""

from __future__ import annotations

import ast
import copy
import importlib.resources
import json
import re
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from dispatcher.settings import DispatcherSettings
from gpu_runner.settings import RunnerSettings
from leadersboard.settings import NatsSettings
from tests.compose_fixtures import (
    APP_SETTINGS,
    COMPOSE_FILE,
    GPU_HOST_FILE,
    NATS_CONF,
    ONE_SHOT,
    PORTS,
    ROOT,
    RUNNER_SERVICE,
    THIRD_PARTY,
    app_settings,
    command_args,
    depends_on,
    environment,
    interpolate,
    load,
    on_named_volume,
    option,
    prefix_of,
    runner_services,
    url,
    volume_mounts,
)
from tools.bridge.settings import BridgeSettings


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
    for name in ["ingest", "dispatcher", "scorer", *runner_services(services)]:
        assert depends_on(services[name]).get("minio-init") == "service_completed_successfully", name
        assert depends_on(services[name]).get("nats-init") == "service_completed_successfully", name
    for name in ["scorer", *runner_services(services)]:  # both log to MLflow
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
