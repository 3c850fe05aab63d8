"""Manifests signed by ingest, so a user who edits the manifest behind a presigned URL is caught."""

from __future__ import annotations

import hashlib
import hmac

from pydantic import SecretStr

from leadersboard.models.submission import Manifest

__all__ = ["sign_manifest", "signature_valid"]


def _digest(manifest: Manifest, secret: SecretStr) -> str:
    canonical = manifest.model_dump_json(exclude={"signature"}).encode()
    return hmac.new(secret.get_secret_value().encode(), canonical, hashlib.sha256).hexdigest()


def sign_manifest(manifest: Manifest, secret: SecretStr) -> Manifest:
    if not secret.get_secret_value():
        return manifest
    return manifest.model_copy(update={"signature": _digest(manifest, secret)})


def signature_valid(manifest: Manifest, secret: SecretStr) -> bool:
    """True when signing is off, or the signature matches the manifest's content."""
    if not secret.get_secret_value():
        return True
    return manifest.signature is not None and hmac.compare_digest(manifest.signature, _digest(manifest, secret))
