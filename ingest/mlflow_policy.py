"""What a signed-in user (not an admin) may ask MLflow through ingest's proxy (docs/reliability.md, "Visibility").

Users are read-only, and the decision is an allow-list: a route MLflow adds in a later version is refused
until it is listed here. Every signed-in user reads the leaderboard facts of every run (names, status, tags,
params, metrics); a run's artifacts (job.log, output/...) only its owner may read, except `metrics.json`.
The classification here is pure (method, path, query); the proxy (ingest/mlflow_proxy.py) looks up the
run's owner for the verdicts that need one.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum

from multidict import MultiMapping

__all__ = ["PUBLIC_ARTIFACT", "READ_ONLY", "Kind", "Verdict", "classify", "filter_listing", "visible_to_others"]

PUBLIC_ARTIFACT = "metrics.json"
"""The one artifact of a run every signed-in user may read: the metrics it is ranked by."""

_READ_METHODS = frozenset({"GET", "HEAD"})
_API = re.compile(r"^/(?:ajax-)?api/[23]\.0/?mlflow/(?P<rest>.*)$")
# Areas whose GET routes only read what every user may see (experiments, runs, their metrics, ...).
_READ_AREAS = frozenset(
    {
        "experiments", "runs", "metrics", "registered-models", "model-versions", "logged-models", "traces",
        "unified-traces", "datasets", "server-info", "ui-telemetry", "label-schemas", "review-queues",
    }
)  # fmt: skip
# POST routes that only read (searches the UI sends as POST); every other POST, PUT, PATCH, DELETE writes.
_READ_POSTS = frozenset(
    {
        "experiments/search", "experiments/search-datasets", "runs/search", "logged-models/search",
        "registered-models/get-latest-versions", "traces/search", "traces/batchGetInfos", "traces/metrics",
        "traces/calculate-filter-correlation", "datasets/search", "metrics/get-history-bulk-interval",
    }
)  # fmt: skip
# Never for users, under any area: accounts and permissions of MLflow's own auth app.
_PRIVATE_SEGMENTS = frozenset({"users", "roles", "permissions"})
_UI_PATHS = frozenset({"/", "/health", "/version", "/favicon.ico"})
_UI_PREFIXES = ("/static-files/",)
_ARTIFACT_LIST = re.compile(r"^/(?:ajax-)?api/2\.0/mlflow/artifacts/list$")
_PROXIED_ARTIFACT = re.compile(r"^/(?:ajax-)?api/2\.0/mlflow-artifacts/(?:artifacts|presigned)/(?P<path>.+)$")
_PROXIED_LIST = re.compile(r"^/(?:ajax-)?api/2\.0/mlflow-artifacts/artifacts/?$")
# Under the artifact destination a run's files are `<experiment id>/<run id>/artifacts/<path>`.
_RUN_ARTIFACT = re.compile(r"^(?P<experiment>[0-9]+)/(?P<run>[0-9a-f]{32})/artifacts(?:/(?P<path>.*))?$")
_RUN_ID = re.compile(r"^[0-9a-f]{32}$")
_DOT_SEGMENT = re.compile(r"(^|/)\.{1,2}(/|$)")


class Kind(Enum):
    ALLOW = "allow"
    DENY = "deny"
    ARTIFACT = "artifact"
    """One artifact of a run: its owner, or `metrics.json` for anyone."""
    ARTIFACT_LIST = "artifact_list"
    """The listing of a run's artifacts: whole for its owner; others see only `metrics.json` at its root."""
    GRAPHQL = "graphql"
    """MLflow's GraphQL endpoint: reads only, but `mlflowListArtifacts` is refused (its body is checked)."""


@dataclass(frozen=True)
class Verdict:
    kind: Kind
    reason: str = ""
    run_id: str = ""
    experiment_id: str | None = None
    """Set when the request names the experiment too (mlflow-artifacts paths): it must be the run's."""
    path: str = ""
    """The artifact path relative to the run's artifact root ("" for the root)."""


def _deny(reason: str) -> Verdict:
    return Verdict(Kind.DENY, reason)


READ_ONLY = "MLflow is read-only for users: runs are written by the platform's runners only"


def classify(method: str, path: str, query: MultiMapping[str]) -> Verdict:
    """The verdict for a user's request (admins are not classified: they may do everything)."""
    method = method.upper()
    if _DOT_SEGMENT.search(path):  # a path MLflow's router might resolve to another route than this one
        return _deny("paths with `.` or `..` segments are refused")
    if path == "/get-artifact" or _ARTIFACT_LIST.match(path):
        return _run_artifact_request(method, path, query)
    if proxied := _PROXIED_ARTIFACT.match(path):
        return _proxied_artifact(method, proxied["path"], listing=False)
    if _PROXIED_LIST.match(path):
        if len(query.getall("path", [])) > 1:
            return _deny("path: give it once")
        return _proxied_artifact(method, query.get("path", ""), listing=True)
    if path == "/graphql":
        return Verdict(Kind.GRAPHQL) if method in ("GET", "POST") else _deny(READ_ONLY)
    if path in _UI_PATHS or path.startswith(_UI_PREFIXES):
        return Verdict(Kind.ALLOW) if method in _READ_METHODS else _deny(READ_ONLY)
    api = _API.match(path)
    if api is None:
        return _deny("this MLflow page is for administrators")
    rest = api["rest"].rstrip("/")
    segments = rest.split("/")
    if _PRIVATE_SEGMENTS.intersection(segments) or "artifact" in rest:
        return _deny("MLflow accounts, permissions and this artifact route are for administrators")
    if method in _READ_METHODS and segments[0] in _READ_AREAS:
        return Verdict(Kind.ALLOW)
    if method == "POST" and rest in _READ_POSTS:
        return Verdict(Kind.ALLOW)
    if method in _READ_METHODS:
        return _deny("this MLflow area is for administrators")
    return _deny(READ_ONLY)


def _single(query: MultiMapping[str], name: str) -> str | None:
    values = query.getall(name, [])
    if len(values) > 1:
        raise ValueError(name)
    return values[0] if values else None


def _run_artifact_request(method: str, path: str, query: MultiMapping[str]) -> Verdict:
    """`/get-artifact` and `artifacts/list`, which name the run by `run_id` or `run_uuid` (MLflow takes either)."""
    if method not in _READ_METHODS:
        return _deny(READ_ONLY)
    try:
        run_id = _single(query, "run_id") or _single(query, "run_uuid") or ""
        artifact = _single(query, "path")
    except ValueError as exc:  # MLflow and this proxy might read different copies of a repeated parameter
        return _deny(f"{exc}: give it once")
    if not _RUN_ID.match(run_id):
        return _deny("run_id: not a run id (32 hexadecimal characters)")
    if path == "/get-artifact":
        return Verdict(Kind.ARTIFACT, run_id=run_id, path=artifact or "")
    return Verdict(Kind.ARTIFACT_LIST, run_id=run_id, path=artifact or "")


def _proxied_artifact(method: str, artifact_path: str, *, listing: bool) -> Verdict:
    """mlflow-artifacts routes address files under the artifact destination: `<experiment>/<run>/artifacts/..`."""
    if method not in _READ_METHODS:
        return _deny(READ_ONLY)
    found = _RUN_ARTIFACT.match(artifact_path.strip("/"))
    if found is None:
        return _deny("artifacts are listed and read per run: <experiment id>/<run id>/artifacts/<path>")
    kind = Kind.ARTIFACT_LIST if listing else Kind.ARTIFACT
    return Verdict(kind, run_id=found["run"], experiment_id=found["experiment"], path=found["path"] or "")


def visible_to_others(verdict: Verdict) -> bool:
    """Whether a user other than the run's owner may have this artifact."""
    return verdict.kind is Kind.ARTIFACT and verdict.path == PUBLIC_ARTIFACT


def filter_listing(body: Mapping[str, object]) -> dict[str, object]:
    """A run's root listing as a user other than its owner sees it: only `metrics.json`."""
    files = body.get("files")
    kept = (
        [f for f in files if isinstance(f, dict) and f.get("path") == PUBLIC_ARTIFACT]
        if isinstance(files, list)
        else []
    )
    return {**body, "files": kept}
