"""Every message and record of the platform, versioned, one module per boundary it crosses.

- `api`: the HTTP API's bodies (the create request, presigned uploads, the error body).
- `submission`: what a submission stores: its declared files and the manifest that triggers its job.
- `queue`: the job message on the JetStream work queue.
- `records`: the records in the NATS key-value buckets (jobs, issued submissions, quotas, tokens, users).
- `s3_events`: MinIO's bucket-event schema on NATS.
- `metrics`: the job's own metrics.json.
- `base`: the strict base model and the clock.

Each is validated where it arrives. Models the platform both writes and reads refuse unknown fields
(`StrictModel`); the two written by others (MinIO's events, the user's metrics.json) ignore them.
"""
