"""The local store as another account on the host sees it: the real `weed mini`, started the stack's way.

Before: the filer's HTTP port listed, served, wrote (201) and deleted (204) every object without credentials,
the master handed out volume writes and dropped whole buckets (`/col/delete`), the volume server served any
chunk by its file id, and every gRPC port was open. Now S3 with its identities (and presigned URLs) is the
only way in; each attack below is refused and leaves the data as it was.
"""

from __future__ import annotations

import os
import secrets
import ssl
import stat
import subprocess
from pathlib import Path

import httpx
import pytest

from leadersboard.s3 import make_client
from leadersboard.settings import S3Settings
from tests.port_probes import listening_tcp_ports, process_tree, speaks_plaintext_http2, tls_http2_settings
from tools.bridge.translate import EventStreamParser
from tools.stack.procs import bin_path
from tools.stack.seaweed_security import ensure_seaweed_security
from tools.stack.services import Seaweed

pytestmark = pytest.mark.timeout(120)

GRPC_OFFSET = 10000
# 401/403: authentication asked and missing; 404: the route is not served at all (`-disableHttp`).
REFUSED = {401, 403, 404}
SECRET_BODY = b"another user's secret results " + secrets.token_hex(8).encode()


@pytest.fixture
def stored(s3_settings: S3Settings) -> str:
    """A key holding SECRET_BODY in the test's bucket, written through S3 as the platform writes."""
    key = "submissions/alice/abc/results.json"
    make_client(s3_settings).put_object(Bucket=s3_settings.bucket, Key=key, Body=SECRET_BODY)
    return key


def _s3_body(settings: S3Settings, key: str) -> bytes:
    return make_client(settings).get_object(Bucket=settings.bucket, Key=key)["Body"].read()


def _s3_keys(settings: S3Settings) -> list[str]:
    listing = make_client(settings).list_objects_v2(Bucket=settings.bucket)
    return sorted(item["Key"] for item in listing.get("Contents", []))


def _anonymous(method: str, url: str, **kwargs: object) -> httpx.Response | None:
    """The response to a request without any credentials, or None when the connection is refused."""
    try:
        return httpx.request(method, url, timeout=10, **kwargs)  # type: ignore[arg-type]
    except httpx.ConnectError:
        return None


def _assert_refused(response: httpx.Response | None, what: str) -> None:
    if response is None:
        return
    assert response.status_code in REFUSED, f"{what}: {response.status_code} {response.text[:300]}"
    assert SECRET_BODY not in response.content, f"{what} served the object"


def test_filer_http_lists_serves_writes_and_deletes_nothing(
    seaweed: Seaweed, s3_settings: S3Settings, stored: str
) -> None:
    filer, bucket = f"http://127.0.0.1:{seaweed.ports.filer}", s3_settings.bucket
    for path in ("/", "/buckets/", f"/buckets/{bucket}/", f"/buckets/{bucket}/submissions/alice/abc/"):
        response = _anonymous("GET", filer + path, headers={"Accept": "application/json"})
        _assert_refused(response, f"listing {path}")
        assert response is None or "results.json" not in response.text, f"listing {path} named the object"
    for path in (f"/buckets/{bucket}/{stored}", f"/buckets/{bucket}/{stored}?metadata=true"):
        _assert_refused(_anonymous("GET", filer + path), f"GET {path}")

    _assert_refused(_anonymous("PUT", f"{filer}/buckets/{bucket}/planted.txt", content=b"x"), "PUT")
    _assert_refused(
        _anonymous("POST", f"{filer}/buckets/{bucket}/", files={"file": ("planted2.txt", b"x")}), "POST upload"
    )
    _assert_refused(_anonymous("DELETE", f"{filer}/buckets/{bucket}/{stored}"), "DELETE")
    _assert_refused(_anonymous("DELETE", f"{filer}/buckets/{bucket}/?recursive=true"), "DELETE of the bucket")

    # Nothing planted, nothing lost.
    assert _s3_keys(s3_settings) == [stored]
    assert _s3_body(s3_settings, stored) == SECRET_BODY


def test_master_hands_out_no_write_and_drops_no_bucket(seaweed: Seaweed, s3_settings: S3Settings, stored: str) -> None:
    master, bucket = f"http://127.0.0.1:{seaweed.ports.master}", s3_settings.bucket
    assign = _anonymous("GET", f"{master}/dir/assign?collection={bucket}")
    if assign is not None and assign.status_code == 200:
        # An assignment without the volume servers' signing key must be useless: the write is refused.
        fid, url = assign.json()["fid"], assign.json()["url"]
        written = _anonymous("POST", f"http://{url}/{fid}", files={"file": ("x.txt", b"planted")})
        _assert_refused(written, "volume write after an anonymous /dir/assign")
    else:
        _assert_refused(assign, "/dir/assign")
    for path in (
        f"/col/delete?collection={bucket}",
        "/vol/grow?count=1",
        "/vol/vacuum",
        "/dir/status",
        "/vol/status",
        "/dir/lookup?volumeId=1",
    ):
        _assert_refused(_anonymous("GET", master + path), path)

    assert _s3_body(s3_settings, stored) == SECRET_BODY  # the collection (bucket) was not dropped


def _chunk_file_ids(seaweed: Seaweed, bucket: str, key: str, *, cwd: Path) -> list[str]:
    """The volume file ids of `key`'s chunks, from the filer's metadata log (`weed filer.meta.tail`,
    presenting the stack's client certificate: it runs where the security.toml is)."""
    proc = subprocess.Popen(
        [
            bin_path("weed"),
            "filer.meta.tail",
            f"-filer={seaweed.filer_address}",
            f"-pathPrefix=/buckets/{bucket}",
            "-timeAgo=1h",  # from before the object was written
        ],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )
    assert proc.stdout is not None
    parser = EventStreamParser()
    try:
        while chunk := os.read(proc.stdout.fileno(), 65536):
            for event in parser.feed(chunk.decode(errors="replace")):
                entry = event["eventNotification"].get("newEntry") or {}
                if f"{event.get('directory')}/{entry.get('name')}" == f"/buckets/{bucket}/{key}" and entry["chunks"]:
                    return [_file_id(chunk["fid"]) for chunk in entry["chunks"]]
    finally:
        proc.kill()
        proc.wait()
    pytest.fail(f"the metadata log of /buckets/{bucket} ended without {key}")


def _file_id(fid: dict[str, object]) -> str:
    """SeaweedFS's text form of a file id: `volume,keyhex` (leading zero bytes dropped) + 8 hex digits of cookie."""
    key_hex = format(int(str(fid["fileKey"])), "x")
    key_hex = key_hex.zfill(len(key_hex) + len(key_hex) % 2)
    return f"{fid['volumeId']},{key_hex}{int(str(fid.get('cookie', 0))):08x}"


def test_volume_server_serves_no_chunk_without_a_signed_token(
    seaweed: Seaweed, s3_settings: S3Settings, stored: str
) -> None:
    file_ids = _chunk_file_ids(seaweed, s3_settings.bucket, stored, cwd=seaweed.security.directory)
    volume = f"http://127.0.0.1:{seaweed.ports.volume}"
    for fid in file_ids:
        _assert_refused(_anonymous("GET", f"{volume}/{fid}"), f"GET chunk {fid}")
        _assert_refused(_anonymous("POST", f"{volume}/{fid}", files={"file": ("x", b"overwritten")}), "overwrite")
        _assert_refused(_anonymous("DELETE", f"{volume}/{fid}"), f"DELETE chunk {fid}")
    _assert_refused(_anonymous("GET", f"{volume}/ui/index.html"), "volume UI")

    assert _s3_body(s3_settings, stored) == SECRET_BODY


def test_every_grpc_port_wants_the_stacks_client_certificate(seaweed: Seaweed) -> None:
    ports = seaweed.ports
    security = seaweed.security
    for name, http_port in {
        "master": ports.master,
        "volume": ports.volume,
        "filer": ports.filer,
        "s3": ports.s3,
        "admin": ports.admin,
    }.items():
        port = http_port + GRPC_OFFSET
        assert not speaks_plaintext_http2(port), f"{name} gRPC :{port} answers in clear text"
        with pytest.raises(ssl.SSLError, match="CERTIFICATE_REQUIRED"):
            tls_http2_settings(port)
        # The refusal is about the certificate: with the stack's, the same port answers gRPC's HTTP/2.
        assert tls_http2_settings(port, cert=security.cert, key=security.key), f"{name} gRPC :{port}"


def test_metadata_tail_without_the_certificate_gets_nothing(
    seaweed: Seaweed, s3_settings: S3Settings, stored: str, tmp_path: Path
) -> None:
    """`weed filer.meta.tail` from elsewhere (no security.toml) follows no bucket; the bridge's own does."""
    argv = [bin_path("weed"), "filer.meta.tail", f"-filer={seaweed.filer_address}", "-timeAgo=1h"]
    result = subprocess.run(argv, cwd=tmp_path, capture_output=True, timeout=60, check=False)
    assert stored.encode() not in result.stdout
    assert b"eventNotification" not in result.stdout
    assert b"error reading server preface" in result.stdout + result.stderr
    assert _chunk_file_ids(seaweed, s3_settings.bucket, stored, cwd=seaweed.security.directory)


def test_weed_listens_only_on_its_known_ports(seaweed: Seaweed) -> None:
    ports = seaweed.ports
    http = {ports.master, ports.volume, ports.filer, ports.s3, ports.admin}
    expected = http | {port + GRPC_OFFSET for port in http}
    listeners = listening_tcp_ports(process_tree([seaweed.process.pid]))
    # Iceberg (8181), Lance (9101) and WebDAV (7333) are not started; nothing else slipped in.
    assert set(listeners) == expected
    assert all(listener.address in ("0100007F", "00000000000000000000000001000000") for listener in listeners.values())


def test_unix_sockets_take_no_other_account(seaweed: Seaweed) -> None:
    """weed also serves gRPC and HTTP on unix sockets (in /tmp and its data directory): connecting to one
    needs write permission on it, which only the stack's own account has."""
    sockets = [Path(line.split()[-1]) for line in _weed_unix_socket_lines(seaweed.process.pid)]
    assert sockets, "weed holds no unix socket: the probe is broken"
    for path in sockets:
        mode = path.stat().st_mode
        assert stat.S_ISSOCK(mode)
        assert not mode & (stat.S_IWGRP | stat.S_IWOTH), f"{path} is writable by others ({stat.filemode(mode)})"


def _weed_unix_socket_lines(pid: int) -> list[str]:
    inodes = {
        os.readlink(fd)[len("socket:[") : -1]
        for fd in Path(f"/proc/{pid}/fd").iterdir()
        if os.readlink(fd).startswith("socket:[")
    }
    lines = Path("/proc/net/unix").read_text().splitlines()[1:]
    # Listening sockets with a path: flags 00010000 (__SO_ACCEPTCON), a path in the last field.
    return [line for line in lines if len(line.split()) == 8 and line.split()[6] in inodes and "/" in line]


def test_s3_with_its_identity_and_presigned_urls_still_work(seaweed: Seaweed, s3_settings: S3Settings) -> None:
    client, bucket = make_client(s3_settings), s3_settings.bucket
    client.put_object(Bucket=bucket, Key="datasets/u/d.zip", Body=b"zip bytes")
    put_url = client.generate_presigned_url(
        "put_object", Params={"Bucket": bucket, "Key": "submissions/u/s/main.py"}, ExpiresIn=300
    )
    assert httpx.put(put_url, content=b"print('hi')").status_code == 200
    get_url = client.generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": "submissions/u/s/main.py"}, ExpiresIn=300
    )
    assert httpx.get(get_url).content == b"print('hi')"
    assert _s3_keys(s3_settings) == ["datasets/u/d.zip", "submissions/u/s/main.py"]
    # And S3 itself still refuses anonymous clients.
    anonymous = httpx.get(f"{seaweed.s3_url}/{bucket}/datasets/u/d.zip")
    assert anonymous.status_code == 403 and b"zip bytes" not in anonymous.content
    assert httpx.get(f"{seaweed.s3_url}/{bucket}").status_code == 403


def test_keys_and_certificates_are_private_and_kept(tmp_path: Path) -> None:
    first = ensure_seaweed_security(tmp_path / "security")
    before = {path.name: path.read_bytes() for path in first.directory.iterdir()}
    keys = first.jwt_keys()
    again = ensure_seaweed_security(tmp_path / "security")

    assert stat.S_IMODE(first.directory.stat().st_mode) == 0o700
    assert {path.name: stat.S_IMODE(path.stat().st_mode) for path in first.directory.iterdir()} == {
        "security.toml": 0o600,
        "ca.crt": 0o600,
        "seaweed.crt": 0o600,
        "seaweed.key": 0o600,
    }
    assert len(set(keys.values())) == 4  # four distinct signing keys
    assert again.jwt_keys() == keys
    assert {path.name: path.read_bytes() for path in again.directory.iterdir()} == before
