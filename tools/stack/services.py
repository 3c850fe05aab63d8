"""The backing services of the local stack: nats-server, SeaweedFS and MLflow, started from wheels."""

from __future__ import annotations

import asyncio
import secrets
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr

from leadersboard import nats_io, store_access
from leadersboard.nats_permissions import ADMIN, USERS, render_authorization
from leadersboard.settings import NatsSettings, S3Settings
from tools.stack.procs import (
    ADMIN_ACTIONS,
    ManagedProcess,
    S3Identity,
    SeaweedPorts,
    http_ready,
    nats_command,
    seaweed_command,
    tcp_ready,
    write_s3_identities,
)
from tools.stack.seaweed_security import SeaweedSecurity, ensure_seaweed_security

__all__ = ["MLFLOW_ADMIN", "NatsServer", "Seaweed", "new_service_keys", "start_mlflow", "start_nats", "start_seaweed"]


@dataclass
class NatsServer:
    process: ManagedProcess
    port: int
    passwords: Mapping[str, str]
    """Each NATS user's password (leadersboard/nats_permissions.py `USERS`)."""

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def settings(self, user: str = ADMIN) -> NatsSettings:
        """Settings to connect as `user`; the admin by default (every right: tests and the stack's bootstrap)."""
        return NatsSettings(nats_url=self.url, nats_user=user, nats_password=SecretStr(self.passwords[user]))


def start_nats(root: Path, *, port: int, passwords: Mapping[str, str] | None = None) -> NatsServer:
    """nats-server with one user per service (fresh random passwords unless given), anonymous clients refused,
    and the streams and KV buckets declared by the admin user."""
    store = root / "nats"
    store.mkdir(parents=True, exist_ok=True)
    passwords = passwords or {user: secrets.token_urlsafe(24) for user in USERS}
    config = root / "nats-server.conf"
    # Created private before the passwords go in: no moment where another account could read them.
    config.touch(mode=0o600)
    config.chmod(0o600)
    config.write_text(render_authorization(NatsSettings(), passwords))
    process = ManagedProcess(
        "nats-server",
        nats_command(port=port, store_dir=store, config=config),
        root / "logs" / "nats-server.log",
        ready=tcp_ready("127.0.0.1", port),
    )
    server = NatsServer(process.start().wait_ready(30), port, passwords)
    asyncio.run(_declare_topology(server.settings(ADMIN)))
    return server


async def _declare_topology(settings: NatsSettings) -> None:
    """Streams and buckets exist before any service starts: services may only bind to them."""
    nc = await nats_io.connect(settings, name="stack-topology")
    try:
        await nats_io.ensure_topology(nc.jetstream(), settings)
    finally:
        await nc.drain()


@dataclass
class Seaweed:
    process: ManagedProcess
    ports: SeaweedPorts
    access_key: str
    secret_key: str
    """The admin identity's keys (creates buckets; tests and the stack's setup)."""
    security: SeaweedSecurity
    """Its security.toml, keys and certificates: a `weed` tool run with `cwd=security.directory` gets in."""
    service_keys: Mapping[str, tuple[str, str]]
    """Each service's own identity (leadersboard/store_access.py `SERVICES`): access key and secret key."""
    buckets: S3Settings
    """The bucket names the services' identities are limited to (`bucket`, `reference_bucket`)."""

    @property
    def s3_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.s3}"

    @property
    def filer_address(self) -> str:
        return f"127.0.0.1:{self.ports.filer}"

    def settings(self, bucket: str = "leadersboard") -> S3Settings:
        return S3Settings(
            s3_endpoint_url=self.s3_url,
            s3_access_key=SecretStr(self.access_key),
            s3_secret_key=SecretStr(self.secret_key),
            bucket=bucket,
        )

    def settings_as(self, service: str) -> S3Settings:
        """S3 settings with `service`'s own identity, on the buckets it was limited to."""
        access_key, secret_key = self.service_keys[service]
        return self.buckets.model_copy(
            update={
                "s3_endpoint_url": self.s3_url,
                "s3_access_key": SecretStr(access_key),
                "s3_secret_key": SecretStr(secret_key),
            }
        )


def new_service_keys() -> dict[str, tuple[str, str]]:
    """A fresh key pair for each service's S3 identity."""
    return {
        service: (f"lb-{service}-{secrets.token_hex(6)}", secrets.token_urlsafe(30))
        for service in store_access.SERVICES
    }


SEAWEED_MEMORY_LIMIT = "512MiB"
"""Go's soft memory limit for `weed mini`: without it, the heap it grew to for transfers stays mapped (20 uploads
and downloads of 20 MiB left it at ~520 MiB PSS, idle; two of 1 GiB at ~840 MiB). At 256MiB the collector ran
almost without pause under large uploads: weed spent 16 CPU-seconds per GiB received against 9-10 at 512MiB,
halving the local store's upload speed. At 512MiB it idles at ~350 MiB after 1 GiB transfers, ~200 MiB four
minutes later (bench/weed_memory.py, bench/README.md). Soft: the runtime collects harder near it, never fails
an allocation because of it."""


def start_seaweed(
    root: Path,
    *,
    ports: SeaweedPorts,
    access_key: str,
    secret_key: str,
    service_keys: Mapping[str, tuple[str, str]] | None = None,
    buckets: S3Settings | None = None,
    volume_size_limit_mb: int | None = None,
) -> Seaweed:
    """`weed mini` whose only anonymous-facing API is S3 with its identities (see `seaweed_command`): the admin's,
    and one per service limited to the buckets of `buckets` it needs (fresh keys unless given)."""
    data = root / "seaweedfs"
    data.mkdir(parents=True, exist_ok=True)
    data.chmod(0o700)  # its volumes, filer store and unix sockets are nobody else's business
    security = ensure_seaweed_security(root / "seaweedfs-security")
    service_keys = service_keys or new_service_keys()
    buckets = buckets or S3Settings()
    identities = write_s3_identities(
        root / "s3-identities.json",
        [
            S3Identity("admin", access_key, secret_key, ADMIN_ACTIONS),
            *(
                S3Identity(service, *service_keys[service], tuple(store_access.seaweed_actions(service, buckets)))
                for service in store_access.SERVICES
            ),
        ],
    )
    process = ManagedProcess(
        "seaweedfs",
        seaweed_command(data_dir=data, ports=ports, s3_config=identities, volume_size_limit_mb=volume_size_limit_mb),
        root / "logs" / "seaweedfs.log",
        cwd=security.directory,  # where weed reads security.toml
        env={"GOMEMLIMIT": SEAWEED_MEMORY_LIMIT},
        # 403 means S3 answers and refuses the anonymous probe: authentication is on.
        ready=http_ready(f"http://127.0.0.1:{ports.s3}/", accept=(403,)),
    )
    return Seaweed(process.start().wait_ready(60), ports, access_key, secret_key, security, service_keys, buckets)


MLFLOW_ADMIN = "admin"
MLFLOW_FOOTPRINT_ENV = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
"""MLflow's memory settings, here and in docker-compose.yml (tests/test_compose_footprint.py): no job-execution
workers (MLflow 3's GenAI jobs, seven huey consumers and a job runner): the platform uses none, and they held
1.4-1.9 GB of the idle stack."""


def start_mlflow(root: Path, *, port: int, s3: S3Settings, admin_password: str, secret_key: str) -> ManagedProcess:
    """MLflow with its runs in SQLite under `root` and its artifacts in the S3 store, served through it.

    It runs MLflow's basic-auth app: anonymous requests get 401. Its accounts (`basic_auth.db` beside the runs)
    are the platform's services only; users reach it through ingest's proxy (ingest/mlflow_proxy.py).
    """
    data = root / "mlflow"
    data.mkdir(parents=True, exist_ok=True)
    auth_config = _write_mlflow_auth_config(data)
    argv = [
        sys.executable, "-m", "mlflow", "server",
        "--host", "127.0.0.1",
        "--port", str(port),
        "--workers", "1",
        "--backend-store-uri", f"sqlite:///{data / 'mlflow.db'}",
        "--artifacts-destination", f"s3://{s3.bucket}/mlflow",
        "--serve-artifacts",
        "--app-name", "basic-auth",
    ]  # fmt: skip
    env = {
        "MLFLOW_S3_ENDPOINT_URL": s3.s3_endpoint_url,
        "AWS_ACCESS_KEY_ID": s3.s3_access_key.get_secret_value(),
        "AWS_SECRET_ACCESS_KEY": s3.s3_secret_key.get_secret_value(),
        "AWS_DEFAULT_REGION": s3.s3_region,
        "MLFLOW_AUTH_CONFIG_PATH": str(auth_config),
        # Used only the first time, to create the admin in an empty basic_auth.db.
        "MLFLOW_AUTH_ADMIN_PASSWORD": admin_password,
        "MLFLOW_FLASK_SERVER_SECRET_KEY": secret_key,
        **MLFLOW_FOOTPRINT_ENV,
    }
    process = ManagedProcess(
        "mlflow",
        argv,
        root / "logs" / "mlflow.log",
        env=env,
        ready=http_ready(f"http://127.0.0.1:{port}/health"),
    )
    return process.start()


def _write_mlflow_auth_config(data: Path) -> Path:
    """MLflow's auth settings: accounts in `data`; a non-admin account (the runners') may create experiments
    and write runs in any (EDIT), so runs still land in experiments created before authentication was on."""
    path = data / "basic_auth.ini"
    path.write_text(
        "[mlflow]\n"
        "default_permission = EDIT\n"
        f"database_uri = sqlite:///{data / 'basic_auth.db'}\n"
        f"admin_username = {MLFLOW_ADMIN}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
    )
    return path
