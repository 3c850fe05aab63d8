"""What an anonymous client on the host sees of a port: the listening sockets of a process tree, raw TLS and
HTTP/2 handshakes (gRPC), and NATS's CONNECT. Read from /proc (psutil is not a dependency)."""

from __future__ import annotations

import json
import os
import socket
import ssl
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from tools.stack.proc_info import process_tree

__all__ = [
    "HTTP2_PREFACE",
    "listening_tcp_ports",
    "nats_anonymous_connect",
    "process_tree",
    "speaks_plaintext_http2",
    "tls_http2_settings",
]

HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
EMPTY_SETTINGS_FRAME = b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
SETTINGS_FRAME_TYPE = 0x04
LISTEN = "0A"
PROBE_TIMEOUT_S = 5.0


def _socket_inodes(pid: int) -> set[int]:
    inodes: set[int] = set()
    try:
        fds = list(Path(f"/proc/{pid}/fd").iterdir())
    except OSError:  # exited meanwhile
        return inodes
    for fd in fds:
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[len("socket:[") : -1]))
    return inodes


@dataclass(frozen=True)
class Listener:
    address: str
    port: int
    pid: int


def listening_tcp_ports(pids: Iterable[int]) -> dict[int, Listener]:
    """Every TCP port (IPv4 and IPv6) on which one of `pids` listens, by port."""
    owner: dict[int, int] = {}
    for pid in pids:
        for inode in _socket_inodes(pid):
            owner[inode] = pid
    listeners: dict[int, Listener] = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, state, inode = fields[1], fields[3], int(fields[9])
            if state == LISTEN and inode in owner:
                address, port = local.rsplit(":", 1)
                listeners[int(port, 16)] = Listener(address, int(port, 16), owner[inode])
    return listeners


def speaks_plaintext_http2(port: int) -> bool:
    """True when the port answers an HTTP/2 connection preface in clear text with a SETTINGS frame
    (an open gRPC server); False when it wants TLS first (it closes, or answers garbage)."""
    with socket.create_connection(("127.0.0.1", port), timeout=PROBE_TIMEOUT_S) as sock:
        sock.sendall(HTTP2_PREFACE + EMPTY_SETTINGS_FRAME)
        try:
            head = _read_exactly(sock, 9)
        except (OSError, EOFError):
            return False
    return head[3] == SETTINGS_FRAME_TYPE


def tls_http2_settings(port: int, *, cert: Path | None = None, key: Path | None = None) -> bool:
    """Open TLS (offering `cert` as client certificate, or none), speak HTTP/2, and return True when the
    server answers with its SETTINGS frame. Raises ssl.SSLError when the server refuses the handshake.

    In TLS 1.3 the server checks the client certificate after the client has finished its half of the
    handshake, so its refusal (alert 116, certificate required) arrives with the first read.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # the server's identity is not what is tested here
    context.set_alpn_protocols(["h2"])
    if cert is not None:
        context.load_cert_chain(cert, key)
    raw = socket.create_connection(("127.0.0.1", port), timeout=PROBE_TIMEOUT_S)
    with raw, context.wrap_socket(raw) as sock:
        sock.sendall(HTTP2_PREFACE + EMPTY_SETTINGS_FRAME)
        head = _read_exactly(sock, 9)
    return head[3] == SETTINGS_FRAME_TYPE


def _read_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise EOFError(f"closed after {len(data)} bytes")
        data += chunk
    return data


def nats_anonymous_connect(port: int) -> str:
    """NATS's first answer to a CONNECT without credentials followed by a PING: `PONG` when the server
    lets anonymous clients in, `-ERR 'Authorization Violation'` when it does not."""
    with socket.create_connection(("127.0.0.1", port), timeout=PROBE_TIMEOUT_S) as sock:
        reader = sock.makefile("rb")
        info = reader.readline()
        if not info.startswith(b"INFO "):
            return f"not NATS: {info[:80]!r}"
        connect = {"verbose": False, "pedantic": False, "name": "anonymous-probe", "lang": "python", "version": "0"}
        sock.sendall(b"CONNECT " + json.dumps(connect).encode() + b"\r\nPING\r\n")
        try:
            return reader.readline().decode(errors="replace").strip()
        except OSError as exc:
            return f"closed: {exc}"
