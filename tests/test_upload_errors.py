"""Failed uploads to the store are leadersboard.client_errors' typed exceptions, each naming the file and saying
what to do, and `leadersboard submit` prints them as ONE line and exits 2.

The failures are real: a closed port, a plain-HTTP port spoken to in TLS, a socket that never answers, the
session's SeaweedFS refusing a tampered or expired presigned URL and content that does not match its declared
sha256, a small HTTP server answering 503 / EntityTooLarge / a proxy's 413 page (counting the requests), and a
whole stack whose store is down while `leadersboard submit` runs.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from leadersboard.client import Client
from leadersboard.client_errors import ApiError, ClientError, ConnectionRefused, ServerError, TimedOut, TlsFailed
from leadersboard.models.api import PresignedRequest
from leadersboard.s3 import make_client
from leadersboard.settings import S3Settings
from leadersboard.upload import RetryPolicy, Uploader
from tests.api_fixtures import Api
from tests.stack_fixtures import running_stack, write_submission
from tests.terminal import run_on_terminal, screen_lines
from tools.cli.failures import failure_line
from tools.cli.output import human_bytes

pytestmark = pytest.mark.timeout(300)

CLI = str(Path(sys.executable).parent / "leadersboard")
FAST = RetryPolicy(attempts=3, backoff_s=0.01, max_backoff_s=0.02)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Counting(httpx.HTTPTransport):
    """The real transport, counting the requests it was given (the attempts)."""

    def __init__(self) -> None:
        super().__init__()
        self.requests = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        return super().handle_request(request)


def failed_upload(url: str, local: Path, *, timeout_s: float = 5.0) -> tuple[ClientError, int]:
    """What the real Uploader raised sending `local` to `url`, and how many requests it made."""
    transport = Counting()
    item = PresignedRequest(path=local.name, url=url)
    with httpx.Client(timeout=timeout_s, transport=transport) as http, pytest.raises(ClientError) as failed:
        Uploader(http, retry=FAST).upload_all([item], {local.name: local})
    return failed.value, transport.requests


@pytest.fixture
def data(tmp_path: Path) -> Path:
    path = tmp_path / "data.bin"
    path.write_bytes(os.urandom(64 * 1024))
    return path


# ---------------------------------------------------------------- out of reach


def test_a_closed_store_port_is_a_refused_connection_after_the_bounded_retries(data: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}/bucket/data.bin?X-Amz-Signature=secret"
    refused, requests = failed_upload(url, data)
    text = str(refused)
    assert isinstance(refused, ConnectionRefused) and requests == FAST.attempts == 3
    assert text.startswith("uploading data.bin to the store failed (3 attempts): http://127.0.0.1:")
    assert "refused the connection" in text and "secret" not in text  # the presigned query is a credential
    assert "LB_INGEST_S3_PUBLIC_URL" in refused.hint and "leadersboard up" in refused.hint


def test_tls_to_a_plain_port_fails_at_once_and_a_silent_store_times_out(data: Path) -> None:
    with answering(503) as (url, _):
        tls, requests = failed_upload(url.replace("http://", "https://"), data)
    assert isinstance(tls, TlsFailed) and requests == 1  # a handshake that failed would fail again
    assert str(tls).startswith("uploading data.bin to the store failed: TLS with https://127.0.0.1:")
    assert "certificate" in tls.hint

    with socket.socket() as listener:  # accepts (the kernel's backlog does), never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        slow, requests = failed_upload(f"http://127.0.0.1:{listener.getsockname()[1]}/b/k", data, timeout_s=0.3)
    assert isinstance(slow, TimedOut) and requests == 3
    assert "uploading data.bin" in str(slow) and "did not answer in time" in str(slow)
    assert "LEADERSBOARD_TIMEOUT_S" in slow.hint


# ---------------------------------------------------------------- the store's answers (a small HTTP server)


class Answer(BaseHTTPRequestHandler):
    """Reads the whole body (as a store does before it answers), then answers `status` with `body`."""

    status = 503
    body = b""
    content_type = "application/xml"
    seen: list[str]

    def do_PUT(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.seen.append(self.path)
        self.send_response(self.status)
        self.send_header("Content-Type", self.content_type)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *_: object) -> None:
        pass


def s3_error(code: str, message: str) -> bytes:
    return f"<?xml version='1.0'?>\n<Error><Code>{code}</Code><Message>{message}</Message></Error>".encode()


@contextmanager
def answering(status: int, body: bytes = b"", content_type: str = "application/xml") -> Iterator[tuple[str, list[str]]]:
    """A local HTTP server answering every PUT with `status` and `body`; yields its URL and the paths it saw."""
    seen: list[str] = []
    handler = type("Handler", (Answer,), {"status": status, "body": body, "content_type": content_type, "seen": seen})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


def test_a_5xx_is_retried_a_bounded_number_of_times_then_named(data: Path) -> None:
    with answering(503, s3_error("SlowDown", "Please reduce your request rate.")) as (url, seen):
        failed, requests = failed_upload(f"{url}/bucket/data.bin", data)
    assert isinstance(failed, ServerError) and len(seen) == requests == FAST.attempts == 3
    assert (failed.status, failed.code) == (503, "SlowDown")
    assert failed.message == "the store failed to take data.bin on each of 3 attempts: Please reduce your request rate."
    assert "try again later" in failed.hint


@pytest.mark.parametrize(
    ("status", "body", "content_type", "code", "meaning"),
    [
        (400, s3_error("EntityTooLarge", "Your proposed upload exceeds the maximum allowed object size."),
         "application/xml", "EntityTooLarge", "it is larger than the store takes in one request"),
        (413, b"<html><body><h1>413 Request Entity Too Large</h1><hr>nginx</body></html>", "text/html",
         "Request Entity Too Large", "it is larger than the store takes in one request"),
        (404, s3_error("NoSuchUpload", "The specified upload does not exist."), "application/xml", "NoSuchUpload",
         "its multipart upload was aborted"),
        (409, b"", "text/plain", "Conflict", ""),
    ],
)  # fmt: skip
def test_a_4xx_is_never_retried_and_says_what_it_means(
    data: Path, status: int, body: bytes, content_type: str, code: str, meaning: str
) -> None:
    with answering(status, body, content_type) as (url, seen):
        refused, requests = failed_upload(f"{url}/bucket/data.bin", data)
    assert type(refused) is ApiError and len(seen) == requests == 1
    assert (refused.status, refused.code) == (status, code)
    assert refused.message.startswith(f"the store refused data.bin{': ' if meaning else ''}{meaning}")
    assert "<" not in refused.message and "\n" not in refused.message
    assert refused.hint


# ---------------------------------------------------------------- the real store (the session's SeaweedFS)


def presigned_put(s3_settings: S3Settings, key: str, expires_s: int = 600) -> str:
    return str(
        make_client(s3_settings).generate_presigned_url(
            "put_object", Params={"Bucket": s3_settings.bucket, "Key": key}, ExpiresIn=expires_s
        )
    )


def test_a_tampered_or_expired_presigned_url_is_a_403_that_says_so(s3_settings: S3Settings, data: Path) -> None:
    url = presigned_put(s3_settings, "data.bin")
    signature = url.rsplit("X-Amz-Signature=", 1)[1][:64]
    tampered = url.replace(signature, ("0" if signature[0] != "0" else "1") + signature[1:])
    denied, requests = failed_upload(tampered, data)
    assert isinstance(denied, ApiError) and denied.status == 403 and requests == 1
    assert "the store refused data.bin: its presigned upload URL has expired or is not valid" in denied.message
    assert "submit again" in denied.hint
    line = failure_line(denied)  # what `leadersboard` prints: the store's code, the meaning, what to do
    assert line.startswith("[red]error 403 (SignatureDoesNotMatch)[/red]: the store refused data.bin: its presigned")
    assert line.endswith("; submit again: a new submission gets new URLs")

    short = presigned_put(s3_settings, "data.bin", expires_s=1)
    time.sleep(2.5)  # past the URL's expiry (the store's own clock decides)
    expired, requests = failed_upload(short, data)
    assert isinstance(expired, ApiError) and expired.status == 403 and requests == 1
    assert "expired or is not valid" in expired.message
    listed = make_client(s3_settings).list_objects_v2(Bucket=s3_settings.bucket)
    assert listed.get("KeyCount", 0) == 0


async def test_content_that_does_not_match_its_declared_sha256_is_a_bad_digest(
    api: Api, alice: str, tmp_path: Path
) -> None:
    root = write_submission(tmp_path / "sub", "pass")
    (root / "data.zip").write_bytes(b"what is uploaded")
    files = {p.name: p for p in root.iterdir()}
    declared = hashlib.sha256(b"what was hashed before the file changed").hexdigest()

    def run() -> None:
        with Client(str(api.make_url("/")), alice, retry=FAST) as client:
            client.upload(client.create_submission(files, sha256={"data.zip": declared}), files)

    with pytest.raises(ApiError) as refused:
        await asyncio.to_thread(run)
    assert refused.value.status == 400 and refused.value.code == "BadDigest"
    assert "the store refused data.zip: its content does not match the sha256 declared" in refused.value.message
    assert "changed while being uploaded" in refused.value.message and "submit again" in refused.value.hint


# ---------------------------------------------------------------- the CLI, against a whole stack


def test_submit_whose_store_is_down_prints_one_line_and_exits_2(tmp_path: Path) -> None:
    """Piped and on a terminal, stderr ends with what was sent (in place of the half-finished bars) and the error."""
    root = write_submission(tmp_path / "sub", "pass")
    size = sum(path.stat().st_size for path in root.iterdir())
    with running_stack(tmp_path / "stack") as (stack, info):
        stack.process("seaweedfs").stop()  # the store is down; the API still creates submissions (NATS only)
        rich_env = ("FORCE_TERMINAL", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "NO_COLOR")  # rich decides by itself
        env = {k: v for k, v in os.environ.items() if not k.startswith("LEADERSBOARD_") and k not in rich_env} | {
            "LEADERSBOARD_URL": info["urls"]["ingest"],
            "LEADERSBOARD_TOKEN": info["demo_token"],
            "XDG_CONFIG_HOME": str(tmp_path / "config"),
            "XDG_CACHE_HOME": str(tmp_path / "cache"),
            "COLUMNS": "400",
            "TERM": "xterm-256color",
        }
        done = subprocess.run([CLI, "submit", str(root)], env=env, capture_output=True, text=True, timeout=180)
        shown = run_on_terminal([CLI, "submit", str(root)], env, timeout_s=180)
    assert done.returncode == shown.returncode == 2, f"exit {done.returncode}\nstderr: {done.stderr}\n{shown}"
    assert "Traceback" not in done.stderr + done.stdout + shown.terminal + shown.stdout
    assert done.stdout == shown.stdout == ""
    assert "━" in shown.terminal  # the bars were drawn on the terminal (then removed)
    sent = f"upload stopped: 0 B of {human_bytes(size)} sent, 0 of 2 files complete"
    for lines in ([line for line in done.stderr.splitlines() if line.strip()], screen_lines(shown.terminal)):
        assert len(lines) == 2 and lines[0] == sent, "\n".join(lines)  # no bars above, only what was sent
        line = lines[-1]
        assert line.startswith("error: uploading ") and "to the store failed (5 attempts)" in line, line
        assert f"{info['urls']['s3']} refused the connection (nothing listens there)" in line, line
        assert "main.py" in line or "config.yaml" in line, line
        assert line.endswith(
            "; start the store (`leadersboard up` locally); if it runs, tell the administrators to check "
            "LB_INGEST_S3_PUBLIC_URL (the store address the API hands out)"
        ), line
