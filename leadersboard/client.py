"""A typed Python client of the LeadersBoard API, usable from scripts and notebooks.

>>> client = Client("http://127.0.0.1:8000", token)
>>> sid = client.submit(["examples/padim"])
>>> record = client.wait(sid, on_log=print)
>>> record.metrics["image_AUROC"]
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx

from leadersboard.models import CreateSubmissionRequest, CreateSubmissionResponse, FileSpec, JobRecord

__all__ = ["ApiError", "Client", "collect_files"]

Progress = Callable[[str, int], None]
"""Called with (path, bytes just sent) while uploading."""

_SKIPPED_PARTS = {"__pycache__", ".git", ".venv", "output", ".ipynb_checkpoints"}
CHUNK_BYTES = 1024 * 1024


class ApiError(Exception):
    """An error answer of the API (`{"error": {"code", "message"}}`) or of the store."""

    def __init__(self, status: int, code: str, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.retry_after_s = retry_after_s


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


class Client:
    def __init__(self, url: str, token: str, *, timeout_s: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self._http = httpx.Client(
            base_url=f"{self.url}/api/v1", headers={"Authorization": f"Bearer {token}"}, timeout=timeout_s
        )
        self._store = httpx.Client(timeout=httpx.Timeout(timeout_s, write=None, read=300.0))

    def close(self) -> None:
        self._http.close()
        self._store.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        response = self._http.request(method, path, **kwargs)
        if response.status_code >= 400:
            raise _api_error(response)
        return response

    def create_submission(
        self, files: dict[str, Path], *, entrypoint: str = "main.py", config: str = "config.yaml",
        metadata: dict[str, Any] | None = None,
    ) -> CreateSubmissionResponse:  # fmt: skip
        request = CreateSubmissionRequest(
            entrypoint=entrypoint,
            config=config,
            metadata=metadata or {},
            files=[FileSpec(path=name, size=path.stat().st_size) for name, path in files.items()],
        )
        response = self._call("POST", "/submissions", json=request.model_dump(mode="json"))
        return CreateSubmissionResponse.model_validate(response.json())

    def upload(
        self, created: CreateSubmissionResponse, files: dict[str, Path], progress: Progress | None = None
    ) -> None:
        """PUT every file straight to the store, then the manifest that starts the job."""
        for upload in created.uploads:
            if upload.path is None or upload.url == "":
                continue
            local = files[upload.path]
            size = local.stat().st_size
            headers = {**upload.headers, "Content-Length": str(size)}
            response = self._store.put(upload.url, content=_chunks(local, upload.path, progress), headers=headers)
            _check_store(response, upload.path)
        manifest = created.manifest
        body = (manifest.body or "").encode()
        response = self._store.put(manifest.url, content=body, headers={**manifest.headers})
        _check_store(response, "manifest.json")

    def submit(
        self, paths: Sequence[str | Path], *, entrypoint: str = "main.py", config: str = "config.yaml",
        metadata: dict[str, Any] | None = None, progress: Progress | None = None,
    ) -> str:  # fmt: skip
        files = collect_files(paths)
        created = self.create_submission(files, entrypoint=entrypoint, config=config, metadata=metadata)
        self.upload(created, files, progress)
        return created.submission_id

    def get(self, submission_id: str) -> JobRecord:
        return JobRecord.model_validate(self._call("GET", f"/submissions/{submission_id}").json())

    def jobs(self, *, everyone: bool = False) -> list[JobRecord]:
        params = {"all": "1"} if everyone else {}
        body = self._call("GET", "/submissions", params=params).json()
        return [JobRecord.model_validate(item) for item in body["submissions"]]

    def logs(self, submission_id: str, offset: int = 0) -> tuple[str, int, str]:
        """(new text, next offset, job status)."""
        response = self._call("GET", f"/submissions/{submission_id}/logs", params={"offset": offset})
        return response.text, int(response.headers["X-Next-Offset"]), response.headers["X-Job-Status"]

    def cancel(self, submission_id: str) -> JobRecord:
        return JobRecord.model_validate(self._call("POST", f"/submissions/{submission_id}/cancel").json())

    def leaderboard(self, *, dataset: str | None = None, metric: str = "image_AUROC") -> dict[str, Any]:
        params = {"metric": metric} | ({"dataset": dataset} if dataset else {})
        return dict(self._call("GET", "/leaderboard", params=params).json())

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

    def create_token(self, user: str, *, role: str = "user", expires_in_s: int | None = None) -> dict[str, Any]:
        body = {"user": user, "role": role, "expires_in_s": expires_in_s}
        return dict(self._call("POST", "/admin/tokens", json=body).json())

    def list_tokens(self) -> list[dict[str, Any]]:
        return list(self._call("GET", "/admin/tokens").json()["tokens"])

    def revoke_token(self, token_id: str) -> dict[str, Any]:
        return dict(self._call("POST", f"/admin/tokens/{token_id}/revoke").json())


def _chunks(path: Path, name: str, progress: Progress | None) -> Iterator[bytes]:
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK_BYTES):
            if progress is not None:
                progress(name, len(chunk))
            yield chunk


def _api_error(response: httpx.Response) -> ApiError:
    retry_after = response.headers.get("Retry-After")
    try:
        error = response.json()["error"]
        code, message = str(error["code"]), str(error["message"])
    except (ValueError, KeyError, TypeError):
        code, message = "http_error", response.text[:500]
    return ApiError(response.status_code, code, message, float(retry_after) if retry_after else None)


def _check_store(response: httpx.Response, what: str) -> None:
    if response.status_code >= 300:
        raise ApiError(response.status_code, "upload_failed", f"the store refused {what}: {response.text[:300]}")
