"""MLflow's basic-auth accounts of the platform's own services (never of users: they go through ingest's proxy).

MLflow runs with `--app-name basic-auth`. Only the platform's accounts exist in it: the admin (ingest's MLflow
proxy and the account that creates the others), the `runner` account the GPU runners log runs with, and the
`scorer` account that logs a benchmark job's verified scores to its run.
"""

from __future__ import annotations

import os

import httpx

__all__ = ["MlflowAccountError", "account_works", "ensure_user", "export_client_credentials"]

USERS_API = "/api/2.0/mlflow/users"
PROBE_PATH = "/api/2.0/mlflow/experiments/search"


class MlflowAccountError(RuntimeError):
    """MLflow refused to create or update an account (a permanent refusal, not an outage)."""


def ensure_user(
    base_url: str, *, admin: tuple[str, str], username: str, password: str, timeout_s: float = 10.0
) -> None:
    """Create the non-admin account `username`, or set its password if it exists: safe to call on every start.

    Connection errors propagate as `httpx.TransportError` (MLflow is not up yet: the caller may retry);
    a refusal raises `MlflowAccountError`.
    """
    with httpx.Client(base_url=base_url.rstrip("/"), auth=admin, timeout=timeout_s) as client:
        created = client.post(f"{USERS_API}/create", json={"username": username, "password": password})
        if created.status_code == 200:
            return
        if "RESOURCE_ALREADY_EXISTS" not in created.text:
            raise MlflowAccountError(
                f"MLflow refused to create account {username!r}: {created.status_code} {created.text[:300]}"
            )
        updated = client.patch(f"{USERS_API}/update-password", json={"username": username, "password": password})
        if updated.status_code != 200:
            raise MlflowAccountError(
                f"MLflow refused the password of account {username!r}: {updated.status_code} {updated.text[:300]}"
            )


def account_works(base_url: str, *, username: str, password: str, timeout_s: float = 10.0) -> bool:
    """True once MLflow accepts these credentials (a read any account may do)."""
    try:
        response = httpx.get(
            base_url.rstrip("/") + PROBE_PATH,
            params={"max_results": 1},
            auth=(username, password),
            timeout=timeout_s,
        )
    except httpx.TransportError:
        return False
    return response.status_code == 200


def export_client_credentials(username: str, password: str) -> None:
    """Hand the account to the MLflow client library, which reads it only from these variables.

    They live in this process's environment; the job sandbox builds its environment from nothing
    (gpu_runner/execute.py `job_environment`), so a job never sees them. Credentials in the tracking
    URI instead would end up in MLflow's error messages, and from there in logs.
    """
    os.environ["MLFLOW_TRACKING_USERNAME"] = username
    os.environ["MLFLOW_TRACKING_PASSWORD"] = password
