"""The store's "not found" rule (leadersboard.s3.is_not_found): on made-up answers, and as a real SeaweedFS answers."""

from __future__ import annotations

import secrets
from collections.abc import Callable

import pytest
from botocore.exceptions import ClientError
from pydantic import SecretStr

from leadersboard.s3 import NOT_FOUND_CODES, S3Client, error_code, head, is_not_found, make_client
from leadersboard.settings import S3Settings


def refused(code: str, operation: str = "GetObject") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "refused"}}, operation)


@pytest.mark.parametrize("code", sorted(NOT_FOUND_CODES))
def test_each_not_found_code_is_recognised(code: str) -> None:
    assert is_not_found(refused(code))


@pytest.mark.parametrize("code", ["NoSuchBucket", "NoSuchUpload", "AccessDenied", "403", "InvalidRange", "500", ""])
def test_other_refusals_are_not_taken_for_a_missing_object(code: str) -> None:
    assert not is_not_found(refused(code))


def test_errors_that_are_not_store_answers_are_not_taken_for_a_missing_object() -> None:
    assert not is_not_found(FileNotFoundError("404"))
    assert not is_not_found(ClientError({}, "HeadObject"))  # an answer without an error code
    assert error_code(KeyError("NoSuchKey")) is None


def test_error_code_is_the_stores_code() -> None:
    assert error_code(refused("InvalidRange")) == "InvalidRange"


# --- as SeaweedFS answers --------------------------------------------------------------------------------------


def answer(call: Callable[[], object]) -> ClientError:
    with pytest.raises(ClientError) as caught:
        call()
    return caught.value


def test_a_missing_key_is_not_found_on_get_and_on_head(s3_settings: S3Settings) -> None:
    s3, bucket, key = make_client(s3_settings), s3_settings.bucket, "submissions/nobody/" + secrets.token_hex(8)
    got = answer(lambda: s3.get_object(Bucket=bucket, Key=key))
    headed = answer(lambda: s3.head_object(Bucket=bucket, Key=key))
    ranged = answer(lambda: s3.get_object(Bucket=bucket, Key=key, Range="bytes=0-99"))
    assert [is_not_found(exc) for exc in (got, headed, ranged)] == [True, True, True], (
        error_code(got), error_code(headed), error_code(ranged),
    )  # fmt: skip
    assert head(s3, bucket, key) is None


def test_a_present_key_is_found(s3_settings: S3Settings) -> None:
    s3, bucket = make_client(s3_settings), s3_settings.bucket
    s3.put_object(Bucket=bucket, Key="present", Body=b"12345")
    info = head(s3, bucket, "present")
    assert info is not None and info.size == 5


def test_a_missing_bucket_on_get_is_not_a_missing_object(s3_settings: S3Settings) -> None:
    s3 = make_client(s3_settings)
    exc = answer(lambda: s3.get_object(Bucket="missing-" + secrets.token_hex(6), Key="anything"))
    assert error_code(exc) == "NoSuchBucket"
    assert not is_not_found(exc)


def test_wrong_credentials_are_not_a_missing_object(s3_settings: S3Settings) -> None:
    wrong: S3Client = make_client(s3_settings.model_copy(update={"s3_secret_key": SecretStr("not-the-secret")}))
    bucket, key = s3_settings.bucket, "absent-" + secrets.token_hex(6)
    got = answer(lambda: wrong.get_object(Bucket=bucket, Key=key))
    headed = answer(lambda: wrong.head_object(Bucket=bucket, Key=key))
    assert not is_not_found(got), error_code(got)
    assert not is_not_found(headed), error_code(headed)
    with pytest.raises(ClientError):
        head(wrong, bucket, key)  # raised, not taken for "no such object"
