#!/bin/sh
# One-shot MinIO setup for docker-compose.yml (service `minio-init`, image minio/mc).
# Idempotent: runs on every `docker compose up` and changes nothing the second time.
#
#   1. the bucket ($LB_BUCKET), private;
#   2. the services' own identity ($LB_S3_ACCESS_KEY), limited to that bucket: ingest, the dispatcher,
#      the runners and MLflow never hold the root credentials;
#   3. the bucket event rule: every object created under submissions/ whose name ends in manifest.json
#      goes to the NATS target `LB` that the minio service configures (MINIO_NOTIFY_NATS_*_LB), i.e. to
#      the JetStream stream LB_EVENTS. The manifest's event is the only trigger of a job;
#   4. CORS for browser uploads (presigned PUT/POST from the web page's origin).
set -eu

: "${MINIO_ROOT_USER:?}" "${MINIO_ROOT_PASSWORD:?}" "${LB_BUCKET:?}"
: "${LB_S3_ACCESS_KEY:?}" "${LB_S3_SECRET_KEY:?}" "${LB_CORS_ORIGIN:?}"
ALIAS=lb
TARGET_ARN=arn:minio:sqs::LB:nats

mc alias set "$ALIAS" http://minio:9000 "$MINIO_ROOT_USER" "$MINIO_ROOT_PASSWORD"

# 1. the bucket
mc mb --ignore-existing "$ALIAS/$LB_BUCKET"
mc anonymous set none "$ALIAS/$LB_BUCKET"

# 2. the services' identity and its policy
cat > /tmp/leadersboard-policy.json <<POLICY
{
  "Version": "2012-10-17",
  "Statement": [
    {
      "Effect": "Allow",
      "Action": ["s3:GetBucketLocation", "s3:ListBucket", "s3:ListBucketMultipartUploads"],
      "Resource": ["arn:aws:s3:::$LB_BUCKET"]
    },
    {
      "Effect": "Allow",
      "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject",
                 "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"],
      "Resource": ["arn:aws:s3:::$LB_BUCKET/*"]
    }
  ]
}
POLICY
mc admin policy create "$ALIAS" leadersboard /tmp/leadersboard-policy.json
mc admin user add "$ALIAS" "$LB_S3_ACCESS_KEY" "$LB_S3_SECRET_KEY"
# `attach` fails when the policy is attached already; check the outcome instead (no grep in this image).
mc admin policy attach "$ALIAS" leadersboard --user "$LB_S3_ACCESS_KEY" 2>/dev/null || true
case "$(mc admin user info "$ALIAS" "$LB_S3_ACCESS_KEY")" in
    *"PolicyName: "*leadersboard*) ;;
    *) echo "minio-init: policy leadersboard is not attached to $LB_S3_ACCESS_KEY" >&2; exit 1 ;;
esac

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

echo "minio-init: bucket $LB_BUCKET, user $LB_S3_ACCESS_KEY, event rule $TARGET_ARN ready"
