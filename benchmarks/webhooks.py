"""Signed command webhooks, shaped as Stream sends them (see tests/test_webhook.py), ready to post.

Bodies are built and signed before the clock starts, so the load generator spends its time
sending, not hashing. Each command's args are unique, and the echo bot replies with exactly
its args, so a reply found at the Stream stand-in names the command it answers.
"""

from __future__ import annotations

import hashlib
import hmac
import json

KEY, SECRET = "bench-key", "bench-secret-long-enough-for-hs256-signing"
CID = "messaging:bench"


def command(command: str, args: str, message_id: str, *, cid: str = CID, user: str = "alice") -> bytes:
    body = {
        "message": {
            "id": message_id, "text": f"/{command} {args}", "command": command, "args": args, "html": "",
            "type": "regular", "cid": cid, "created_at": "2026-11-26T12:56:59.854Z",
            "attachments": [], "mentioned_users": [],
        },
        "user": {"id": user, "Custom": {"name": user.title()}, "role": "user"},
    }
    return json.dumps(body, separators=(",", ":")).encode()


def signature(raw: bytes, secret: str = SECRET) -> str:
    return hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()


def http_request(raw: bytes, host: str, webhook_id: str, *, secret: str = SECRET) -> bytes:
    """The whole HTTP/1.1 keep-alive request for one signed body: the bytes the load generator writes."""
    head = (
        f"POST /webhook HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(raw)}\r\nX-Signature: {signature(raw, secret)}\r\nX-Api-Key: {KEY}\r\n"
        f"X-Webhook-Id: {webhook_id}\r\nX-Webhook-Attempt: 1\r\n\r\n"
    )
    return head.encode() + raw


def bots_yaml(bots: list[dict], *, server: dict | None = None, plugins: list[str] = ()) -> str:
    """A bots.yaml with the benchmark's Stream keys (as JSON, which YAML reads)."""
    document: dict = {"stream": {"api_key": KEY, "api_secret": SECRET}, "bots": bots}
    if plugins:
        document["plugins"] = list(plugins)
    if server:
        document["server"] = server
    return json.dumps(document, indent=1)


def echo_bot(command: str = "echo", **extra) -> dict:
    return {"command": command, "description": f"/{command} for benchmarks", "provider": "echo",
            "channel_types": ["messaging"], "identity": {"id": f"{command}-bot", "name": f"{command} bot"}, **extra}
