"""Expected failures of the client and the CLI: the client raises leadersboard.client_errors' typed exceptions,
and `leadersboard` (a real subprocess) prints ONE line saying what happened and what to do, and exits 2.

The endpoints are real: a closed port, a `.invalid` host (RFC 6761: never resolves), a socket that accepts
and never answers, an HTTPS server with a self-signed certificate, and an aiohttp server answering a 502 page,
a web page instead of JSON and the API's own JSON errors."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ipaddress
import os
import socket
import ssl
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from leadersboard.client import Client
from leadersboard.client_errors import (
    ApiError,
    BadUrl,
    ClientError,
    ConnectionRefused,
    NotTheApi,
    ServerError,
    TimedOut,
    TlsFailed,
    UnknownHost,
)

pytestmark = pytest.mark.timeout(300)

CLI = str(Path(sys.executable).parent / "leadersboard")
SID = "0123456789abcdef"
SHORT_TIMEOUT_S = 1.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def closed_url() -> str:
    return f"http://127.0.0.1:{free_port()}"


@pytest.fixture
def stalling_url() -> Iterator[str]:
    """Accepts connections (the kernel's backlog does) and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"


def self_signed(directory: Path) -> ssl.SSLContext:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    (directory / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (directory / "key.pem").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(directory / "cert.pem", directory / "key.pem")
    return context


async def bad_gateway(_: web.Request) -> web.Response:
    return web.Response(
        status=502, text="<html><body><h1>502 Bad Gateway</h1>\n</body></html>", content_type="text/html"
    )


async def web_page(_: web.Request) -> web.Response:
    return web.Response(text="<!doctype html>\n<title>not the API</title>", content_type="text/html")


async def api_not_found(_: web.Request) -> web.Response:
    return web.json_response({"error": {"code": "not_found", "message": "no such submission"}}, status=404)


async def api_unavailable(_: web.Request) -> web.Response:
    body = {"error": {"code": "unavailable", "message": "NATS is down"}}
    return web.json_response(body, status=503, headers={"Retry-After": "7"})


def answering(handler: Callable[[web.Request], Awaitable[web.Response]]) -> web.Application:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    return app


@contextlib.asynccontextmanager
async def serving(app: web.Application, context: ssl.SSLContext | None = None) -> AsyncIterator[str]:
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port, ssl_context=context).start()
    try:
        yield f"{'https' if context else 'http'}://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@pytest.fixture
async def gateway_url() -> AsyncIterator[str]:
    async with serving(answering(bad_gateway)) as url:
        yield url


@pytest.fixture
async def page_url() -> AsyncIterator[str]:
    async with serving(answering(web_page)) as url:
        yield url


@pytest.fixture
async def tls_url(tmp_path: Path) -> AsyncIterator[str]:
    async with serving(answering(api_not_found), self_signed(tmp_path)) as url:
        yield url


async def show(url: str) -> ClientError:
    """`Client.get` off the event loop (the servers above run on it): the exception it raised."""

    def call() -> ClientError:
        with Client(url, "a-token", timeout_s=SHORT_TIMEOUT_S) as client:
            try:
                client.get(SID)
            except ClientError as exc:
                return exc
        raise AssertionError(f"{url}: no error")

    return await asyncio.to_thread(call)


# ---------------------------------------------------------------- the client's typed exceptions


async def test_the_client_names_each_transport_failure(
    closed_url: str, stalling_url: str, tls_url: str, tmp_path: Path
) -> None:
    refused = await show(closed_url)
    assert isinstance(refused, ConnectionRefused) and "refused the connection" in str(refused)
    unknown = await show("http://leadersboard-api.invalid:8000")
    assert isinstance(unknown, UnknownHost) and "leadersboard-api.invalid" in str(unknown)
    stalled = await show(stalling_url)
    assert isinstance(stalled, TimedOut) and "did not answer in time" in str(stalled)
    untrusted = await show(tls_url)
    assert isinstance(untrusted, TlsFailed) and "certificate" in str(untrusted)


@pytest.mark.parametrize(
    "url", ["ftp://127.0.0.1:8000", "127.0.0.1:8000", "http://", "http://127.0.0.1:99999", "http://[::1:8000"]
)
def test_a_bad_url_is_refused_when_the_client_is_made(url: str) -> None:
    with pytest.raises(BadUrl) as refused:
        Client(url, "a-token")
    assert repr(url) in str(refused.value) and "http://HOST:PORT" in refused.value.hint


async def test_the_client_tells_a_5xx_a_web_page_and_the_apis_own_errors_apart(
    gateway_url: str, page_url: str, tmp_path: Path
) -> None:
    gateway = await show(gateway_url)
    assert isinstance(gateway, ServerError) and gateway.status == 502 and "Bad Gateway" in gateway.message
    assert "\n" not in gateway.message and "<html>" not in gateway.message
    page = await show(page_url)
    assert isinstance(page, NotTheApi) and "text/html" in str(page)
    async with serving(answering(api_not_found)) as url:
        missing = await show(url)
        assert type(missing) is ApiError and (missing.status, missing.code) == (404, "not_found")
    async with serving(answering(api_unavailable)) as url:
        down = await show(url)
        assert isinstance(down, ServerError) and down.code == "unavailable" and down.retry_after_s == 7.0


# ---------------------------------------------------------------- the CLI: one line, exit 2, no traceback


async def leadersboard(*args: str, home: Path, env: dict[str, str]) -> tuple[int, str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("LEADERSBOARD_")}
    base |= {"XDG_CONFIG_HOME": str(home / "config"), "XDG_CACHE_HOME": str(home / "cache"), "COLUMNS": "80"}
    process = await asyncio.create_subprocess_exec(
        CLI, *args, env=base | env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()


def one_line(done: tuple[int, str, str], *expected: str) -> str:
    code, stdout, stderr = done
    assert code == 2, f"exit {code}\nstdout: {stdout}\nstderr: {stderr}"
    assert "Traceback" not in stderr and stdout == "", stderr
    line = stderr.strip()
    assert "\n" not in line, f"more than one line:\n{stderr}"
    for text in expected:
        assert text in line, line
    return line


async def test_show_with_the_api_out_of_reach_prints_one_line_and_exits_2(
    closed_url: str, stalling_url: str, tls_url: str, tmp_path: Path
) -> None:
    def env(url: str) -> dict[str, str]:
        return {
            "LEADERSBOARD_URL": url,
            "LEADERSBOARD_TOKEN": "a-token",
            "LEADERSBOARD_TIMEOUT_S": str(SHORT_TIMEOUT_S),
        }

    cases = [
        (closed_url, ["refused the connection", "leadersboard up"]),
        ("http://leadersboard-api.invalid:8000", ["is unknown", "DNS"]),
        (stalling_url, ["did not answer in time", "LEADERSBOARD_TIMEOUT_S"]),
        (tls_url, ["TLS", "certificate"]),
        ("127.0.0.1:8000", ["not an http:// or https:// URL", "http://HOST:PORT"]),
    ]
    for url, expected in cases:
        one_line(await leadersboard("show", SID, home=tmp_path, env=env(url)), *expected)


async def test_show_against_a_failing_or_foreign_server_prints_one_line_and_exits_2(
    gateway_url: str, page_url: str, tmp_path: Path
) -> None:
    token = {"LEADERSBOARD_TOKEN": "a-token"}
    gateway = one_line(await leadersboard("show", SID, home=tmp_path, env={"LEADERSBOARD_URL": gateway_url} | token))
    assert "error 502" in gateway and "try again later" in gateway and "<h1>" not in gateway
    page = one_line(await leadersboard("jobs", home=tmp_path, env={"LEADERSBOARD_URL": page_url} | token))
    assert "text/html" in page and "LeadersBoard API" in page
    async with serving(answering(api_unavailable)) as url:
        down = one_line(await leadersboard("show", SID, home=tmp_path, env={"LEADERSBOARD_URL": url} | token))
        assert "error 503 (unavailable): NATS is down" in down and "retry after 7 s" in down
    async with serving(answering(api_not_found)) as url:
        missing = one_line(await leadersboard("show", SID, "--url", url, home=tmp_path, env=token))
        assert "error 404 (not_found): no such submission" in missing


async def test_usage_mistakes_print_one_line_and_exit_2(tmp_path: Path, closed_url: str) -> None:
    no_token = one_line(await leadersboard("jobs", "--url", closed_url, home=tmp_path, env={}))
    assert "no API token" in no_token
    slow = {"LEADERSBOARD_URL": closed_url, "LEADERSBOARD_TOKEN": "t", "LEADERSBOARD_TIMEOUT_S": "soon"}
    assert "LEADERSBOARD_TIMEOUT_S" in one_line(await leadersboard("jobs", home=tmp_path, env=slow))
    bad_json = {"LEADERSBOARD_URL": closed_url, "LEADERSBOARD_TOKEN": "t"}
    (tmp_path / "main.py").write_text("print('hi')\n")
    refused = await leadersboard(
        "submit", str(tmp_path / "main.py"), "--metadata", "{oops", home=tmp_path, env=bad_json
    )
    assert "--metadata is not valid JSON" in one_line(refused)
