"""A typed Python client of the LeadersBoard API, usable from scripts and notebooks; the CLI is built on it.

>>> client = Client("http://127.0.0.1:8000", token)
>>> sid = client.submit(["examples/padim"], metadata={"method": "padim"})
>>> record = client.wait(sid, on_log=print)
>>> record.metrics["image_AUROC"]

Files go straight to the store through presigned URLs (large ones as parallel multipart uploads with
retries); a dataset the same user already uploaded (same sha256) is not sent again.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import httpx

from leadersboard.api_types import (
    CreatedToken,
    Limits,
    QuotaOverview,
    TokenInfo,
    UserQuota,
    UserState,
    WhoAmI,
)
from leadersboard.benchmarks.package import (
    PUBLIC_ZIP,
    REFERENCE_ZIP,
    About,
    PackedBenchmark,
    Stager,
    staged,
    staging_dir,
)
from leadersboard.client_boards import BoardCalls
from leadersboard.client_errors import ApiError, ClientError, api_url, checked, transport_errors
from leadersboard.client_housekeeping import HousekeepingCalls
from leadersboard.models.api import (
    NEXT_VERSION_HEADER,
    BenchmarkListing,
    BenchmarkView,
    CreateBenchmarkResponse,
    CreateSubmissionRequest,
    CreateSubmissionResponse,
    RescoreResponse,
)
from leadersboard.models.records import JobRecord
from leadersboard.models.submission import FileSpec
from leadersboard.upload import (
    HashCache,
    Progress,
    RetryPolicy,
    Uploader,
    UploadStats,
    file_hashes,
)

__all__ = ["AddedBenchmark", "ApiError", "Client", "ClientError", "Progress", "UploadStats", "collect_files"]

_SKIPPED_PARTS = {"__pycache__", ".git", ".venv", "output", ".ipynb_checkpoints"}
VERSION_ATTEMPTS = 5
"""Registrations of a new benchmark version raced by others (each a 409 naming the next version) before giving up."""


@dataclass(frozen=True)
class AddedBenchmark:
    benchmark: BenchmarkView
    resumed: bool
    """An earlier, interrupted `add_benchmark` of the same source was finished."""
    stats: UploadStats


class _VersionConflict(Exception):
    def __init__(self, next_version: int) -> None:
        super().__init__(f"the next version is v{next_version}")
        self.next_version = next_version


def collect_files(paths: Sequence[str | Path]) -> dict[str, Path]:
    """Submission path -> local file, from files and directories (hidden files and caches left out)."""
    files: dict[str, Path] = {}
    for given in map(Path, paths):
        if given.is_dir():
            for path in sorted(given.rglob("*")):
                relative = path.relative_to(given)
                if path.is_file() and not any(p.startswith(".") or p in _SKIPPED_PARTS for p in relative.parts):
                    files[relative.as_posix()] = path
        elif given.is_file():
            files[given.name] = given
        else:
            raise FileNotFoundError(f"{given} does not exist")
    return files


class Client(HousekeepingCalls, BoardCalls):  # also: client_housekeeping.py (deletion, retention), client_boards.py
    """The API at `url` (e.g. `http://127.0.0.1:8000`) with a bearer `token`.

    `workers` threads upload multipart parts in parallel; `retry` governs retries of failed store requests;
    `store_transport` replaces the HTTP transport used for the store (tests, proxies); `cache_dir` keeps the sha256
    of datasets (`sha256.json`) and a benchmark's packed parts between runs (the CLI gives
    `$XDG_CACHE_HOME/leadersboard`; without it, they are kept in a temporary directory until `close`);
    `hash_cache` replaces the sha256 cache.
    """

    def __init__(
        self, url: str, token: str, *, timeout_s: float = 30.0, workers: int = 8, retry: RetryPolicy | None = None,
        store_transport: httpx.BaseTransport | None = None, hash_cache: HashCache | None = None,
        cache_dir: Path | None = None,
    ) -> None:  # fmt: skip
        self.url = api_url(url)
        self._http = httpx.Client(
            base_url=f"{self.url}/api/v1", headers={"Authorization": f"Bearer {token}"}, timeout=timeout_s
        )
        limits = httpx.Limits(max_connections=max(workers, 1) + 4, max_keepalive_connections=max(workers, 1) + 4)
        self._store = httpx.Client(
            timeout=httpx.Timeout(timeout_s, write=None, read=300.0), limits=limits, transport=store_transport
        )
        self.workers = workers
        self.retry = retry or RetryPolicy()
        self.hash_cache = hash_cache
        self.cache_dir = cache_dir
        self._scratch: tempfile.TemporaryDirectory[str] | None = None

    def close(self) -> None:
        self._http.close()
        self._store.close()
        if self._scratch is not None:
            self._scratch.cleanup()

    def _cache(self) -> Path:
        """`cache_dir`, else a temporary directory of this client's (the library picks no place of its own)."""
        if self.cache_dir is not None:
            return self.cache_dir
        self._scratch = self._scratch or tempfile.TemporaryDirectory(prefix="leadersboard-client-")
        return Path(self._scratch.name)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, method: str, path: str, *, json_answer: bool = True, **kwargs: Any) -> httpx.Response:
        """The answer of a successful call; every failure as one of leadersboard.client_errors' exceptions."""
        with transport_errors(self.url):
            response = self._http.request(method, path, **kwargs)
        return checked(response, json_answer=json_answer)

    # --- submitting ----------------------------------------------------------------------------------------------

    def hashes(self, files: Mapping[str, Path], progress: Progress | None = None) -> dict[str, str]:
        """sha256 of the files that are deduplicated (zips and large files), cached by (path, size, mtime)."""
        self.hash_cache = self.hash_cache or HashCache(self._cache() / "sha256.json")
        return file_hashes(files, cache=self.hash_cache, progress=progress)

    def create_submission(
        self, files: Mapping[str, Path], *, entrypoint: str = "main.py", config: str = "config.yaml",
        metadata: dict[str, Any] | None = None, sha256: Mapping[str, str] | None = None, benchmark: str | None = None,
    ) -> CreateSubmissionResponse:  # fmt: skip
        """Declare the files (sizes, and sha256 where given); the answer says how to upload each. `benchmark`: an
        official benchmark to be scored on (`GET /api/v1/benchmarks` lists them)."""
        digests = sha256 or {}
        # Not validated here: the API judges the request, and its 400 names the field (e.g. metadata.x<y).
        request = CreateSubmissionRequest.model_construct(
            entrypoint=entrypoint,
            config=config,
            metadata=metadata or {},
            files=[
                FileSpec(path=name, size=path.stat().st_size, sha256=digests.get(name)) for name, path in files.items()
            ],
            benchmark=benchmark,
        )
        response = self._call("POST", "/submissions", json=request.model_dump(mode="json"))
        return CreateSubmissionResponse.model_validate(response.json())

    def upload(
        self, created: CreateSubmissionResponse, files: Mapping[str, Path], progress: Progress | None = None
    ) -> UploadStats:
        """Send every file straight to the store, then the manifest that starts the job."""
        uploader = Uploader(self._store, workers=self.workers, retry=self.retry, progress=progress)
        stats = uploader.upload_all(created.uploads, files)  # its failures: client_errors' typed exceptions
        manifest = created.manifest
        body = (manifest.body or "").encode()
        headers = {**manifest.headers, "Content-Length": str(len(body))}
        uploader.send("PUT", manifest.url, headers, lambda _n: iter([body]), "manifest.json", stats, track=False)
        return stats

    def submit(
        self, paths: Sequence[str | Path], *, entrypoint: str = "main.py", config: str = "config.yaml",
        metadata: dict[str, Any] | None = None, progress: Progress | None = None, dedup: bool = True,
        benchmark: str | None = None,
    ) -> str:  # fmt: skip
        """Upload files and directories as one submission; returns its id (follow it with `wait`)."""
        files = collect_files(paths)
        digests = self.hashes(files) if dedup else {}
        created = self.create_submission(
            files, entrypoint=entrypoint, config=config, metadata=metadata, sha256=digests, benchmark=benchmark
        )
        self.upload(created, files, progress)
        return created.submission_id

    # --- following jobs ------------------------------------------------------------------------------------------

    def get(self, submission_id: str) -> JobRecord:
        return JobRecord.model_validate(self._call("GET", f"/submissions/{submission_id}").json())

    def logs(self, submission_id: str, offset: int = 0) -> tuple[str, int, str]:
        """(new text from byte `offset`, next offset, job status)."""
        response = self._call("GET", f"/submissions/{submission_id}/logs", params={"offset": offset}, json_answer=False)
        return response.text, int(response.headers["X-Next-Offset"]), response.headers["X-Job-Status"]

    def cancel(self, submission_id: str) -> JobRecord:
        return JobRecord.model_validate(self._call("POST", f"/submissions/{submission_id}/cancel").json())

    def wait(
        self, submission_id: str, *, timeout_s: float = 3600.0, poll_s: float = 1.0,
        on_log: Callable[[str], None] | None = None,
    ) -> JobRecord:  # fmt: skip
        """Follow the job until it ends (the record may appear a moment after the manifest PUT)."""
        deadline = time.monotonic() + timeout_s
        offset = 0
        while time.monotonic() < deadline:
            try:
                record = self.get(submission_id)
            except ApiError as exc:
                if exc.status != 404:
                    raise
                time.sleep(poll_s)
                continue
            if on_log is not None:
                text, offset, _ = self.logs(submission_id, offset)
                if text:
                    on_log(text)
            if record.status.terminal:
                return self._drain_log(record, offset, on_log)
            time.sleep(poll_s)
        raise TimeoutError(f"submission {submission_id} did not finish within {timeout_s:.0f} s")

    def _drain_log(self, record: JobRecord, offset: int, on_log: Callable[[str], None] | None) -> JobRecord:
        while on_log is not None:
            text, offset, _ = self.logs(record.submission_id, offset)
            if not text:
                break
            on_log(text)
        return record

    def whoami(self) -> WhoAmI:
        """The user and role of this client's token (fails with 401 when the token is not valid)."""
        return cast(WhoAmI, self._call("GET", "/me").json())

    # --- administration (admin token) ----------------------------------------------------------------------------

    def create_token(self, user: str, *, role: str = "user", expires_in_s: int | None = None) -> CreatedToken:
        body = {"user": user, "role": role, "expires_in_s": expires_in_s}
        return cast(CreatedToken, self._call("POST", "/admin/tokens", json=body).json())

    def list_tokens(self) -> list[TokenInfo]:
        return cast(list[TokenInfo], self._call("GET", "/admin/tokens").json()["tokens"])

    def revoke_token(self, token_id: str) -> TokenInfo:
        return cast(TokenInfo, self._call("POST", f"/admin/tokens/{token_id}/revoke").json())

    def disable_user(self, user: str) -> UserState:
        """Revoke every token of `user`, refuse new ones until `enable_user`, cancel its pending and running jobs."""
        return cast(UserState, self._call("POST", f"/admin/users/{user}/disable").json())

    def enable_user(self, user: str) -> UserState:
        """Let `user` be issued tokens again (the revoked ones stay revoked: issue a new one)."""
        return cast(UserState, self._call("POST", f"/admin/users/{user}/enable").json())

    def quotas(self) -> QuotaOverview:
        """The default limits and every user's override."""
        return cast(QuotaOverview, self._call("GET", "/admin/quotas").json())

    def user_quota(self, user: str) -> UserQuota:
        """A user's effective limits and own override (None: the defaults apply)."""
        return cast(UserQuota, self._call("GET", f"/admin/quotas/users/{user}").json())

    def set_default_quota(
        self,
        *,
        per_hour: int | None = None,
        concurrent: int | None = None,
        job_timeout_s: int | None = None,
        job_disk_gib: float | None = None,
        job_memory_gib: float | None = None,
    ) -> Limits:
        """Change the default limits; a limit left None keeps its current value."""
        current = self.quotas()["default"]
        body = _merge_limits(
            current, per_hour=per_hour, concurrent=concurrent, job_timeout_s=job_timeout_s,
            job_disk_gib=job_disk_gib, job_memory_gib=job_memory_gib,
        )  # fmt: skip
        return cast(Limits, self._call("PUT", "/admin/quotas/default", json=body).json())

    def set_user_quota(
        self,
        user: str,
        *,
        per_hour: int | None = None,
        concurrent: int | None = None,
        job_timeout_s: int | None = None,
        job_disk_gib: float | None = None,
        job_memory_gib: float | None = None,
        reset: bool = False,
    ) -> UserQuota:
        """Override a user's limits; a limit left None keeps the user's current override (`reset`: drop all)."""
        override = None if reset else self.user_quota(user)["override"]
        body = _merge_limits(
            override, per_hour=per_hour, concurrent=concurrent, job_timeout_s=job_timeout_s,
            job_disk_gib=job_disk_gib, job_memory_gib=job_memory_gib,
        )  # fmt: skip
        return cast(UserQuota, self._call("PUT", f"/admin/quotas/users/{user}", json=body).json())

    def rescore_benchmark(self, name: str) -> RescoreResponse:
        """Score every job of benchmark `name` again from its stored predictions (after a scorer or reference fix)."""
        return RescoreResponse.model_validate(self._call("POST", f"/admin/benchmarks/{name}/rescore").json())

    # --- benchmarks ------------------------------------------------------------------------------------------------

    def benchmarks(self, *, all_versions: bool = False) -> list[BenchmarkView]:
        """The ready benchmarks: the latest version of each, or every version."""
        params = {"all": "true"} if all_versions else {}
        return BenchmarkListing.model_validate(self._call("GET", "/benchmarks", params=params).json()).benchmarks

    def add_benchmark(
        self, name: str, path: str | Path, *, description: str = "", license: str = "",
        test_labels_public: bool = True, progress: Progress | None = None,
        on_step: Callable[[str], None] | None = None,
    ) -> AddedBenchmark:  # fmt: skip
        """Register the benchmark at `path` (a directory or zip) as a new version of `name` (admin token): split it,
        pack its two parts, upload them, mark the version ready.

        Resumable: the packed parts stay in the cache (`<cache_dir>/benchmarks/`) until the version is ready, so
        running it again on the same unchanged source uploads only what is missing. Once ready, adding the same
        source again makes the next version."""
        step = on_step or (lambda _text: None)
        about = About(description=description, license=license, test_labels_public=test_labels_public)
        staging = staging_dir(self._cache(), name, Path(path))
        packed, created = staged(staging), None
        if packed is not None:
            with contextlib.suppress(_VersionConflict):  # its version was taken meanwhile: start from the source
                created = self._register(packed, about)
                step(f"resuming the upload of {name} v{created.version}")
        if created is None:
            created = self._pack_and_register(name, Path(path), staging, about, step)
        files = {PUBLIC_ZIP: staging / PUBLIC_ZIP, REFERENCE_ZIP: staging / REFERENCE_ZIP}
        uploader = Uploader(self._store, workers=self.workers, retry=self.retry, progress=progress)
        stats = uploader.upload_all([created.public, created.reference], files)
        ready = self._call("POST", f"/admin/benchmarks/{name}/versions/{created.version}/ready").json()
        shutil.rmtree(staging, ignore_errors=True)
        return AddedBenchmark(BenchmarkView.model_validate(ready), created.resumed, stats)

    def _pack_and_register(
        self, name: str, path: Path, staging: Path, about: About, step: Callable[[str], None]
    ) -> CreateBenchmarkResponse:
        versions = [view.version for view in self.benchmarks(all_versions=True) if view.name == name]
        version = max(versions, default=0) + 1  # a version still uploading elsewhere: ingest names the next one
        staging.parent.mkdir(parents=True, exist_ok=True)
        step(f"splitting {path} into its public and reference parts")
        with (
            tempfile.TemporaryDirectory(prefix="split-", dir=staging.parent) as work,
            Stager.open(path, staging, name=name, version=version, work_dir=Path(work)) as stager,
        ):
            for _ in range(VERSION_ATTEMPTS):
                step(f"packing {name} v{version}")
                try:
                    return self._register(stager.pack(version), about)
                except _VersionConflict as exc:
                    version = exc.next_version
        raise ApiError(
            409, "conflict", f"{name}: {VERSION_ATTEMPTS} versions in a row were taken by other registrations"
        )

    def _register(self, packed: PackedBenchmark, about: About) -> CreateBenchmarkResponse:
        body = packed.request(about).model_dump(mode="json")
        with transport_errors(self.url):
            response = self._http.post("/admin/benchmarks", json=body)
        next_version = response.headers.get(NEXT_VERSION_HEADER)
        if response.status_code == 409 and next_version is not None and next_version.isdigit():
            raise _VersionConflict(int(next_version))
        return CreateBenchmarkResponse.model_validate(checked(response).json())


def _merge_limits(current: Mapping[str, Any] | None, **given: float | None) -> dict[str, float | None]:
    """The limits given, and the current value of each one not given."""
    return {name: value if value is not None or current is None else current.get(name) for name, value in given.items()}
