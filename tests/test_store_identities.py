"""Each service's own S3 identity on the real `weed mini`, started the stack's way (leadersboard/store_access.py).

Before: every service of the local stack used the one admin identity, so a runner's key could read anything the
store held. Now the reference bucket (benchmarks' labels and masks) answers only the scorer (read) and ingest
(an admin's presigned upload, and its ready check); a runner's key is refused there, signed or presigned.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import botocore.exceptions
import httpx
import pytest
from pydantic import SecretStr

from leadersboard import store_access
from leadersboard.s3 import S3Client, ensure_bucket, head, make_client
from leadersboard.settings import S3Settings
from leadersboard.store_access import Access, Bucket
from tools.stack.procs import SeaweedPorts
from tools.stack.services import Seaweed, start_seaweed
from tools.stack.up import Stack

pytestmark = pytest.mark.timeout(180)

REFERENCE_KEY = "bench/v1/reference.zip"
MAIN_KEY = "results/alice/abc/output/predictions/scores.csv"
BODY = b"labels and masks " + secrets.token_hex(8).encode()


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seaweed]:
    """A store with the platform's two buckets (default names, as the stack and compose use), each holding one
    object written by the admin."""
    server = start_seaweed(
        tmp_path_factory.mktemp("identities"),
        ports=SeaweedPorts.free(),
        access_key="admin-" + secrets.token_hex(4),
        secret_key=secrets.token_hex(16),
    )
    admin = make_client(server.settings(server.buckets.bucket))
    for bucket, key in ((server.buckets.bucket, MAIN_KEY), (server.buckets.reference_bucket, REFERENCE_KEY)):
        ensure_bucket(admin, bucket)
        admin.put_object(Bucket=bucket, Key=key, Body=BODY)
    yield server
    server.process.stop()


def _client(store: Seaweed, service: str) -> S3Client:
    return make_client(store.settings_as(service))


def _bucket(settings: S3Settings, bucket: Bucket) -> str:
    return settings.bucket if bucket is Bucket.MAIN else settings.reference_bucket


def _key(bucket: Bucket) -> str:
    return MAIN_KEY if bucket is Bucket.MAIN else REFERENCE_KEY


def _attempt(client: S3Client, kind: Access, bucket: str, key: str) -> Callable[[], Any]:
    return {
        Access.READ: lambda: client.get_object(Bucket=bucket, Key=key)["Body"].read(),
        Access.WRITE: lambda: client.put_object(Bucket=bucket, Key=f"planted/{secrets.token_hex(4)}", Body=b"x"),
        Access.LIST: lambda: client.list_objects_v2(Bucket=bucket),
    }[kind]


def _denied(call: Callable[[], Any]) -> bool:
    try:
        call()
    except botocore.exceptions.ClientError as exc:
        assert exc.response["Error"]["Code"] in {"AccessDenied", "403"}, exc.response["Error"]
        return True
    return False


@pytest.mark.parametrize("service", store_access.SERVICES)
def test_each_identity_can_do_exactly_what_the_description_grants(store: Seaweed, service: str) -> None:
    client, settings = _client(store, service), store.settings_as(service)
    granted = store_access.access(service)
    for bucket in Bucket:
        for kind in Access:
            allowed = kind in granted.get(bucket, ())
            denied = _denied(_attempt(client, kind, _bucket(settings, bucket), _key(bucket)))
            assert denied is not allowed, f"{service}: {kind.value} on the {bucket.value} bucket"


def test_the_runners_key_cannot_read_list_or_write_the_reference_part(store: Seaweed) -> None:
    runner, bucket = _client(store, store_access.RUNNER), store.buckets.reference_bucket
    assert _denied(lambda: runner.get_object(Bucket=bucket, Key=REFERENCE_KEY))
    assert _denied(lambda: runner.list_objects_v2(Bucket=bucket))
    assert _denied(lambda: runner.put_object(Bucket=bucket, Key=REFERENCE_KEY, Body=b"forged labels"))
    assert _denied(lambda: runner.delete_object(Bucket=bucket, Key=REFERENCE_KEY))
    with pytest.raises(botocore.exceptions.ClientError, match="403"):
        runner.head_object(Bucket=bucket, Key=REFERENCE_KEY)
    # A URL it presigns itself carries its own rights, not more.
    url = runner.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": REFERENCE_KEY}, ExpiresIn=60)
    refused = httpx.get(url)
    assert refused.status_code == 403 and BODY not in refused.content
    # Nor does it learn the bucket exists.
    assert bucket not in {b["Name"] for b in runner.list_buckets()["Buckets"]}
    assert _client(store, store_access.SCORER).get_object(Bucket=bucket, Key=REFERENCE_KEY)["Body"].read() == BODY


def test_the_scorer_reads_the_reference_part_and_nothing_writes_it_but_ingest(store: Seaweed) -> None:
    bucket = store.buckets.reference_bucket
    scorer, ingest = _client(store, store_access.SCORER), _client(store, store_access.INGEST)
    assert scorer.get_object(Bucket=bucket, Key=REFERENCE_KEY)["Body"].read() == BODY
    assert _denied(lambda: scorer.put_object(Bucket=bucket, Key=REFERENCE_KEY, Body=b"x"))
    # Ingest presigns an admin's upload into it and checks its size once it arrived (a missing one is None).
    key = "uploaded/v1/reference.zip"
    assert head(ingest, bucket, key) is None
    url = ingest.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=60)
    assert httpx.put(url, content=b"reference zip").status_code == 200
    found = head(ingest, bucket, key)
    assert found is not None and found.size == len(b"reference zip")
    assert scorer.get_object(Bucket=bucket, Key=key)["Body"].read() == b"reference zip"
    # The dispatcher only reads the main bucket.
    dispatcher = _client(store, store_access.DISPATCHER)
    assert dispatcher.get_object(Bucket=store.buckets.bucket, Key=MAIN_KEY)["Body"].read() == BODY
    assert _denied(lambda: dispatcher.get_object(Bucket=bucket, Key=key))


@pytest.mark.parametrize("service", store_access.SERVICES)
def test_every_identity_is_refused_without_a_valid_signature(store: Seaweed, service: str) -> None:
    settings = store.settings_as(service)
    bucket = settings.reference_bucket if Bucket.REFERENCE in store_access.access(service) else settings.bucket
    key = REFERENCE_KEY if bucket == settings.reference_bucket else MAIN_KEY
    url = f"{store.s3_url}/{bucket}/{key}"
    # No signature at all.
    assert httpx.get(url).status_code == 403
    # Its access key with a signature made without its secret.
    access_key = settings.s3_access_key.get_secret_value()
    forged = f"AWS4-HMAC-SHA256 Credential={access_key}/20260101/us-east-1/s3/aws4_request, "
    forged += f"SignedHeaders=host;x-amz-date, Signature={'0' * 64}"
    response = httpx.get(url, headers={"Authorization": forged, "x-amz-date": "20260101T000000Z"})
    assert response.status_code == 403 and BODY not in response.content
    # Its presigned URL with the signature changed.
    signed = make_client(settings).generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": key})
    assert httpx.get(signed).content == BODY  # the real one works
    tampered = signed[:-1] + ("0" if signed[-1] != "0" else "1")
    response = httpx.get(tampered)
    assert response.status_code == 403 and BODY not in response.content


def test_the_identities_file_is_private(store: Seaweed) -> None:
    path = Path(store.security.directory).parent / "s3-identities.json"
    assert path.stat().st_mode & 0o077 == 0


# --- the local stack -----------------------------------------------------------------------------


def _process_s3(stack: Stack, name: str) -> S3Settings:
    """The S3 settings the stack handed process `name`: its own identity."""
    env = stack.process(name).env
    [prefix] = {key.removesuffix("S3_ACCESS_KEY") for key in env if key.endswith("_S3_ACCESS_KEY")}
    keys = {"s3_access_key": env[f"{prefix}S3_ACCESS_KEY"], "s3_secret_key": env[f"{prefix}S3_SECRET_KEY"]}
    return stack.s3.model_copy(update={name: SecretStr(value) for name, value in keys.items()})


def test_the_stacks_runner_credential_is_refused_on_the_reference_part(stack: tuple[Stack, dict[str, Any]]) -> None:
    """The key pair the stack hands its runner process, tried against the reference bucket the stack created."""
    the_stack, _ = stack
    runner, scorer = _process_s3(the_stack, "runner"), _process_s3(the_stack, "scorer")
    assert runner.s3_access_key != the_stack.s3.s3_access_key, "the runner must not hold the admin's key"
    reference = the_stack.s3.reference_bucket
    make_client(the_stack.s3).put_object(Bucket=reference, Key=REFERENCE_KEY, Body=BODY)
    client = make_client(runner)
    assert _denied(lambda: client.get_object(Bucket=reference, Key=REFERENCE_KEY))
    assert _denied(lambda: client.list_objects_v2(Bucket=reference))
    assert _denied(lambda: client.put_object(Bucket=reference, Key=REFERENCE_KEY, Body=b"forged"))
    assert make_client(scorer).get_object(Bucket=reference, Key=REFERENCE_KEY)["Body"].read() == BODY
