"""What every request Stream makes to a hook looks like, and the client that sends it.

Stream signs the JSON body (X-Signature: hex HMAC-SHA256 keyed with the app secret) over the
uncompressed bytes, even when the body goes out gzipped; X-Webhook-Id names the call (the
same on every attempt, so receivers dedupe on it), X-Webhook-Attempt counts from 1.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import hmac
import json
import ssl
import uuid
from dataclasses import dataclass

import httpx

from slashbots.sandbox.standin.values import Json


@dataclass(frozen=True)
class HookRequest:
    raw: bytes  # the JSON body as signed
    content: bytes  # what goes on the wire: `raw`, or `raw` gzipped
    headers: dict[str, str]

    @property
    def compressed(self) -> bool:
        return self.content is not self.raw


def hook_request(payload: Json, *, api_key: str, api_secret: str, compress: bool) -> HookRequest:
    raw = json.dumps(payload, separators=(",", ":")).encode()
    headers = {
        "Content-Type": "application/json",
        "X-Signature": hmac.new(api_secret.encode(), raw, hashlib.sha256).hexdigest(),
        "X-Webhook-Id": str(uuid.uuid4()), "X-Webhook-Attempt": "1", "X-Api-Key": api_key,
    }
    content = raw
    if compress:
        content = gzip.compress(raw)
        headers["Content-Encoding"] = "gzip"
    return HookRequest(raw, content, headers)


@functools.cache
def _tls() -> ssl.SSLContext:
    # Loading the CA bundle takes ~25 ms: done once, not in every client (httpx does it per client).
    return ssl.create_default_context()


def hook_client() -> httpx.AsyncClient:
    """A client for hook calls. Hooks in tests and the sandbox are local: no proxies from the environment."""
    return httpx.AsyncClient(trust_env=False, verify=_tls())
