"""Deleting a job's MLflow run: its artifacts (through MLflow's artifact proxy, wherever MLflow keeps them), then
the run itself (MLflow marks it deleted; `mlflow gc` drops its row, docs/deploy.md "Storage housekeeping").

Ingest talks to MLflow itself (`mlflow_upstream_url`) with MLflow's admin account. A 404 means the run is gone
already; any other 4xx is a refusal that asking again would not change; a 5xx or no answer is tried again a
bounded number of times (`mlflow_delete_attempts`, the delay doubling from `mlflow_delete_backoff_s`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any, Literal

import httpx

from ingest.errors import ApiError, ServiceUnavailable
from ingest.settings import IngestSettings

__all__ = ["ARTIFACTS_SCHEME", "MlflowRefused", "MlflowRuns"]

log = logging.getLogger("ingest.deletion")

ARTIFACTS_SCHEME = "mlflow-artifacts:/"
"""The artifact URI of a run when MLflow serves its artifacts (`--serve-artifacts`, both stacks)."""


class MlflowRefused(ApiError):
    """MLflow answered a deletion with a 4xx other than 404: permanent (a wrong account, a bad id)."""

    status, code = 502, "mlflow_refused"


class _Gone(Exception):
    """MLflow answered 404: the run (or its artifacts) is not there."""


class MlflowRuns:
    def __init__(self, settings: IngestSettings) -> None:
        self.settings = settings

    async def delete(self, run_id: str) -> Literal["deleted", "already gone"]:
        """Delete the run and its artifacts; "already gone" when MLflow has no such run, or marked it deleted."""
        password = self.settings.mlflow_admin_password
        if password is None:
            raise ServiceUnavailable(
                f"MLflow run {run_id} cannot be deleted: ingest has no MLflow admin account "
                "(LB_INGEST_MLFLOW_ADMIN_PASSWORD); nothing was deleted"
            )
        auth = (self.settings.mlflow_admin_user, password.get_secret_value())
        async with httpx.AsyncClient(base_url=self.settings.mlflow_upstream_url.rstrip("/"), auth=auth) as http:
            try:
                run = await self._call(http, "GET", "/api/2.0/mlflow/runs/get", params={"run_id": run_id})
            except _Gone:
                return "already gone"
            info = run.get("run", {}).get("info", {})
            if info.get("lifecycle_stage") == "deleted":
                return "already gone"  # deleted by an earlier call, artifacts first
            uri = str(info.get("artifact_uri", ""))
            if uri.startswith(ARTIFACTS_SCHEME):
                path = uri.removeprefix(ARTIFACTS_SCHEME).lstrip("/")
                with contextlib.suppress(_Gone):  # no artifacts: nothing to delete
                    await self._call(http, "DELETE", f"/api/2.0/mlflow-artifacts/artifacts/{path}")
            else:
                log.warning("run %s keeps its artifacts at %s, which MLflow does not serve: not deleted", run_id, uri)
            try:
                await self._call(http, "POST", "/api/2.0/mlflow/runs/delete", json={"run_id": run_id})
            except _Gone:
                return "already gone"
        return "deleted"

    async def _call(self, http: httpx.AsyncClient, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        attempts, problem = self.settings.mlflow_delete_attempts, ""
        for attempt in range(1, attempts + 1):
            try:
                response = await http.request(method, path, timeout=self.settings.mlflow_delete_timeout_s, **kwargs)
            except httpx.TransportError as exc:
                problem = f"unreachable ({type(exc).__name__})"
            else:
                if response.status_code == 404:
                    raise _Gone
                if 400 <= response.status_code < 500:
                    raise MlflowRefused(
                        f"MLflow refused {method} {path}: {response.status_code} {response.text[:300]}; "
                        "nothing more was deleted"
                    )
                if response.status_code < 400:
                    return _json(response)
                problem = f"answered {response.status_code}"
            if attempt < attempts:
                log.warning("MLflow %s on %s %s (attempt %d of %d)", problem, method, path, attempt, attempts)
                await asyncio.sleep(self.settings.mlflow_delete_backoff_s * 2 ** (attempt - 1))
        raise ServiceUnavailable(f"MLflow {problem} on {attempts} attempts; nothing more was deleted, try again")


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
