"""MinIO's bucket-event schema, as published on NATS (and imitated by the local stack's bridge).

Someone else's schema: fields MinIO adds later are ignored rather than refused (a tolerant reader).
"""

from __future__ import annotations

from pydantic import BaseModel, Field

__all__ = ["S3Bucket", "S3Entity", "S3EventEnvelope", "S3EventRecord", "S3Object"]


class S3Object(BaseModel):
    key: str
    size: int = 0
    eTag: str = ""
    contentType: str = ""
    userMetadata: dict[str, str] = Field(default_factory=dict)
    versionId: str = ""
    sequencer: str = ""


class S3Bucket(BaseModel):
    name: str
    ownerIdentity: dict[str, str] = Field(default_factory=dict)
    arn: str = ""


class S3Entity(BaseModel):
    s3SchemaVersion: str = "1.0"
    configurationId: str = "Config"
    bucket: S3Bucket
    object: S3Object


class S3EventRecord(BaseModel):
    eventVersion: str = "2.0"
    eventSource: str = "minio:s3"
    awsRegion: str = ""
    eventTime: str
    eventName: str
    userIdentity: dict[str, str] = Field(default_factory=dict)
    requestParameters: dict[str, str] = Field(default_factory=dict)
    responseElements: dict[str, str] = Field(default_factory=dict)
    s3: S3Entity
    source: dict[str, str] = Field(default_factory=dict)


class S3EventEnvelope(BaseModel):
    """What MinIO publishes to NATS for a bucket event (and what our SeaweedFS bridge imitates)."""

    EventName: str
    Key: str = Field(description="`<bucket>/<url-unescaped object key>`")
    Records: list[S3EventRecord] = Field(min_length=1)
