"""Stream's webhook signature: hex HMAC-SHA256 of the uncompressed body, keyed with the API secret."""

from __future__ import annotations

import hashlib
import hmac
import zlib

GZIP_MAGIC = b"\x1f\x8b"


class BodyError(ValueError):
    """The body could not be decoded (bad gzip, or it inflates past the limit)."""


def sign(body: bytes, secret: str) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(body: bytes, signature: str, secret: str) -> bool:
    """Constant-time check of ``signature`` against ``body``."""
    return hmac.compare_digest(sign(body, secret).encode(), signature.strip().lower().encode("ascii", "replace"))


def decompress(raw: bytes, limit: int) -> bytes:
    """The uncompressed body: gunzipped when it starts with gzip's magic bytes, as Stream's SDKs detect it.

    Inflation stops at ``limit`` bytes so a small hostile body cannot expand into gigabytes.
    """
    if raw[:2] != GZIP_MAGIC:
        return raw
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        body = inflater.decompress(raw, limit + 1)
    except zlib.error as exc:
        raise BodyError(f"the gzip body is corrupt ({exc})") from None
    if len(body) > limit or inflater.unconsumed_tail:
        raise BodyError(f"the body inflates past {limit} bytes")
    if not inflater.eof:
        raise BodyError("the gzip body is truncated")
    return body
