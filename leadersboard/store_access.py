"""Who may do what in the object store: one description, rendered into the local stack's SeaweedFS identities and
compose's MinIO policies.

Every service has its own S3 identity (docs/architecture.md, "Store identities"), limited to the buckets and
the kinds of access its part needs. The point is the reference bucket (benchmarks' labels and masks): the
scorer reads it, ingest presigns an admin's upload into it and checks the upload arrived, and no other
identity (the runners' above all, which also travel to other GPU hosts) can read, list or write it.

Kinds of access, per bucket:

- READ: get and head an object by its key (a missing key answers 404);
- WRITE: put (also presigned, also multipart) and delete objects;
- LIST: list the keys under a prefix, and the multipart uploads in progress.

SeaweedFS takes them as bucket-scoped actions (`Read:<bucket>`, `Write:<bucket>`, `List:<bucket>`). MinIO takes
IAM policies; there READ also needs `s3:ListBucket`, without which MinIO answers a missing key with 403 instead
of 404 (AWS's rule), and the platform tells a missing object from a refusal by that status (leadersboard/s3.py).

    python -m leadersboard.store_access    # prints minio-init's generated block (infra/minio/init.sh)
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from leadersboard.settings import S3Settings

__all__ = [
    "DISPATCHER",
    "INGEST",
    "MLFLOW",
    "RUNNER",
    "SCORER",
    "SERVICES",
    "Access",
    "Bucket",
    "access",
    "compose_key_vars",
    "minio_policy",
    "render_minio_identities",
    "seaweed_actions",
]

INGEST = "ingest"
DISPATCHER = "dispatcher"
RUNNER = "runner"
SCORER = "scorer"
MLFLOW = "mlflow"
"""The MLflow server: its artifact store is `s3://<bucket>/mlflow` (clients reach artifacts only through it)."""


class Access(StrEnum):
    READ = "Read"
    WRITE = "Write"
    LIST = "List"


class Bucket(StrEnum):
    MAIN = "main"
    """`S3Settings.bucket`: submissions, results, MLflow's artifacts, benchmarks' public parts."""
    REFERENCE = "reference"
    """`S3Settings.reference_bucket`: benchmarks' reference parts, for the scorer's eyes only."""


_R = (Access.READ,)
_RW = (Access.READ, Access.WRITE)
_RWL = (Access.READ, Access.WRITE, Access.LIST)

_GRANTS: dict[str, dict[Bucket, tuple[Access, ...]]] = {
    # Presigns uploads (submissions; an admin's benchmark parts into the reference bucket), heads what arrived,
    # reads logs; deletes submissions, applies the retention policy (listing, aborting stale multipart uploads)
    # and counts each user's storage in the main bucket.
    INGEST: {Bucket.MAIN: _RWL, Bucket.REFERENCE: _RW},
    # Reads manifests and checks the declared files are there.
    DISPATCHER: {Bucket.MAIN: _R},
    # Downloads a job's files and a benchmark's public part, uploads results and predictions.
    RUNNER: {Bucket.MAIN: _RW},
    # Reads a benchmark's reference part and a job's predictions (listed), writes scores.json and replicates.u16.
    SCORER: {Bucket.MAIN: _RWL, Bucket.REFERENCE: _R},
    # MLflow's artifact store lists runs' artifacts.
    MLFLOW: {Bucket.MAIN: _RWL},
}
SERVICES = tuple(_GRANTS)


def access(service: str) -> Mapping[Bucket, tuple[Access, ...]]:
    """What `service` may do in each bucket it may touch at all."""
    return _GRANTS[service]


def _bucket_name(bucket: Bucket, settings: S3Settings) -> str:
    return settings.bucket if bucket is Bucket.MAIN else settings.reference_bucket


def seaweed_actions(service: str, settings: S3Settings) -> list[str]:
    """SeaweedFS's bucket-scoped actions of `service`'s identity (`s3-identities.json`)."""
    return [
        f"{kind.value}:{_bucket_name(bucket, settings)}" for bucket, kinds in _GRANTS[service].items() for kind in kinds
    ]


def compose_key_vars(service: str) -> tuple[str, str]:
    """The .env variables holding `service`'s S3 access key and secret key in docker-compose."""
    return f"S3_{service.upper()}_ACCESS_KEY", f"S3_{service.upper()}_SECRET_KEY"


_MINIO_BUCKET_ACTIONS = {
    Access.READ: ["s3:ListBucket"],
    Access.LIST: ["s3:ListBucket", "s3:ListBucketMultipartUploads"],
    Access.WRITE: [],
}
_MINIO_OBJECT_ACTIONS = {
    Access.READ: ["s3:GetObject"],
    Access.WRITE: ["s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"],
    Access.LIST: [],
}


def minio_policy(service: str, buckets: Mapping[Bucket, str]) -> dict[str, Any]:
    """`service`'s MinIO IAM policy; `buckets` names each bucket (literally, or `$VAR` for the shell)."""
    statements: list[dict[str, Any]] = []
    for bucket, kinds in _GRANTS[service].items():
        name = buckets[bucket]
        on_bucket = sorted({action for kind in kinds for action in _MINIO_BUCKET_ACTIONS[kind]})
        on_objects = [action for kind in kinds for action in _MINIO_OBJECT_ACTIONS[kind]]
        statements.append(
            {"Effect": "Allow", "Action": ["s3:GetBucketLocation", *on_bucket], "Resource": [f"arn:aws:s3:::{name}"]}
        )
        statements.append({"Effect": "Allow", "Action": on_objects, "Resource": [f"arn:aws:s3:::{name}/*"]})
    return {"Version": "2012-10-17", "Statement": statements}


MINIO_BUCKET_VARS = {Bucket.MAIN: "$LB_BUCKET", Bucket.REFERENCE: "$LB_REFERENCE_BUCKET"}


def render_minio_identities() -> str:
    """minio-init's shell lines: each service's policy (a here-document) and its user (`ensure_identity`)."""
    lines: list[str] = []
    for service in SERVICES:
        access_var, secret_var = compose_key_vars(service)
        policy = minio_policy(service, MINIO_BUCKET_VARS)
        statements = ",\n".join(f"  {json.dumps(statement)}" for statement in policy["Statement"])
        lines += [
            f"cat > /tmp/policy-{service}.json <<POLICY",
            f'{{"Version": {json.dumps(policy["Version"])}, "Statement": [',
            statements,
            "]}",
            "POLICY",
            f'ensure_identity {service} "${access_var}" "${secret_var}" /tmp/policy-{service}.json',
        ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(render_minio_identities(), end="")
