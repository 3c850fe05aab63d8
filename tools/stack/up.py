"""`leadersboard up`: the whole platform on one machine, in the foreground, under one data directory."""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import SecretStr
from pydantic_settings import BaseSettings

from leadersboard import nats_io, nats_permissions, store_access
from leadersboard.mlflow_auth import account_works
from leadersboard.models.records import Role
from leadersboard.s3 import ensure_bucket, make_client
from leadersboard.settings import NatsSettings, S3Settings, settings_env
from leadersboard.tokens import TokenStore, new_token
from tools.stack.procs import (
    ManagedProcess,
    Probe,
    SeaweedPorts,
    StartupError,
    free_port,
    free_port_pair,
    http_ready,
    restart_in,
)
from tools.stack.services import MLFLOW_ADMIN, new_service_keys, start_mlflow, start_nats, start_seaweed

if TYPE_CHECKING:
    from gpu_runner.settings import RunnerSettings

__all__ = ["Service", "Stack", "StackPorts", "sweep_runner_work_dir"]

BUCKET = "leadersboard"
DEMO_USER = "demo"
log = logging.getLogger("tools.stack")
S = TypeVar("S", bound=BaseSettings)


@dataclass(frozen=True)
class StackPorts:
    nats: int = 4222
    s3: int = 9000
    seaweed_master: int = 9333
    seaweed_volume: int = 9334
    seaweed_filer: int = 8888
    seaweed_admin: int = 23646
    mlflow: int = 5010
    ingest: int = 8000
    frontend: int = 8501

    @classmethod
    def free(cls) -> StackPorts:
        return cls(
            nats=free_port(), s3=free_port_pair(), seaweed_master=free_port_pair(), seaweed_volume=free_port_pair(),
            seaweed_filer=free_port_pair(), seaweed_admin=free_port_pair(), mlflow=free_port(), ingest=free_port(),
            frontend=free_port(),
        )  # fmt: skip


MLFLOW_SECRETS = ("admin_password", "runner_password", "scorer_password", "secret_key")


@dataclass
class Secrets:
    s3_access_key: str
    s3_secret_key: str
    admin_token: str
    demo_token: str
    manifest_secret: str = ""
    nats_passwords: dict[str, str] = field(default_factory=dict)
    """One NATS user per service (leadersboard/nats_permissions.py); added to a data dir from before."""
    mlflow: dict[str, str] = field(default_factory=dict)
    """MLflow's admin, runner and scorer passwords and its Flask secret key (`MLFLOW_SECRETS`); added likewise."""
    s3_keys: dict[str, list[str]] = field(default_factory=dict)
    """Each service's own S3 identity, [access key, secret key] (leadersboard/store_access.py); added likewise.
    `s3_access_key`/`s3_secret_key` are the stack's admin identity, which only creates the buckets."""

    @classmethod
    def load_or_create(cls, path: Path) -> Secrets:
        """The same keys and tokens on every start, so a second `up` keeps working with earlier data."""
        if path.exists():
            loaded = cls(**json.loads(path.read_text()))
        else:
            loaded = cls("lb-" + secrets.token_hex(8), secrets.token_urlsafe(30), new_token(), new_token())
        missing_nats = [user for user in nats_permissions.USERS if user not in loaded.nats_passwords]
        missing_mlflow = [name for name in MLFLOW_SECRETS if name not in loaded.mlflow]
        loaded.mlflow.update({name: secrets.token_urlsafe(32) for name in missing_mlflow})
        missing_s3 = {s: list(keys) for s, keys in new_service_keys().items() if s not in loaded.s3_keys}
        loaded.s3_keys.update(missing_s3)
        if not loaded.manifest_secret or missing_nats or missing_mlflow or missing_s3:
            loaded.manifest_secret = loaded.manifest_secret or secrets.token_urlsafe(32)
            loaded.nats_passwords.update({user: secrets.token_urlsafe(24) for user in missing_nats})
            path.touch(mode=0o600)
            path.chmod(0o600)
            path.write_text(json.dumps(asdict(loaded)))
        return loaded


@dataclass(frozen=True)
class Service:
    """One platform process as the stack starts it: `python -m <module>` given `settings` as its environment."""

    name: str
    """Its process and log name (`runner-1`)."""
    module: str
    settings: BaseSettings
    ready: Probe | None = None

    @property
    def environment(self) -> dict[str, str]:
        """What the process is started with (on top of the stack's own environment): it reads its settings there."""
        return {**settings_env(self.settings), "PYTHONUNBUFFERED": "1"}


@dataclass
class Stack:
    data_dir: Path
    ports: StackPorts = field(default_factory=StackPorts)
    with_frontend: bool = True
    runners: int = 1
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Settings per service (`{"dispatcher": {"runner_lost_after_s": 10}}`), for tests and tuning; one wins over
    the value the stack itself gives (`{"ingest": {"s3_public_url": ...}}`), see `_settings`."""
    processes: list[ManagedProcess] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.data_dir = self.data_dir.resolve()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.secrets = Secrets.load_or_create(self.data_dir / "secrets.json")
        # MLflow itself listens on a private port; the public one (ports.mlflow) is ingest's proxy.
        self.mlflow_internal_url = f"http://127.0.0.1:{free_port()}"
        self.logs = self.data_dir / "logs"
        self.runner_settings: list[RunnerSettings] = []
        """The runners' settings once the platform starts: `stop` sweeps their work_dirs."""

    @property
    def s3(self) -> S3Settings:
        """The admin's S3 settings: the stack creates the buckets with them (and tests inspect the store)."""
        return S3Settings(
            s3_endpoint_url=f"http://127.0.0.1:{self.ports.s3}",
            s3_access_key=SecretStr(self.secrets.s3_access_key),
            s3_secret_key=SecretStr(self.secrets.s3_secret_key),
            bucket=BUCKET,
        )

    def s3_as(self, service: str) -> S3Settings:
        """`service`'s own S3 identity (leadersboard/store_access.py), limited to the buckets it needs."""
        access_key, secret_key = self.secrets.s3_keys[service]
        return self.s3.model_copy(
            update={"s3_access_key": SecretStr(access_key), "s3_secret_key": SecretStr(secret_key)}
        )

    @property
    def nats(self) -> NatsSettings:
        """The admin's NATS settings: the stack declares the topology and bootstraps tokens with them."""
        return self.nats_as(nats_permissions.ADMIN)

    def nats_as(self, user: str) -> NatsSettings:
        return NatsSettings(
            nats_url=f"nats://127.0.0.1:{self.ports.nats}",
            nats_user=user,
            nats_password=SecretStr(self.secrets.nats_passwords[user]),
        )

    @property
    def urls(self) -> dict[str, str]:
        return {
            "frontend": f"http://127.0.0.1:{self.ports.frontend}",
            "api": f"http://127.0.0.1:{self.ports.ingest}/api/v1",
            "ingest": f"http://127.0.0.1:{self.ports.ingest}",
            "mlflow": f"http://127.0.0.1:{self.ports.mlflow}",
            "s3": f"http://127.0.0.1:{self.ports.s3}",
            "nats": f"nats://127.0.0.1:{self.ports.nats}",
        }

    def start(self) -> dict[str, Any]:
        try:
            self._start_backing_services()
            self._start_platform()
        except BaseException:
            self.stop()
            raise
        info = {
            "urls": self.urls,
            "admin_token": self.secrets.admin_token,
            "demo_user": DEMO_USER,
            "demo_token": self.secrets.demo_token,
            "data_dir": str(self.data_dir),
            "logs": str(self.logs),
        }
        stack_json = self.data_dir / "stack.json"
        stack_json.write_text(json.dumps(info, indent=2))
        stack_json.chmod(0o600)
        return info

    def _start_backing_services(self) -> None:
        nats = start_nats(self.data_dir, port=self.ports.nats, passwords=self.secrets.nats_passwords)
        self.processes.append(nats.process)
        p = self.ports
        seaweed = start_seaweed(
            self.data_dir,
            ports=SeaweedPorts(
                master=p.seaweed_master, volume=p.seaweed_volume, filer=p.seaweed_filer, s3=p.s3, admin=p.seaweed_admin
            ),
            access_key=self.secrets.s3_access_key,
            secret_key=self.secrets.s3_secret_key,
            service_keys={service: (keys[0], keys[1]) for service, keys in self.secrets.s3_keys.items()},
            buckets=self.s3,
        )
        self.processes.append(seaweed.process)
        self.seaweed = seaweed
        admin = make_client(self.s3)
        for bucket in (self.s3.bucket, self.s3.reference_bucket):
            ensure_bucket(admin, bucket)
        self.mlflow = start_mlflow(
            self.data_dir,
            port=int(self.mlflow_internal_url.rsplit(":", 1)[1]),
            s3=self.s3_as(store_access.MLFLOW),
            admin_password=self.secrets.mlflow["admin_password"],
            secret_key=self.secrets.mlflow["secret_key"],
        )
        self.processes.append(self.mlflow)
        asyncio.run(self._register_tokens())

    async def _register_tokens(self) -> None:
        nc = await nats_io.connect(self.nats, name="stack")
        try:
            js = nc.jetstream()
            await nats_io.ensure_topology(js, self.nats)
            tokens = TokenStore(await js.key_value(self.nats.tokens_kv_bucket))
            await tokens.ensure(self.secrets.admin_token, "admin", Role.ADMIN)
            await tokens.ensure(self.secrets.demo_token, DEMO_USER, Role.USER)
        finally:
            await nc.drain()

    def _start_platform(self) -> None:
        from gpu_runner.settings import RunnerSettings

        services = self.services(self.seaweed.security.directory)
        self.runner_settings = [s.settings for s in services if isinstance(s.settings, RunnerSettings)]
        for service in services:
            self._spawn(service)
        for process in self.processes:
            process.wait_ready(180)
        for account in ("runner", "scorer"):
            self._wait_for_mlflow_account(account)

    def services(self, seaweed_security_dir: Path) -> list[Service]:
        """The platform's processes in start order with their settings (built here, nothing is started)."""
        from dispatcher.settings import DispatcherSettings
        from gpu_runner.settings import RunnerSettings
        from ingest.settings import IngestSettings
        from scorer.settings import ScorerSettings
        from tools.bridge.settings import BridgeSettings

        def s3(service: str) -> dict[str, Any]:  # every service uses the store as its own identity
            return self.s3_as(service).model_dump()

        def nats(user: str) -> dict[str, Any]:  # every service connects as its own NATS user
            return self.nats_as(user).model_dump()

        signing: dict[str, Any] = {"manifest_secret": SecretStr(self.secrets.manifest_secret)}
        p, urls = self.ports, self.urls
        services = [
            # The bridge tails the filer over gRPC and needs no S3 identity: only the bucket whose events it
            # publishes.
            Service("bridge", "tools.bridge", self._settings(
                "bridge", BridgeSettings, bucket=BUCKET, **nats(nats_permissions.EVENTS),
                filer_address=f"127.0.0.1:{p.seaweed_filer}", seaweed_security_dir=seaweed_security_dir,
                checkpoint_path=self.data_dir / "bridge" / "checkpoint",
            )),
            Service("ingest", "ingest", self._settings(
                "ingest", IngestSettings, **s3(store_access.INGEST), **nats(nats_permissions.INGEST), **signing,
                port=p.ingest, **self._mlflow_proxy(),
            ), ready=http_ready(f"{urls['api']}/health")),
            Service("dispatcher", "dispatcher", self._settings(
                "dispatcher", DispatcherSettings, **s3(store_access.DISPATCHER), **nats(nats_permissions.DISPATCHER),
                **signing,
            )),
        ]  # fmt: skip
        for index in range(self.runners):
            runner = self._settings(
                "runner",
                RunnerSettings,
                **s3(store_access.RUNNER),
                **nats(nats_permissions.RUNNER),
                runner_id=f"local-runner-{index}",
                work_dir=self.data_dir / "runner" / str(index),
                mlflow_tracking_uri=self.mlflow_internal_url,
                mlflow_public_url=urls["mlflow"],
                web_public_url=urls["frontend"],
                api_public_url=urls["ingest"],
                mlflow_password=SecretStr(self.secrets.mlflow["runner_password"]),
            )
            services.append(Service("runner" if index == 0 else f"runner-{index}", "gpu_runner", runner))
        scorer = self._settings(
            "scorer",
            ScorerSettings,
            **s3(store_access.SCORER),
            **nats(nats_permissions.SCORER),
            work_dir=self.data_dir / "scorer",
            mlflow_tracking_uri=self.mlflow_internal_url,
            mlflow_password=SecretStr(self.secrets.mlflow["scorer_password"]),
        )
        services.append(Service("scorer", "scorer", scorer))
        if self.with_frontend:
            from frontend.settings import FrontendSettings

            frontend = self._settings(
                "frontend", FrontendSettings, port=p.frontend, ingest_public_url=urls["ingest"],
                mlflow_public_url=urls["mlflow"],
            )  # fmt: skip
            services.append(Service("frontend", "frontend", frontend, ready=http_ready(urls["frontend"])))
        return services

    def _settings(self, service: str, kind: type[S], /, **own: Any) -> S:
        """The one merge rule for every service: what `overrides[service]` sets wins over the stack's own value
        (any of it: an S3 or NATS setting, a port, a path), the rest is the stack's."""
        return kind(**{**own, **self.overrides.get(service, {})})

    def _mlflow_proxy(self) -> dict[str, Any]:
        """Ingest serves the public MLflow port and creates the runners' and the scorer's MLflow accounts."""
        return {
            "mlflow_proxy_port": self.ports.mlflow,
            "mlflow_upstream_url": self.mlflow_internal_url,
            "mlflow_admin_user": MLFLOW_ADMIN,
            "mlflow_admin_password": SecretStr(self.secrets.mlflow["admin_password"]),
            "mlflow_runner_password": SecretStr(self.secrets.mlflow["runner_password"]),
            "mlflow_scorer_password": SecretStr(self.secrets.mlflow["scorer_password"]),
        }

    def _wait_for_mlflow_account(self, username: str, timeout_s: float = 60.0) -> None:
        """Jobs may finish (and be scored) as soon as `start` returns: the accounts their runs are logged with
        must work by then."""
        deadline = time.monotonic() + timeout_s
        password = self.secrets.mlflow[f"{username}_password"]
        while not account_works(self.mlflow_internal_url, username=username, password=password):
            if time.monotonic() > deadline:
                raise StartupError(
                    f"MLflow refused the {username} account after {timeout_s:.0f} s; see logs/ingest.log"
                )
            time.sleep(0.5)

    def _spawn(self, service: Service) -> None:
        process = ManagedProcess(
            service.name,
            [sys.executable, "-m", service.module],
            self.logs / f"{service.name}.log",
            env=service.environment,
            ready=service.ready,
        )
        self.processes.append(process.start())

    def process(self, name: str) -> ManagedProcess:
        return next(p for p in self.processes if p.name == name)

    def restart(self, name: str) -> ManagedProcess:
        """Start a process again with the same command and settings (after a kill or stop)."""
        return restart_in(self.processes, self.process(name))

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()
        self.processes.clear()
        for runner in self.runner_settings:  # the runners are gone now: what a killed job left is not in use
            sweep_runner_work_dir(runner)


def sweep_runner_work_dir(settings: RunnerSettings) -> None:
    """Remove what a job left that a stop killed mid-run (its loop mount and image, workspace, cgroup), with the
    sweep a runner does at its start (gpu_runner/leftovers.py): a stopped stack leaves no mount behind. What
    cannot be removed is a warning (the sweep's, naming each); the stop goes on."""
    from gpu_runner.leftovers import owned_work_dir

    try:
        with owned_work_dir(settings) as sweep:  # None: a runner still holds it (owned_work_dir warns)
            failed = [] if sweep is None else sweep.failed
    except OSError as exc:
        failed = [f"{settings.work_dir}: {exc}"]
    if failed:
        log.warning("the stopped stack left %d leftover(s) of its runner: %s", len(failed), "; ".join(failed))
