"""Every TCP port the local stack opens, probed the way another account on the host would: without credentials.

The ports are not taken from the stack's configuration but from the kernel: every socket in LISTEN state that
a process of the stack (or a child of one) holds. Each must have a probe below, or the test fails: a port that
appears without anyone deciding what it may serve anonymously cannot slip through.

What each kind of port may do for an anonymous client:
- NATS: nothing (the CONNECT is refused);
- S3: nothing (403); SeaweedFS's master, volume and filer HTTP APIs: nothing that touches objects (401, or 404
  where the route is not served at all); its admin port: `/health` and Prometheus counters, no object;
- every gRPC port: nothing (the TLS handshake fails without the stack's client certificate);
- MLflow (ingest's proxy, and MLflow itself on its private port) and the ingest API: 401 for every data route
  (`/api/v1/health` and the OpenAPI description stay public);
- the frontend: the page and its scripts, which hold no data (the browser fetches everything from the API
  with the user's token); its upload route answers 403.
And no anonymous answer on any port carries any of the stack's secrets.
"""

from __future__ import annotations

import dataclasses
import ssl
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from leadersboard.client import Client
from leadersboard.models.records import JobStatus
from tests.port_probes import (
    listening_tcp_ports,
    nats_anonymous_connect,
    process_tree,
    speaks_plaintext_http2,
    tls_http2_settings,
)
from tests.stack_fixtures import client_for, running_stack, write_submission
from tools.stack.up import Stack, StackPorts

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

GRPC_OFFSET = 10000
# 401/403: credentials asked for and missing; 404: the route is not served at all.
REFUSED = {401, 403, 404}
BUCKET = "leadersboard"
WRITE_METRICS = '(out / "metrics.json").write_text(json.dumps({"params": {}, "metrics": {"score": 1.0}}))\n'

Probe = Callable[[Stack, int], list[str]]
"""Anonymous requests to a port; returns what it let through (empty: refused as it must be)."""


# Not the shared stack (tests/stack_fixtures.py): this one runs the frontend too, whose port is checked here.
@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, dict[str, Any]]]:
    with running_stack(tmp_path_factory.mktemp("ports"), with_frontend=True) as started:
        yield started


def _secrets(stack: Stack) -> set[str]:
    """Every secret of the stack: keys, tokens, passwords and the store's signing keys."""
    found: set[str] = set()

    def walk(value: object) -> None:
        if isinstance(value, str) and len(value) >= 8:
            found.add(value)
        elif isinstance(value, dict):
            for inner in value.values():
                walk(inner)
        elif isinstance(value, list):  # each service's S3 key pair
            for inner in value:
                walk(inner)

    walk(dataclasses.asdict(stack.secrets))
    walk(stack.seaweed.security.jwt_keys())
    return found


def _http(method: str, url: str, **kwargs: Any) -> httpx.Response | None:
    try:
        return httpx.request(method, url, timeout=10, follow_redirects=False, **kwargs)
    except httpx.ConnectError:
        return None


def _refused(port: int, requests: list[tuple[str, str]], refused: set[int] = REFUSED) -> list[str]:
    problems = []
    for method, path in requests:
        response = _http(method, f"http://127.0.0.1:{port}{path}", content=b"x" if method in ("PUT", "POST") else None)
        if response is not None and response.status_code not in refused:
            problems.append(f"{method} {path} -> {response.status_code} {response.text[:160]!r}")
    return problems


def _nats(stack: Stack, port: int) -> list[str]:
    answer = nats_anonymous_connect(port)
    return [] if "Authorization Violation" in answer else [f"CONNECT without credentials -> {answer!r}"]


def _s3(stack: Stack, port: int) -> list[str]:
    paths = ["/", f"/{BUCKET}", f"/{BUCKET}?list-type=2", f"/{BUCKET}/submissions/"]
    return _refused(port, [("GET", p) for p in paths] + [("PUT", f"/{BUCKET}/planted.txt")], refused={403})


def _seaweed_master(stack: Stack, port: int) -> list[str]:
    paths = [
        "/dir/assign",
        f"/col/delete?collection={BUCKET}",
        "/vol/grow?count=1",
        "/vol/vacuum",
        "/dir/status",
        "/vol/status",
        "/dir/lookup?volumeId=1",
    ]
    return _refused(port, [("GET", p) for p in paths])


def _seaweed_volume(stack: Stack, port: int) -> list[str]:
    problems = _refused(port, [("GET", "/1,01637037d6"), ("GET", "/ui/index.html"), ("DELETE", "/1,01637037d6")])
    write = _http("POST", f"http://127.0.0.1:{port}/1,01637037d6", files={"file": ("planted.txt", b"x")})
    if write is not None and write.status_code not in REFUSED:
        problems.append(f"POST of a chunk -> {write.status_code} {write.text[:160]!r}")
    return problems


def _seaweed_filer(stack: Stack, port: int) -> list[str]:
    paths = ["/", "/buckets/", f"/buckets/{BUCKET}/", f"/buckets/{BUCKET}/submissions/"]
    return _refused(port, [("GET", p) for p in paths] + [("PUT", f"/buckets/{BUCKET}/planted.txt")])


def _seaweed_admin(stack: Stack, port: int) -> list[str]:
    """Monitoring only (its UI is off): `/health` and `/metrics` (counters), nothing else."""
    paths = ["/", f"/buckets/{BUCKET}/", "/api/cluster/topology", "/api/s3/buckets", "/files"]
    return _refused(port, [("GET", p) for p in paths] + [("POST", "/api/s3/buckets")])


def _mlflow(stack: Stack, port: int) -> list[str]:
    requests = [
        ("GET", "/api/2.0/mlflow/experiments/search?max_results=10"),
        ("GET", "/ajax-api/2.0/mlflow/runs/search"),
        ("POST", "/api/2.0/mlflow/runs/search"),
        ("POST", "/api/2.0/mlflow/runs/set-tag"),
        ("GET", "/get-artifact?path=job.log&run_uuid=0"),
        ("GET", "/api/2.0/mlflow-artifacts/artifacts"),
    ]
    return _refused(port, requests, refused={401})


def _ingest(stack: Stack, port: int) -> list[str]:
    requests = [
        ("GET", "/api/v1/submissions"),
        ("POST", "/api/v1/submissions"),
        ("GET", "/api/v1/leaderboard"),
        ("GET", "/api/v1/me"),
        ("GET", "/api/v1/admin/tokens"),
        ("GET", "/api/v1/admin/quotas"),
    ]
    return _refused(port, requests, refused={401})


def _frontend(stack: Stack, port: int) -> list[str]:
    """The page is public by design and holds no data; Gradio's upload route is refused."""
    page = _http("GET", f"http://127.0.0.1:{port}/")
    problems = [] if page is not None and page.status_code == 200 else ["the page is not served"]
    return problems + _refused(port, [("POST", "/gradio_api/upload"), ("POST", "/upload")], refused={403})


def _grpc(stack: Stack, port: int) -> list[str]:
    if speaks_plaintext_http2(port):
        return ["gRPC in clear text"]
    try:
        tls_http2_settings(port)
    except ssl.SSLError as exc:
        if "CERTIFICATE_REQUIRED" in str(exc):
            return []
        return [f"TLS without a client certificate failed otherwise: {exc}"]
    return ["TLS and HTTP/2 without a client certificate"]


def _probes(stack: Stack) -> dict[int, tuple[str, Probe]]:
    """Every port the stack should have open, with what it is and how to probe it."""
    p = stack.ports
    by_field: dict[str, Probe] = {
        "nats": _nats,
        "s3": _s3,
        "seaweed_master": _seaweed_master,
        "seaweed_volume": _seaweed_volume,
        "seaweed_filer": _seaweed_filer,
        "seaweed_admin": _seaweed_admin,
        "mlflow": _mlflow,
        "ingest": _ingest,
        "frontend": _frontend,
    }
    unprobed = {f.name for f in dataclasses.fields(StackPorts)} - set(by_field)
    assert not unprobed, f"StackPorts has ports without a probe here: {sorted(unprobed)}"
    probes = {getattr(p, name): (name, probe) for name, probe in by_field.items()}
    internal_mlflow = urlsplit(stack.mlflow_internal_url).port
    assert internal_mlflow is not None
    probes[internal_mlflow] = ("mlflow (internal)", _mlflow)
    seaweed = stack.seaweed.ports
    for name in ("master", "volume", "filer", "s3", "admin"):
        probes[getattr(seaweed, name) + GRPC_OFFSET] = (f"seaweed {name} gRPC", _grpc)
    return probes


def _listening(stack: Stack) -> dict[int, str]:
    pids = process_tree(process.pid for process in stack.processes if process.alive)
    return {port: _command(listener.pid) for port, listener in listening_tcp_ports(pids).items()}


def _command(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_text().replace("\0", " ").strip()[:160]
    except OSError:
        return f"pid {pid}"


def test_every_open_port_is_known(stack: tuple[Stack, dict[str, Any]]) -> None:
    probes = _probes(stack[0])
    listening = _listening(stack[0])
    unknown = {port: command for port, command in listening.items() if port not in probes}
    assert not unknown, f"ports nobody classified (add a probe to {__name__}): {unknown}"
    # And the probes are not vacuous: every port they expect is open.
    assert set(probes) <= set(listening), {probes[port][0] for port in set(probes) - set(listening)}


def test_the_workers_open_no_port(stack: tuple[Stack, dict[str, Any]]) -> None:
    """The dispatcher, the runner and the scorer only connect out (NATS, the store, MLflow): nothing to probe."""
    for name in ("dispatcher", "runner", "scorer"):
        process = stack[0].process(name)
        assert process.alive, name
        assert listening_tcp_ports(process_tree([process.pid])) == {}, name


def test_every_port_refuses_anonymous_clients(stack: tuple[Stack, dict[str, Any]]) -> None:
    probes = _probes(stack[0])
    problems = {}
    for port in sorted(_listening(stack[0])):
        name, probe = probes[port]
        found = probe(stack[0], port)
        if found:
            problems[f"{name} :{port}"] = found
    assert not problems, problems


def test_no_anonymous_answer_carries_a_secret(stack: tuple[Stack, dict[str, Any]]) -> None:
    secrets = _secrets(stack[0])
    assert len(secrets) >= 8
    http_ports = {port for port, (_, probe) in _probes(stack[0]).items() if probe not in (_nats, _grpc)}
    leaks = []
    for port in sorted(http_ports):
        for path in ("/", "/config", "/gradio_api/info", "/health", "/metrics", "/api/v1/health", "/status"):
            response = _http("GET", f"http://127.0.0.1:{port}{path}")
            if response is not None and any(secret in response.text for secret in secrets):
                leaks.append(f":{port}{path}")
    assert not leaks


def test_a_restarted_store_comes_back_closed(stack: tuple[Stack, dict[str, Any]]) -> None:
    """`Stack.restart` (the chaos test's) starts weed again where its security.toml is."""
    stack[0].restart("seaweedfs").wait_ready(60)
    probes = _probes(stack[0])
    seaweed_ports = [port for port, (name, _) in probes.items() if name.startswith("seaweed") or name == "s3"]
    problems = {port: probes[port][1](stack[0], port) for port in seaweed_ports}
    assert not any(problems.values()), problems


def test_a_normal_job_still_completes(stack: tuple[Stack, dict[str, Any]], tmp_path: Path) -> None:
    """With every port closed, the platform itself gets through: upload (S3), the bridge (filer gRPC with the
    client certificate), NATS users, the runner and MLflow's accounts."""
    with client_for(stack[1]) as demo:
        record = _run(demo, write_submission(tmp_path / "after", WRITE_METRICS))
    assert record.status is JobStatus.COMPLETED, record.error
    assert record.metrics == {"score": 1.0}


def _run(demo: Client, submission: Path) -> Any:
    return demo.wait(demo.submit([submission]), timeout_s=180)
