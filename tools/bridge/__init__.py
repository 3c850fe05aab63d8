"""The SeaweedFS -> NATS JetStream event bridge.

SeaweedFS has no S3 bucket notifications, so locally the bridge tails the filer's persistent
metadata log (`weed filer.meta.tail`) and publishes every new object of the bucket to the events
stream in exactly the JSON shape MinIO publishes in production: the dispatcher cannot tell the two
sources apart. Run it with `python -m tools.bridge`.
"""
