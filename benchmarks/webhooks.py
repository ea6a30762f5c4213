"""Signed command webhooks and event webhooks, shaped as Stream sends them, ready to post.

Bodies are built and signed before the clock starts, so the load generator spends its time
sending, not hashing. Each command's args are unique, and the echo bot replies with exactly
its args, so a reply found at the Stream stand-in names the command it answers. Chatter is
what an app's event webhook carries all day: ``message.new`` for people talking, in the
channel and in their own threads, and for bots' messages, none of it for our bots.
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


MEMBERS = 12  # message.new carries the channel's members (up to 50)
HUMAN_THREADS = 50  # threads people talk in; a reply names one of them


def chatter(index: int, tag: str, *, cid: str = CID) -> bytes:
    """Message ``index`` of ordinary chatter as Stream's message.new event: mostly people talking in the
    channel, one in ten a reply in one of their threads, one in forty our echo bot's own message (Stream
    sends those back too), one in forty another AI bot's."""
    channel_type, _, channel_id = cid.partition(":")
    user = {"id": f"user-{index % 7}", "name": f"User {index % 7}", "role": "user", "online": True,
            "created_at": "2026-01-02T10:00:00Z", "updated_at": "2026-11-26T12:00:00Z", "banned": False,
            "total_unread_count": index % 5, "unread_channels": 1}
    message = {"id": f"{tag}-{index}", "text": f"chatter {index}: shall we meet at {index % 24}:00?",
               "html": f"<p>chatter {index}: shall we meet at {index % 24}:00?</p>\n", "type": "regular",
               "cid": cid, "attachments": [], "mentioned_users": [], "latest_reactions": [], "own_reactions": [],
               "reaction_counts": {}, "reaction_scores": {}, "reply_count": 0, "silent": False, "pinned": False,
               "shadowed": False, "created_at": "2026-11-26T12:56:59.854Z", "updated_at": "2026-11-26T12:56:59.854Z"}
    if index % 40 == 39:
        user = {"id": "echo-bot", "name": "echo bot"}
        message["ai_generated"] = True
    elif index % 40 == 19:
        user = {"id": "other-ai-bot", "name": "Another AI"}
        message["ai_generated"] = True
    elif index % 10 == 9:
        message.update(type="reply", parent_id=f"human-thread-{index % HUMAN_THREADS}", show_in_channel=False)
    message["user"] = user
    members = [{"user_id": f"user-{n}", "user": {"id": f"user-{n}", "name": f"User {n}"}, "channel_role": "channel_member",
                "created_at": "2026-01-02T10:00:00Z", "updated_at": "2026-01-02T10:00:00Z"} for n in range(MEMBERS)]
    body = {"type": "message.new", "cid": cid, "channel_type": channel_type, "channel_id": channel_id,
            "message_id": message["id"], "message": message, "user": user, "members": members,
            "created_at": "2026-11-26T12:56:59.854Z", "watcher_count": 3}
    return json.dumps(body, separators=(",", ":")).encode()


def signature(raw: bytes, secret: str = SECRET) -> str:
    return hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()


def http_request(raw: bytes, host: str, webhook_id: str, *, secret: str = SECRET, path: str = "/webhook") -> bytes:
    """The whole HTTP/1.1 keep-alive request for one signed body: the bytes the load generator writes."""
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
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
