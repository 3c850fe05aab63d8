"""SeaweedFS filer metadata events -> MinIO's S3 event envelope, and the parser of the tail's output.

`weed filer.meta.tail` prints one pretty-printed protobuf-JSON object per filer event (camelCase
fields, int64 values as strings, `extended` values base64). Only the event that makes an object's
new content visible becomes an S3 event; everything else (directories, multipart parts under
`.uploads/`, deletes, metadata-only updates such as tagging) is dropped. MinIO does publish
`s3:ObjectCreated:PutTagging` and the like under `--event put`, but they carry no new content, so
the bridge leaves them out; a copy cannot be told from a put in the filer log and becomes `:Put`.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote_plus

from leadersboard.models.s3_events import S3Bucket, S3Entity, S3EventEnvelope, S3EventRecord, S3Object

__all__ = [
    "COMPLETE_MULTIPART",
    "PUT",
    "EventStreamParser",
    "event_ts_ns",
    "minio_event_time",
    "object_key",
    "to_minio_event",
]

log = logging.getLogger(__name__)

PUT = "s3:ObjectCreated:Put"
COMPLETE_MULTIPART = "s3:ObjectCreated:CompleteMultipartUpload"

BUCKETS_DIR = "/buckets"
# SeaweedFS keeps in-progress multipart uploads (one directory per upload, one file per part) here.
UPLOADS_DIR = ".uploads"
EXT_ETAG = "Seaweed-X-Amz-ETag"
EXT_OWNER = "Seaweed-X-Amz-Owner"
EXT_UPLOAD_ID = "X-Seaweedfs-Upload-Id"
USER_META_PREFIX = "x-amz-meta-"
# What MinIO records when the client sent no Content-Type and the extension says nothing.
DEFAULT_CONTENT_TYPE = "application/octet-stream"

JsonDict = dict[str, Any]


def to_minio_event(filer_event: JsonDict, *, bucket: str) -> S3EventEnvelope | None:
    """The envelope MinIO would publish for this filer event, or None when it would publish none.

    None for: directories, deletes (no new entry), anything outside `/buckets/<bucket>/`, multipart
    parts under `.uploads/`, and updates that leave the content unchanged (same ETag and size at the
    same path: tagging, a re-PUT of identical bytes).
    """
    notification = filer_event.get("eventNotification") or {}
    new_entry = notification.get("newEntry")
    if not isinstance(new_entry, dict) or new_entry.get("isDirectory"):
        return None
    # newParentPath differs from directory only for a rename; the object now lives under it.
    new_parent = notification.get("newParentPath") or filer_event.get("directory") or ""
    new_path = _join(new_parent, str(new_entry.get("name", "")))
    key = object_key(new_path, bucket=bucket)
    if key is None:
        return None
    old_entry = notification.get("oldEntry")
    if isinstance(old_entry, dict):
        old_path = _join(filer_event.get("directory") or "", str(old_entry.get("name", "")))
        if old_path == new_path and _fingerprint(old_entry) == _fingerprint(new_entry):
            return None
    ts_ns = event_ts_ns(filer_event)
    if ts_ns is None:
        return None
    return _envelope(bucket=bucket, key=key, entry=new_entry, ts_ns=ts_ns)


def object_key(path: str, *, bucket: str) -> str | None:
    """The S3 key of the filer path `/buckets/<bucket>/<key>`, or None if it is not an object path.

    The trailing slash matters: `-pathPrefix=/buckets/lb` also streams `/buckets/lb2/...`.
    """
    prefix = f"{BUCKETS_DIR}/{bucket}/"
    if not path.startswith(prefix):
        return None
    key = path[len(prefix) :]
    if not key or key.endswith("/") or key.split("/", 1)[0] == UPLOADS_DIR:
        return None
    return key


def event_ts_ns(filer_event: JsonDict) -> int | None:
    """The event's `tsNs` (a string in the tail's JSON), or None when missing or malformed."""
    try:
        return int(filer_event["tsNs"])
    except (KeyError, TypeError, ValueError):
        return None


def minio_event_time(ts_ns: int) -> str:
    """`2006-01-02T15:04:05.000Z`: UTC with milliseconds, as MinIO formats eventTime."""
    seconds, rest_ns = divmod(ts_ns, 1_000_000_000)
    moment = datetime.fromtimestamp(seconds, UTC)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{rest_ns // 1_000_000:03d}Z"


def _envelope(*, bucket: str, key: str, entry: JsonDict, ts_ns: int) -> S3EventEnvelope:
    extended = _decoded_extended(entry)
    attributes = entry.get("attributes") or {}
    content_type = str(attributes.get("mime") or "") or DEFAULT_CONTENT_TYPE
    owner = extended.get(EXT_OWNER, "")
    # MinIO's sequencer is the event time in ns as uppercase hex; the filer's tsNs plays that role.
    sequencer = f"{ts_ns:X}"
    event_name = COMPLETE_MULTIPART if EXT_UPLOAD_ID in extended else PUT
    user_metadata = {"content-type": content_type}
    user_metadata.update({k: v for k, v in extended.items() if k.lower().startswith(USER_META_PREFIX)})
    record = S3EventRecord(
        eventTime=minio_event_time(ts_ns),
        eventName=event_name,
        userIdentity={"principalId": owner},
        requestParameters={"region": "", "sourceIPAddress": "", "accessKey": owner},
        responseElements={
            "x-amz-request-id": sequencer,
            "x-minio-origin-endpoint": "",
            "x-minio-deployment-id": "",
        },
        s3=S3Entity(
            bucket=S3Bucket(name=bucket, ownerIdentity={"principalId": owner}, arn=f"arn:aws:s3:::{bucket}"),
            object=S3Object(
                # Go's url.QueryEscape, which MinIO applies: "/" -> %2F, " " -> "+".
                key=quote_plus(key, safe=""),
                size=_int(attributes.get("fileSize")),
                eTag=_etag(entry, extended),
                contentType=content_type,
                userMetadata=user_metadata,
                sequencer=sequencer,
            ),
        ),
        source={"host": "", "port": "", "userAgent": ""},
    )
    return S3EventEnvelope(EventName=event_name, Key=f"{bucket}/{key}", Records=[record])


def _join(directory: str, name: str) -> str:
    return f"{directory.rstrip('/')}/{name}"


def _decoded_extended(entry: JsonDict) -> dict[str, str]:
    """`extended` is map<string, bytes>, which protobuf JSON renders as base64."""
    decoded: dict[str, str] = {}
    for name, value in (entry.get("extended") or {}).items():
        try:
            raw = base64.b64decode(str(value), validate=True)
        except (binascii.Error, ValueError):
            continue
        decoded[str(name)] = raw.decode("utf-8", errors="replace")
    return decoded


def _etag(entry: JsonDict, extended: dict[str, str]) -> str:
    """The S3 ETag, hex without quotes (`<md5>-<parts>` for multipart, as S3 and MinIO give it)."""
    etag = extended.get(EXT_ETAG, "").strip('"')
    if etag:
        return etag
    md5_b64 = (entry.get("attributes") or {}).get("md5") or ""
    try:
        return base64.b64decode(str(md5_b64)).hex()
    except (binascii.Error, ValueError):
        return ""


def _fingerprint(entry: JsonDict) -> tuple[str, int]:
    return _etag(entry, _decoded_extended(entry)), _int((entry.get("attributes") or {}).get("fileSize"))


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


class EventStreamParser:
    """Incremental parser of the tail's stdout: concatenated JSON objects, split anywhere by reads.

    The tail also prints its own errors to stdout (e.g. `tail HOST:PORT: subscribing filer meta
    change: ... connection refused`); such lines are logged and skipped.
    """

    def __init__(self, *, max_buffer_chars: int = 64 * 1024 * 1024) -> None:
        self._buffer = ""
        self._decoder = json.JSONDecoder()
        self._max_buffer_chars = max_buffer_chars

    def feed(self, text: str) -> list[JsonDict]:
        """The filer events completed by `text`, in order (batched responses expanded)."""
        self._buffer += text
        events: list[JsonDict] = []
        while True:
            self._skip_noise()
            if not self._buffer.startswith("{"):
                break
            try:
                value, end = self._decoder.raw_decode(self._buffer)
            except json.JSONDecodeError:
                if len(self._buffer) <= self._max_buffer_chars:
                    break  # most likely an object cut by the read: wait for the rest
                self._resync()
                continue
            self._buffer = self._buffer[end:]
            if isinstance(value, dict):
                events.extend(_expand_batch(value))
        return events

    def reset(self) -> str:
        """Forget a partial object (the tail exited mid-write) and return the discarded text."""
        leftover, self._buffer = self._buffer, ""
        return leftover

    def _skip_noise(self) -> None:
        buffer = self._buffer.lstrip()
        while buffer and not buffer.startswith("{"):
            newline = buffer.find("\n")
            if newline < 0:
                break  # an unfinished noise line: wait for its end to log it whole
            log.warning("filer.meta.tail: %s", buffer[:newline].strip())
            buffer = buffer[newline + 1 :].lstrip()
        self._buffer = buffer

    def _resync(self) -> None:
        """Drop an undecodable head that grew past the limit, up to the next line opening an object."""
        cut = self._buffer.find("\n{", 1)
        dropped = len(self._buffer) if cut < 0 else cut + 1
        log.warning("filer.meta.tail: dropped %d characters of undecodable output", dropped)
        self._buffer = self._buffer[dropped:]


def _expand_batch(response: JsonDict) -> list[JsonDict]:
    """One dict per filer event.

    Newer filers can batch events into a response's `events` list; SeaweedFS 4.48's tail printed
    them one by one in every run we made (`events` always []), but expanding costs nothing.
    """
    events = [response] if "eventNotification" in response else []
    for inner in response.get("events") or []:
        if isinstance(inner, dict):
            events.extend(_expand_batch(inner))
    if len(events) > 1:
        events.sort(key=lambda event: event_ts_ns(event) or 0)
    return events
