"""Unit tests of the filer event -> MinIO event translation and of the tail output parser.

The filer events are built like the real `weed filer.meta.tail` output of SeaweedFS 4.48.
"""

from __future__ import annotations

import base64
import json
import random
from typing import Any

import pytest

from leadersboard.models.s3_events import S3EventEnvelope
from tests.reference import MINIO_EVENT_SAMPLE, SHARED_REFERENCE
from tools.bridge.translate import (
    COMPLETE_MULTIPART,
    PUT,
    EventStreamParser,
    minio_event_time,
    to_minio_event,
)

BUCKET = "lbtest"
TS_NS = 1795746448897807931
ETAG = "81d95db337a18c65384d35ba7ea2efda"


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _entry(
    name: str,
    *,
    size: int = 7,
    etag: str = ETAG,
    mime: str = "text/plain; charset=utf-8",
    is_directory: bool = False,
    extended: dict[str, str] | None = None,
) -> dict[str, Any]:
    ext = {"Seaweed-X-Amz-ETag": etag, "Seaweed-X-Amz-Owner": "admin", **(extended or {})}
    return {
        "name": name,
        "isDirectory": is_directory,
        "chunks": [] if is_directory else [{"fileId": "3,01637037d6", "offset": "0", "size": str(size)}],
        "attributes": {
            "fileSize": "0" if is_directory else str(size),
            "mtime": str(TS_NS // 10**9),
            "fileMode": 2147484159 if is_directory else 432,
            "mime": "" if is_directory else mime,
            "md5": "" if is_directory else base64.b64encode(bytes.fromhex(etag[:32])).decode(),
        },
        "extended": {} if is_directory else {k: _b64(v) for k, v in ext.items()},
        "hardLinkId": "",
        "content": "",
        "remoteEntry": None,
    }


def _event(
    directory: str,
    new_entry: dict[str, Any] | None,
    *,
    old_entry: dict[str, Any] | None = None,
    ts_ns: int = TS_NS,
) -> dict[str, Any]:
    return {
        "directory": directory,
        "eventNotification": {
            "oldEntry": old_entry,
            "newEntry": new_entry,
            "deleteChunks": True,
            "newParentPath": directory if new_entry is not None else "",
            "isFromOtherCluster": False,
            "signatures": [617372880],
        },
        "tsNs": str(ts_ns),
        "events": [],
        "logFileRefs": [],
        "flushedTsNs": "0",
    }


def _put_event(key: str, **entry_args: Any) -> dict[str, Any]:
    directory, _, name = f"/buckets/{BUCKET}/{key}".rpartition("/")
    return _event(directory, _entry(name, **entry_args))


def _key_tree(value: Any) -> Any:
    """The keys of every object, recursively; lists by their items, leaves as None."""
    if isinstance(value, dict):
        return {key: _key_tree(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_key_tree(item) for item in value]
    return None


def test_put_matches_the_minio_sample_shape() -> None:
    envelope = to_minio_event(_put_event("submissions/u/abc/manifest.json"), bucket=BUCKET)

    assert envelope is not None
    produced = json.loads(envelope.model_dump_json())
    sample = json.loads(MINIO_EVENT_SAMPLE.read_text())
    assert _key_tree(produced) == _key_tree(sample)
    assert S3EventEnvelope.model_validate(produced) == envelope
    for produced_leaf, sample_leaf in zip(_leaves(produced["Records"][0]), _leaves(sample["Records"][0]), strict=True):
        assert type(produced_leaf) is type(sample_leaf)


def _leaves(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [leaf for key in sorted(value) for leaf in _leaves(value[key])]
    return [value]


def test_put_values() -> None:
    envelope = to_minio_event(
        _put_event("submissions/u/abc/manifest.json", extended={"X-Amz-Meta-X": "y"}), bucket=BUCKET
    )

    assert envelope is not None
    assert envelope.EventName == PUT
    assert envelope.Key == f"{BUCKET}/submissions/u/abc/manifest.json"
    record = envelope.Records[0]
    assert record.eventName == PUT
    assert record.eventSource == "minio:s3"
    assert record.eventVersion == "2.0"
    assert record.eventTime == "2026-11-27T02:27:28.897Z"
    assert record.s3.s3SchemaVersion == "1.0"
    assert record.s3.configurationId == "Config"
    assert record.s3.bucket.name == BUCKET
    assert record.s3.bucket.arn == f"arn:aws:s3:::{BUCKET}"
    obj = record.s3.object
    assert obj.key == "submissions%2Fu%2Fabc%2Fmanifest.json"
    assert obj.size == 7
    assert obj.eTag == ETAG
    assert obj.contentType == "text/plain; charset=utf-8"
    assert obj.userMetadata == {"content-type": "text/plain; charset=utf-8", "X-Amz-Meta-X": "y"}
    assert obj.sequencer == f"{TS_NS:X}"
    assert obj.sequencer == obj.sequencer.upper()


def test_key_is_query_escaped_like_go() -> None:
    envelope = to_minio_event(_put_event("a dir/sub dir/x+y=z&é.txt"), bucket=BUCKET)

    assert envelope is not None
    assert envelope.Key == f"{BUCKET}/a dir/sub dir/x+y=z&é.txt"
    # Go: url.QueryEscape("a dir/sub dir/x+y=z&é.txt")
    assert envelope.Records[0].s3.object.key == "a+dir%2Fsub+dir%2Fx%2By%3Dz%26%C3%A9.txt"


def test_event_time_has_milliseconds_in_utc() -> None:
    assert minio_event_time(0) == "1970-01-01T00:00:00.000Z"
    assert minio_event_time(1_500_000_123_999_999_999) == "2017-07-14T02:42:03.999Z"


def test_directory_event_is_dropped() -> None:
    event = _event(f"/buckets/{BUCKET}/submissions", _entry("u", is_directory=True))
    assert to_minio_event(event, bucket=BUCKET) is None


def test_bucket_creation_is_dropped() -> None:
    assert to_minio_event(_event("/buckets", _entry(BUCKET, is_directory=True)), bucket=BUCKET) is None


def test_multipart_part_under_uploads_is_dropped() -> None:
    upload_dir = f"/buckets/{BUCKET}/.uploads/cb7b3ddf79a51218207090bc3a8ad458358a3f09_40a96e99f3004ac4"
    event = _event(upload_dir, _entry("0001_28e5369e-4e4e-4ea8-af51-ae0104c3261c.part", size=5242890))
    assert to_minio_event(event, bucket=BUCKET) is None


def test_system_paths_and_other_buckets_are_dropped() -> None:
    system = _event("/buckets/.system/log/2026-11-26", _entry("22-47.00000000"))
    # `-pathPrefix=/buckets/lbtest` streams `/buckets/lbtest2/...` too.
    neighbour = _event(f"/buckets/{BUCKET}2/x", _entry("y.txt"))
    assert to_minio_event(system, bucket=BUCKET) is None
    assert to_minio_event(neighbour, bucket=BUCKET) is None


def test_delete_is_dropped() -> None:
    event = _event(f"/buckets/{BUCKET}/x", None, old_entry=_entry("y.txt"))
    assert to_minio_event(event, bucket=BUCKET) is None


def test_update_without_new_content_is_dropped() -> None:
    # What SeaweedFS logs for put_object_tagging or a re-PUT of identical bytes.
    old = _entry("y.txt")
    new = _entry("y.txt", extended={"X-Amz-Tagging-k": "v"})
    event = _event(f"/buckets/{BUCKET}/x", new, old_entry=old)
    assert to_minio_event(event, bucket=BUCKET) is None


def test_overwrite_with_new_content_is_a_put() -> None:
    old = _entry("y.txt", size=1, etag="9dd4e461268c8034f5c8564e155c67a6")
    new = _entry("y.txt", size=2, etag="2fb1c5cf58867b5bbc9a1b145a86f3a0")
    envelope = to_minio_event(_event(f"/buckets/{BUCKET}/x", new, old_entry=old), bucket=BUCKET)
    assert envelope is not None
    assert envelope.EventName == PUT
    assert envelope.Records[0].s3.object.eTag == "2fb1c5cf58867b5bbc9a1b145a86f3a0"


def test_multipart_final_object_is_complete_multipart_upload() -> None:
    upload_id = "cb7b3ddf79a51218207090bc3a8ad458358a3f09_40a96e99f3004ac4abe0bc4cf4081384"
    event = _put_event(
        "big/file.bin",
        size=10485780,
        etag="3e4b4aa92be4d9d32273b6d02ff07672-2",
        mime="",
        extended={
            "X-Amz-Meta-M": "n",
            "X-Seaweedfs-Multipart-Parts-Count": "2",
            "X-Seaweedfs-Upload-Id": upload_id,
        },
    )
    envelope = to_minio_event(event, bucket=BUCKET)

    assert envelope is not None
    assert envelope.EventName == COMPLETE_MULTIPART
    obj = envelope.Records[0].s3.object
    assert envelope.Records[0].eventName == COMPLETE_MULTIPART
    assert obj.eTag == "3e4b4aa92be4d9d32273b6d02ff07672-2"
    assert obj.size == 10485780
    # SeaweedFS records no mime for a multipart object created without ContentType.
    assert obj.contentType == "application/octet-stream"
    assert obj.userMetadata == {"content-type": "application/octet-stream", "X-Amz-Meta-M": "n"}


def test_user_metadata_is_decoded_and_internal_attributes_are_not() -> None:
    envelope = to_minio_event(
        _put_event(
            "k.txt",
            extended={
                "X-Amz-Meta-Author": "Zoë",
                "X-Amz-Meta-Run-Id": "42",
                "x-seaweedfs-checksum-value": "00MYQg==",
            },
        ),
        bucket=BUCKET,
    )
    assert envelope is not None
    assert envelope.Records[0].s3.object.userMetadata == {
        "content-type": "text/plain; charset=utf-8",
        "X-Amz-Meta-Author": "Zoë",
        "X-Amz-Meta-Run-Id": "42",
    }
    assert envelope.Records[0].userIdentity == {"principalId": "admin"}


def _tail_output(events: list[dict[str, Any]]) -> str:
    # The tail's layout: protojson multiline, two spaces after colons, objects back to back.
    dumped = (json.dumps(event, indent=2, ensure_ascii=False) for event in events)
    return "".join(text.replace('": ', '":  ') + "\n" for text in dumped)


@pytest.mark.parametrize("seed", range(20))
def test_parser_handles_chunks_split_anywhere(seed: int) -> None:
    events = [_put_event(f"dir {i}/é{i}.txt", size=i + 1) for i in range(5)]
    for i, event in enumerate(events):
        event["tsNs"] = str(TS_NS + i)
    text = _tail_output(events)
    rng = random.Random(seed)
    cuts = sorted(rng.sample(range(1, len(text)), 12))
    parser = EventStreamParser()

    parsed: list[dict[str, Any]] = []
    for start, end in zip([0, *cuts], [*cuts, len(text)], strict=True):
        parsed += parser.feed(text[start:end])

    assert parsed == events
    assert parser.reset() == ""


def test_parser_one_character_at_a_time() -> None:
    events = [_put_event("a.txt"), _put_event("b.txt")]
    parser = EventStreamParser()
    parsed = [event for char in _tail_output(events) for event in parser.feed(char)]
    assert parsed == events


def test_parser_skips_the_tails_error_lines(caplog: pytest.LogCaptureFixture) -> None:
    event = _put_event("a.txt")
    error = (
        "tail 127.0.0.1:1: subscribing filer meta change: subscribe: rpc error: code = Unavailable "
        'desc = "transport: Error while dialing"\n'
    )
    parser = EventStreamParser()

    parsed = parser.feed(error[:30]) + parser.feed(error[30:] + _tail_output([event]))

    assert parsed == [event]
    assert "subscribing filer meta change" in caplog.text


def test_parser_expands_batched_responses() -> None:
    first, second, third = (_put_event(f"{name}.txt") for name in "abc")
    for i, event in enumerate((first, second, third)):
        event["tsNs"] = str(TS_NS + i)
    first["events"] = [second, third]

    assert EventStreamParser().feed(_tail_output([first])) == [first, second, third]


def test_parser_reset_returns_a_partial_object() -> None:
    parser = EventStreamParser()
    text = _tail_output([_put_event("a.txt")])
    assert parser.feed(text[:100]) == []
    assert parser.reset() == text[:100]
    assert parser.feed(text) == [_put_event("a.txt")]


@pytest.mark.skipif(not SHARED_REFERENCE.is_dir(), reason="../shared/reference is not beside this checkout")
def test_the_reference_copies_are_current() -> None:
    assert MINIO_EVENT_SAMPLE.read_bytes() == (SHARED_REFERENCE / MINIO_EVENT_SAMPLE.name).read_bytes()
