"""Uploading a submission straight to the store through the presigned requests that ingest answered with.

- a `PUT` item: one PUT of the whole file, streamed from disk;
- a `MULTIPART` item: its parts PUT in parallel (a thread pool shared by every file), each retried with
  backoff when it fails, then the CompleteMultipartUpload XML POSTed to the presigned complete URL;
- a `present` item: nothing to send, the user's blob with that sha256 is already in the store.

Failures are leadersboard.client_errors' typed exceptions, each naming the file and saying what to do: a store
out of reach is `Unreachable` (its subclasses), retried; a 4xx an `ApiError` with S3's code (never retried: an
expired URL or a wrong checksum stays so); a 5xx a `ServerError` once `RetryPolicy.attempts` tries failed.

The sha256 of large files and zips (what ingest deduplicates on) is cached by (path, size, mtime) in a JSON file
the caller names (the CLI: `$XDG_CACHE_HOME/leadersboard/sha256.json`), so resubmitting an unchanged dataset costs
no hashing.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import escape

import httpx

from leadersboard.client_errors import (
    ApiError,
    BadUrl,
    ClientError,
    ConnectionRefused,
    ServerError,
    TimedOut,
    TlsFailed,
    UnknownHost,
    transport_error,
)
from leadersboard.models.api import MultipartUpload, PresentFile, PresignedRequest, UploadItem, UploadPart

__all__ = [
    "HASH_MIN_BYTES",
    "HashCache",
    "Progress",
    "RetryPolicy",
    "UploadStats",
    "Uploader",
    "file_hashes",
    "wants_hash",
]

Progress = Callable[[str, int], None]
"""Called with (path, bytes) as bytes are sent or hashed; negative when a failed attempt's bytes are taken back."""

HASH_MIN_BYTES = 16 * 1024**2
CHUNK_BYTES = 1024 * 1024

# What the store's refusals mean and what to do, by S3 error code (then by status): the one home of these texts.
_EXPIRED = ("its presigned upload URL has expired or is not valid", "submit again: a new submission gets new URLs")
_CHANGED = "submit again once the file no longer changes (its sha256 is computed anew)"
_TOO_LARGE = (
    "it is larger than the store takes in one request",
    "tell the platform's administrators: the store, or a proxy in front of it (nginx: client_max_body_size), "
    "limits the size of a request",
)
_REFUSALS: dict[str | int, tuple[str, str]] = {
    "AccessDenied": _EXPIRED,
    "SignatureDoesNotMatch": _EXPIRED,
    403: _EXPIRED,
    "BadDigest": ("its content does not match the sha256 declared for it: it changed while being uploaded", _CHANGED),
    "EntityTooLarge": _TOO_LARGE,
    413: _TOO_LARGE,
    "NoSuchUpload": ("its multipart upload was aborted (it took too long, or was cancelled)", "submit again"),
}
_REFUSED_HINT = "submit again; if the store refuses again, tell the platform's administrators"
_RETRYABLE_CODES = frozenset({"InternalError", "ServiceUnavailable", "SlowDown"})
"""Codes of an error a 200 may carry (a CompleteMultipartUpload's): transient, as any 5xx is."""
_PERMANENT_TRANSPORT: tuple[type[ClientError], ...] = (TlsFailed, BadUrl)
_CHECK_PUBLIC_URL = "tell the administrators to check LB_INGEST_S3_PUBLIC_URL (the store address the API hands out)"
_UNREACHABLE_HINTS: dict[type[ClientError], str] = {
    ConnectionRefused: f"start the store (`leadersboard up` locally); if it runs, {_CHECK_PUBLIC_URL}",
    UnknownHost: f"check this machine's network and DNS; if they work, {_CHECK_PUBLIC_URL}",
    TimedOut: "the store or the network is overloaded: try again later, or raise LEADERSBOARD_TIMEOUT_S",
    TlsFailed: f"the store's certificate is not trusted here, or its address is https for a plain-HTTP port: "
    f"{_CHECK_PUBLIC_URL}",
}
_UNREACHABLE_HINT = f"check this machine's network and that the store runs; then {_CHECK_PUBLIC_URL}"


def wants_hash(path: Path, size: int, min_bytes: int = HASH_MIN_BYTES) -> bool:
    """Files worth deduplicating: zips (datasets) and anything large."""
    return path.suffix.lower() == ".zip" or size >= min_bytes


class HashCache:
    """sha256 of local files by (absolute path, size, mtime_ns), in a small JSON file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._entries: dict[str, dict[str, object]] = {}
        self._dirty = False
        with contextlib.suppress(OSError, ValueError):
            loaded = json.loads(self.path.read_text())
            if isinstance(loaded, dict):
                self._entries = loaded

    def sha256(self, path: Path, *, name: str = "", progress: Progress | None = None) -> str:
        stat = path.stat()
        key = str(path.resolve())
        entry = self._entries.get(key)
        if entry and entry.get("size") == stat.st_size and entry.get("mtime_ns") == stat.st_mtime_ns:
            if progress is not None:
                progress(name, stat.st_size)
            return str(entry["sha256"])
        digest = _sha256(path, name, progress)
        self._entries[key] = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": digest}
        self._dirty = True
        return digest

    def save(self) -> None:
        if not self._dirty:
            return
        with contextlib.suppress(OSError):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            temporary = self.path.with_suffix(f".{os.getpid()}.tmp")
            temporary.write_text(json.dumps(self._entries))
            temporary.replace(self.path)
            self._dirty = False


def _sha256(path: Path, name: str, progress: Progress | None) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(4 * CHUNK_BYTES):
            digest.update(chunk)
            if progress is not None:
                progress(name, len(chunk))
    return digest.hexdigest()


def file_hashes(
    files: Mapping[str, Path], *, cache: HashCache, min_bytes: int = HASH_MIN_BYTES,
    progress: Progress | None = None,
) -> dict[str, str]:  # fmt: skip
    """Submission path -> sha256 for the files worth deduplicating (see `wants_hash`)."""
    hashes = {}
    for name, path in files.items():
        if wants_hash(path, path.stat().st_size, min_bytes):
            hashes[name] = cache.sha256(path, name=name, progress=progress)
    cache.save()
    return hashes


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 5
    backoff_s: float = 0.5
    max_backoff_s: float = 8.0

    def delay_s(self, attempt: int) -> float:
        return min(self.max_backoff_s, self.backoff_s * 2.0 ** (attempt - 1)) * random.uniform(0.8, 1.2)


@dataclass
class UploadStats:
    """What one upload did: `sent_bytes` counts the files' bytes sent (every attempt), `retries` failed attempts."""

    sent_bytes: int = 0
    uploaded: list[str] = field(default_factory=list)
    present: list[str] = field(default_factory=list)
    multipart: list[str] = field(default_factory=list)
    retries: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, sent: int = 0, retries: int = 0) -> None:
        with self._lock:
            self.sent_bytes += sent
            self.retries += retries


class Uploader:
    """Sends the uploads of one created submission with a pool of `workers` threads."""

    def __init__(self, http: httpx.Client, *, workers: int = 8, retry: RetryPolicy | None = None,
                 progress: Progress | None = None) -> None:  # fmt: skip
        self.http = http
        self.workers = max(1, workers)
        self.retry = retry or RetryPolicy()
        self.progress = progress

    def upload_all(self, uploads: Sequence[UploadItem], files: Mapping[str, Path]) -> UploadStats:
        stats = UploadStats()
        with ThreadPoolExecutor(self.workers, thread_name_prefix="lb-upload") as pool:
            whole: list[Future[None]] = []
            multipart: list[tuple[MultipartUpload, list[Future[str]]]] = []
            try:
                for item in uploads:
                    if isinstance(item, PresentFile):
                        stats.present.append(item.path)
                        continue
                    local = files[item.path or ""]
                    if isinstance(item, MultipartUpload):
                        futures = [pool.submit(self._part, item, part, local, stats) for part in item.parts]
                        multipart.append((item, futures))
                    else:
                        whole.append(pool.submit(self._put_whole, item, local, stats))
                for future in whole:
                    future.result()
                for item, futures in multipart:
                    etags = [future.result() for future in futures]
                    self._complete(item, etags, stats)
                    stats.multipart.append(item.path)
            except BaseException:
                pool.shutdown(wait=True, cancel_futures=True)
                raise
        stats.uploaded = [i.path or "" for i in uploads if not isinstance(i, PresentFile)]
        return stats

    def _put_whole(self, item: PresignedRequest, local: Path, stats: UploadStats) -> None:
        name = item.path or local.name
        size = local.stat().st_size
        headers = {**item.headers, "Content-Length": str(size)}
        self.send("PUT", item.url, headers, lambda count: _read(local, 0, size, name, count), name, stats)

    def _part(self, item: MultipartUpload, part: UploadPart, local: Path, stats: UploadStats) -> str:
        offset = (part.part_number - 1) * item.part_size
        headers = {"Content-Length": str(part.size)}
        response = self.send(
            "PUT", part.url, headers, lambda count: _read(local, offset, part.size, item.path, count), item.path, stats
        )
        etag = response.headers.get("ETag")
        if not etag:
            raise ClientError(
                f"the store answered part {part.part_number} of {item.path} without an ETag",
                hint="tell the platform's administrators (a proxy in front of the store drops the ETag header?)",
            )
        return str(etag)

    def _complete(self, item: MultipartUpload, etags: list[str], stats: UploadStats) -> None:
        parts = "".join(
            f"<Part><PartNumber>{number}</PartNumber><ETag>{escape(etag)}</ETag></Part>"
            for number, etag in enumerate(etags, start=1)
        )
        body = f"<CompleteMultipartUpload>{parts}</CompleteMultipartUpload>".encode()
        headers = {**item.complete.headers, "Content-Length": str(len(body))}
        self.send("POST", item.complete.url, headers, lambda _count: iter([body]), item.path, stats, track=False)

    def send(
        self, method: str, url: str, headers: dict[str, str], body: Callable[[Callable[[int], None]], Iterator[bytes]],
        name: str, stats: UploadStats, *, track: bool = True,
    ) -> httpx.Response:  # fmt: skip
        """One request with bounded retries (transient failures only); a failed attempt's progress is taken back
        before the next one. Raises the typed failure of the last attempt."""
        for attempt in range(1, self.retry.attempts + 1):
            sent = 0

            def count(n: int) -> None:
                nonlocal sent
                sent += n
                stats.add(sent=n)
                if track and self.progress is not None:
                    self.progress(name, n)

            failure: ClientError
            cause: Exception | None = None
            try:
                response = self.http.request(method, url, content=body(count), headers=headers)
            except (httpx.TransportError, httpx.InvalidURL) as exc:
                failure, cause = _out_of_reach(url, name, exc, attempt), exc
                retryable = not isinstance(failure, _PERMANENT_TRANSPORT)
            else:
                answered = _store_error(response, name, attempt)
                if answered is None:
                    return response
                failure, retryable = answered, isinstance(answered, ServerError)
            if track and self.progress is not None and sent:
                self.progress(name, -sent)
            if not retryable or attempt == self.retry.attempts:
                raise failure from cause
            stats.add(retries=1)
            time.sleep(self.retry.delay_s(attempt))
        raise AssertionError("unreachable")


def _out_of_reach(url: str, name: str, exc: httpx.TransportError | httpx.InvalidURL, attempts: int) -> ClientError:
    """The typed transport failure (leadersboard.client_errors' rule), naming the file, with the store's hint."""
    origin = _origin(url)
    error = transport_error(origin, exc)
    hint = next((_UNREACHABLE_HINTS[k] for k in type(error).__mro__ if k in _UNREACHABLE_HINTS), _UNREACHABLE_HINT)
    tries = f" ({attempts} attempts)" if attempts > 1 else ""
    return type(error)(f"uploading {name} to the store failed{tries}: {error}", hint=hint)


def _origin(url: str) -> str:
    """scheme://host:port of a presigned URL: its query is a credential, and too long for a message anyway."""
    with contextlib.suppress(httpx.InvalidURL, ValueError):
        parsed = httpx.URL(url)
        return f"{parsed.scheme}://{parsed.netloc.decode()}"
    return "the store"


def _store_error(response: httpx.Response, name: str, attempts: int) -> ApiError | None:
    """None for success; a 5xx (or a 200 carrying a transient <Error>, as a CompleteMultipartUpload may) is a
    ServerError (retried); any other error answer, a 4xx above all, an ApiError saying what it means (permanent)."""
    status = response.status_code
    if status < 300 and b"<Error>" not in response.content[:512]:
        return None
    code, said = _s3_error(response)
    if status >= 500 or (status < 400 and code in _RETRYABLE_CODES):  # never a 4xx: it would be refused again
        tries = f" on each of {attempts} attempts" if attempts > 1 else ""
        return ServerError(status, code, f"the store failed to take {name}{tries}: {said}")
    meaning, hint = _REFUSALS.get(code) or _REFUSALS.get(status) or ("", _REFUSED_HINT)
    return ApiError(status, code, f"the store refused {name}" + (f": {meaning}" if meaning else "") + f" ({said})",
                    hint=hint)  # fmt: skip


def _s3_error(response: httpx.Response) -> tuple[str, str]:
    """S3's error code and message from an `<Error>` body; else the reason phrase and the start of the body (a
    proxy's page), on one line."""
    text = response.text[:2000]
    code, message = _XML_CODE.search(text), _XML_MESSAGE.search(text)
    if code:
        return code.group(1).strip(), " ".join((message.group(1) if message else code.group(1)).split())[:300]
    reason = response.reason_phrase or "http_error"
    return reason, " ".join(re.sub(r"<[^>]*>", " ", text).split())[:200] or reason


_XML_CODE = re.compile(r"<Code>([^<]{1,100})</Code>")
_XML_MESSAGE = re.compile(r"<Message>([^<]{0,1000})</Message>")


def _read(path: Path, offset: int, length: int, name: str, count: Callable[[int], None]) -> Iterator[bytes]:
    with path.open("rb") as handle:
        handle.seek(offset)
        remaining = length
        while remaining > 0:
            chunk = handle.read(min(CHUNK_BYTES, remaining))
            if not chunk:
                raise ClientError(f"{name} shrank while it was being uploaded", hint=_CHANGED)
            remaining -= len(chunk)
            count(len(chunk))
            yield chunk
