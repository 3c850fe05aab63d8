"""The backing services of the local stack: nats-server, SeaweedFS and MLflow, started from wheels."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr

from leadersboard.settings import NatsSettings, S3Settings
from leadersboard.stack.procs import (
    ManagedProcess,
    SeaweedPorts,
    http_ready,
    nats_command,
    seaweed_command,
    tcp_ready,
    write_s3_identities,
)

__all__ = ["NatsServer", "Seaweed", "start_mlflow", "start_nats", "start_seaweed"]


@dataclass
class NatsServer:
    process: ManagedProcess
    port: int

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def settings(self) -> NatsSettings:
        return NatsSettings(nats_url=self.url)


def start_nats(root: Path, *, port: int) -> NatsServer:
    store = root / "nats"
    store.mkdir(parents=True, exist_ok=True)
    process = ManagedProcess(
        "nats-server",
        nats_command(port=port, store_dir=store),
        root / "logs" / "nats-server.log",
        ready=tcp_ready("127.0.0.1", port),
    )
    return NatsServer(process.start().wait_ready(30), port)


@dataclass
class Seaweed:
    process: ManagedProcess
    ports: SeaweedPorts
    access_key: str
    secret_key: str

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


def start_seaweed(root: Path, *, ports: SeaweedPorts, access_key: str, secret_key: str) -> Seaweed:
    data = root / "seaweedfs"
    data.mkdir(parents=True, exist_ok=True)
    identities = write_s3_identities(root / "s3-identities.json", access_key=access_key, secret_key=secret_key)
    process = ManagedProcess(
        "seaweedfs",
        seaweed_command(data_dir=data, ports=ports, s3_config=identities),
        root / "logs" / "seaweedfs.log",
        # 403 means S3 answers and refuses the anonymous probe: authentication is on.
        ready=http_ready(f"http://127.0.0.1:{ports.s3}/", accept=(403,)),
    )
    return Seaweed(process.start().wait_ready(60), ports, access_key, secret_key)


def start_mlflow(root: Path, *, port: int, s3: S3Settings) -> ManagedProcess:
    """MLflow with its runs in SQLite under `root` and its artifacts in the S3 store, served through it."""
    data = root / "mlflow"
    data.mkdir(parents=True, exist_ok=True)
    argv = [
        sys.executable, "-m", "mlflow", "server",
        "--host", "127.0.0.1",
        "--port", str(port),
        "--workers", "1",
        "--backend-store-uri", f"sqlite:///{data / 'mlflow.db'}",
        "--artifacts-destination", f"s3://{s3.bucket}/mlflow",
        "--serve-artifacts",
    ]  # fmt: skip
    env = {
        "MLFLOW_S3_ENDPOINT_URL": s3.s3_endpoint_url,
        "AWS_ACCESS_KEY_ID": s3.s3_access_key.get_secret_value(),
        "AWS_SECRET_ACCESS_KEY": s3.s3_secret_key.get_secret_value(),
        "AWS_DEFAULT_REGION": s3.s3_region,
    }
    process = ManagedProcess(
        "mlflow",
        argv,
        root / "logs" / "mlflow.log",
        env=env,
        ready=http_ready(f"http://127.0.0.1:{port}/health"),
    )
    return process.start()
