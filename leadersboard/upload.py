"""Uploading a submission straight to the store through the presigned requests that ingest answered with.

- a `PUT` item: one PUT of the whole file, streamed from disk;
- a `MULTIPART` item: its parts PUT in parallel (a thread pool shared by every file), each retried with
  backoff when it fails, then the CompleteMultipartUpload XML POSTed to the presigned complete URL;
- a `present` item: nothing to send, the user's blob with that sha256 is already in the store.

The sha256 of large files and zips (what ingest deduplicates on) is cached by (path, size, mtime) in
`$XDG_CACHE_HOME/leadersboard/sha256.json`, so resubmitting an unchanged dataset costs no hashing.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import escape

import httpx

from leadersboard.models.api import MultipartUpload, PresentFile, PresignedRequest, UploadItem, UploadPart

__all__ = [
    "HASH_MIN_BYTES",
    "HashCache",
    "Progress",
    "RetryPolicy",
    "StoreError",
    "UploadStats",
    "Uploader",
    "cache_dir",
    "file_hashes",
    "wants_hash",
]

Progress = Callable[[str, int], None]
"""Called with (path, bytes) as bytes are sent or hashed; negative when a failed attempt's bytes are taken back."""

HASH_MIN_BYTES = 16 * 1024**2
CHUNK_BYTES = 1024 * 1024
_RETRYABLE_STATUS = {408, 429, 500, 502, 503, 504}


class StoreError(Exception):
    """The store refused an upload (expired or tampered URL, wrong size or checksum) or kept failing."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "leadersboard"


def wants_hash(path: Path, size: int, min_bytes: int = HASH_MIN_BYTES) -> bool:
    """Files worth deduplicating: zips (datasets) and anything large."""
    return path.suffix.lower() == ".zip" or size >= min_bytes


class HashCache:
    """sha256 of local files by (absolute path, size, mtime_ns), in a small JSON file."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or cache_dir() / "sha256.json"
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
    files: Mapping[str, Path], *, min_bytes: int = HASH_MIN_BYTES, cache: HashCache | None = None,
    progress: Progress | None = None,
) -> dict[str, str]:  # fmt: skip
    """Submission path -> sha256 for the files worth deduplicating (see `wants_hash`)."""
    cache = cache or HashCache()
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
            raise StoreError(response.status_code, f"the store gave no ETag for part {part.part_number} of {item.path}")
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
        """One request with retries; a failed attempt's progress is taken back before the next one."""
        for attempt in range(1, self.retry.attempts + 1):
            sent = 0

            def count(n: int) -> None:
                nonlocal sent
                sent += n
                stats.add(sent=n)
                if track and self.progress is not None:
                    self.progress(name, n)

            failure: str
            try:
                response = self.http.request(method, url, content=body(count), headers=headers)
            except httpx.TransportError as exc:
                failure = f"{type(exc).__name__}: {exc}"
            else:
                problem = _failure(response)
                if problem is None:
                    return response
                if response.status_code not in _RETRYABLE_STATUS and "InternalError" not in problem:
                    raise StoreError(response.status_code, f"the store refused {name}: {problem}")
                failure = f"{response.status_code} {problem}"
            if track and self.progress is not None and sent:
                self.progress(name, -sent)
            if attempt == self.retry.attempts:
                raise StoreError(0, f"{name}: giving up after {attempt} attempts; last error: {failure}")
            stats.add(retries=1)
            time.sleep(self.retry.delay_s(attempt))
        raise AssertionError("unreachable")


def _failure(response: httpx.Response) -> str | None:
    """None for success. S3 may answer a CompleteMultipartUpload with 200 and an <Error> body."""
    if response.status_code >= 300:
        return response.text[:300] or response.reason_phrase
    if b"<Error>" in response.content[:512]:
        return response.text[:300]
    return None


def _read(path: Path, offset: int, length: int, name: str, count: Callable[[int], None]) -> Iterator[bytes]:
    with path.open("rb") as handle:
        handle.seek(offset)
        remaining = length
        while remaining > 0:
            chunk = handle.read(min(CHUNK_BYTES, remaining))
            if not chunk:
                raise StoreError(0, f"{name} shrank while it was being uploaded")
            remaining -= len(chunk)
            count(len(chunk))
            yield chunk
