"""A request Stream signed: read, inflated and verified before anything else looks at it.

Both of Stream's webhooks (the command hook at /webhook, the event hook at /events) are
checked the same way: the raw body, read up to a limit, gunzipped when it starts with
gzip's magic bytes, then the HMAC in X-Signature compared in constant time over the
uncompressed bytes, and X-Api-Key, when sent, must be this app's. Anything else is
refused before it is parsed, so a forged request costs a hash and changes nothing.
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.types import Receive

from slashbots.signature import BodyError, decompress, verify

MAX_BODY = 256 * 1024  # bytes on the wire; Stream's messages are capped far below this
MAX_INFLATED = 1024 * 1024


class Rejected(Exception):
    """Not a request Stream signed for this app: the HTTP status, why, and the outcome to count."""

    def __init__(self, status: int, reason: str, outcome: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.outcome = outcome


async def signed_body(headers: Headers, receive: Receive, *, api_key: str, api_secret: str) -> bytes:
    """The request's body, uncompressed, once its signature checks out; raises Rejected otherwise."""
    content_type = headers.get("content-type", "application/json")
    if "json" not in content_type.lower():
        raise Rejected(415, f"expected a JSON body, got Content-Type {content_type[:100]!r}", "unsupported_media_type")
    signature = headers.get("x-signature")
    if not signature:
        raise Rejected(401, "missing X-Signature header", "unauthorized")
    declared = headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY:
        raise Rejected(413, f"body larger than {MAX_BODY} bytes", "too_large")
    raw = await _read(receive)
    if raw is None:
        raise Rejected(413, f"body larger than {MAX_BODY} bytes", "too_large")
    try:
        body = decompress(raw, MAX_INFLATED)
    except BodyError as exc:
        raise Rejected(400, str(exc), "bad_request") from None
    if not verify(body, signature, api_secret):
        raise Rejected(401, "signature does not match the body", "unauthorized")
    sent_key = headers.get("x-api-key")
    if sent_key is not None and sent_key != api_key:
        raise Rejected(401, "X-Api-Key is not this app's key", "unauthorized")
    return body


async def _read(receive: Receive) -> bytes | None:
    """The raw body, or None once it passes MAX_BODY (reading stops there)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        event = await receive()
        if event["type"] == "http.disconnect":
            return b"".join(chunks)  # nobody is left to answer; the body is checked like any other
        chunk = event.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            return None
        chunks.append(chunk)
        if not event.get("more_body", False):
            return b"".join(chunks)
