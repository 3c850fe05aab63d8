#!/bin/sh
# One-shot MinIO setup for docker-compose.yml (service `minio-init`, image minio/mc).
# Idempotent: runs on every `docker compose up` and changes nothing the second time.
#
#   1. the buckets, private: $LB_BUCKET (submissions, results, MLflow's artifacts, benchmarks' public parts)
#      and $LB_REFERENCE_BUCKET (benchmarks' labels and masks: only the scorer reads it);
#   2. one identity per service (ingest, dispatcher, runner, scorer, mlflow), each with its own policy
#      limited to what its part needs (leadersboard/store_access.py): no service holds the root
#      credentials, and no runner credential can read the reference bucket;
#   3. the bucket event rule: every object created under submissions/ whose name ends in manifest.json
#      goes to the NATS target `LB` that the minio service configures (MINIO_NOTIFY_NATS_*_LB), i.e. to
#      the JetStream stream LB_EVENTS. The manifest's event is the only trigger of a job;
#   4. CORS for browser uploads (presigned PUT/POST from the web page's origin).
set -eu

: "${MINIO_ROOT_USER:?}" "${MINIO_ROOT_PASSWORD:?}" "${LB_BUCKET:?}" "${LB_REFERENCE_BUCKET:?}" "${LB_CORS_ORIGIN:?}"
: "${S3_INGEST_ACCESS_KEY:?}" "${S3_INGEST_SECRET_KEY:?}" "${S3_DISPATCHER_ACCESS_KEY:?}" "${S3_DISPATCHER_SECRET_KEY:?}"
: "${S3_RUNNER_ACCESS_KEY:?}" "${S3_RUNNER_SECRET_KEY:?}" "${S3_SCORER_ACCESS_KEY:?}" "${S3_SCORER_SECRET_KEY:?}"
: "${S3_MLFLOW_ACCESS_KEY:?}" "${S3_MLFLOW_SECRET_KEY:?}"
ALIAS=lb
TARGET_ARN=arn:minio:sqs::LB:nats

mc alias set "$ALIAS" http://minio:9000 "$MINIO_ROOT_USER" "$MINIO_ROOT_PASSWORD"

# 1. the buckets
mc mb --ignore-existing "$ALIAS/$LB_BUCKET"
mc anonymous set none "$ALIAS/$LB_BUCKET"
mc mb --ignore-existing "$ALIAS/$LB_REFERENCE_BUCKET"
mc anonymous set none "$ALIAS/$LB_REFERENCE_BUCKET"

# 2. each service's identity and its policy lb-<service>
ensure_identity() { # SERVICE ACCESS_KEY SECRET_KEY POLICY_FILE
    mc admin policy create "$ALIAS" "lb-$1" "$4"
    mc admin user add "$ALIAS" "$2" "$3"
    # `attach` fails when the policy is attached already; check the outcome instead (no grep in this image).
    mc admin policy attach "$ALIAS" "lb-$1" --user "$2" 2>/dev/null || true
    case "$(mc admin user info "$ALIAS" "$2")" in
        *"PolicyName: "*"lb-$1"*) ;;
        *) echo "minio-init: policy lb-$1 is not attached to the $1 identity" >&2; exit 1 ;;
    esac
}

# Generated from leadersboard/store_access.py (tests/test_compose_minio.py checks it is unchanged):
# regenerate with `python -m leadersboard.store_access`.
# BEGIN generated identities
cat > /tmp/policy-ingest.json <<POLICY
{"Version": "2012-10-17", "Statement": [
  {"Effect": "Allow", "Action": ["s3:GetBucketLocation", "s3:ListBucket", "s3:ListBucketMultipartUploads"], "Resource": ["arn:aws:s3:::$LB_BUCKET"]},
  {"Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"], "Resource": ["arn:aws:s3:::$LB_BUCKET/*"]},
  {"Effect": "Allow", "Action": ["s3:GetBucketLocation", "s3:ListBucket"], "Resource": ["arn:aws:s3:::$LB_REFERENCE_BUCKET"]},
  {"Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"], "Resource": ["arn:aws:s3:::$LB_REFERENCE_BUCKET/*"]}
]}
POLICY
ensure_identity ingest "$S3_INGEST_ACCESS_KEY" "$S3_INGEST_SECRET_KEY" /tmp/policy-ingest.json
cat > /tmp/policy-dispatcher.json <<POLICY
{"Version": "2012-10-17", "Statement": [
  {"Effect": "Allow", "Action": ["s3:GetBucketLocation", "s3:ListBucket"], "Resource": ["arn:aws:s3:::$LB_BUCKET"]},
  {"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": ["arn:aws:s3:::$LB_BUCKET/*"]}
]}
POLICY
ensure_identity dispatcher "$S3_DISPATCHER_ACCESS_KEY" "$S3_DISPATCHER_SECRET_KEY" /tmp/policy-dispatcher.json
cat > /tmp/policy-runner.json <<POLICY
{"Version": "2012-10-17", "Statement": [
  {"Effect": "Allow", "Action": ["s3:GetBucketLocation", "s3:ListBucket"], "Resource": ["arn:aws:s3:::$LB_BUCKET"]},
  {"Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"], "Resource": ["arn:aws:s3:::$LB_BUCKET/*"]}
]}
POLICY
ensure_identity runner "$S3_RUNNER_ACCESS_KEY" "$S3_RUNNER_SECRET_KEY" /tmp/policy-runner.json
cat > /tmp/policy-scorer.json <<POLICY
{"Version": "2012-10-17", "Statement": [
  {"Effect": "Allow", "Action": ["s3:GetBucketLocation", "s3:ListBucket", "s3:ListBucketMultipartUploads"], "Resource": ["arn:aws:s3:::$LB_BUCKET"]},
  {"Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"], "Resource": ["arn:aws:s3:::$LB_BUCKET/*"]},
  {"Effect": "Allow", "Action": ["s3:GetBucketLocation", "s3:ListBucket"], "Resource": ["arn:aws:s3:::$LB_REFERENCE_BUCKET"]},
  {"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": ["arn:aws:s3:::$LB_REFERENCE_BUCKET/*"]}
]}
POLICY
ensure_identity scorer "$S3_SCORER_ACCESS_KEY" "$S3_SCORER_SECRET_KEY" /tmp/policy-scorer.json
cat > /tmp/policy-mlflow.json <<POLICY
{"Version": "2012-10-17", "Statement": [
  {"Effect": "Allow", "Action": ["s3:GetBucketLocation", "s3:ListBucket", "s3:ListBucketMultipartUploads"], "Resource": ["arn:aws:s3:::$LB_BUCKET"]},
  {"Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"], "Resource": ["arn:aws:s3:::$LB_BUCKET/*"]}
]}
POLICY
ensure_identity mlflow "$S3_MLFLOW_ACCESS_KEY" "$S3_MLFLOW_SECRET_KEY" /tmp/policy-mlflow.json
# END generated identities

# 3. the event rule: s3:ObjectCreated:* (`put`) under submissions/ for */manifest.json, to NATS
mc event add "$ALIAS/$LB_BUCKET" "$TARGET_ARN" --event put --prefix submissions/ --suffix manifest.json --ignore-existing
mc event ls "$ALIAS/$LB_BUCKET" "$TARGET_ARN"

# 4. CORS. MinIO's server-wide MINIO_API_CORS_ALLOW_ORIGIN (set on the minio service) always applies;
# servers that support per-bucket CORS (PutBucketCors) also get this rule.
cat > /tmp/cors.xml <<CORS
<CORSConfiguration>
  <CORSRule>
    <AllowedOrigin>$LB_CORS_ORIGIN</AllowedOrigin>
    <AllowedMethod>PUT</AllowedMethod>
    <AllowedMethod>POST</AllowedMethod>
    <AllowedMethod>GET</AllowedMethod>
    <AllowedMethod>HEAD</AllowedMethod>
    <AllowedHeader>*</AllowedHeader>
    <ExposeHeader>ETag</ExposeHeader>
    <MaxAgeSeconds>3600</MaxAgeSeconds>
  </CORSRule>
</CORSConfiguration>
CORS
if mc cors set "$ALIAS/$LB_BUCKET" /tmp/cors.xml 2>/dev/null; then
    echo "bucket CORS set for $LB_CORS_ORIGIN"
else
    echo "per-bucket CORS not supported here: the server-wide MINIO_API_CORS_ALLOW_ORIGIN applies"
fi

echo "minio-init: buckets $LB_BUCKET and $LB_REFERENCE_BUCKET, the services' identities, event rule $TARGET_ARN ready"
