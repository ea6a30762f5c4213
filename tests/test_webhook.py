"""POST /webhook: signatures, gzip, routing, the ack, and bad input that must get a 4xx and no reply."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import hmac
import json
import uuid
from typing import Any

import httpx
import pytest

from tests.conftest import API_KEY, API_SECRET, ECHO_BOT, bot_messages, final_reply, send, wait_for


def command_body(text: str = "/echo hello", *, cid: str = "messaging:general", user: str = "alice",
                 message_id: str | None = None) -> dict[str, Any]:
    """A body shaped like the sample in Stream's custom-command docs."""
    command, _, args = text[1:].partition(" ")
    return {
        "message": {
            "id": message_id or str(uuid.uuid4()),
            "text": text,
            "command": command,
            "args": args,
            "html": "",
            "type": "regular",
            "cid": cid,
            "created_at": "2026-11-26T12:56:59.854Z",
            "attachments": [],
            "mentioned_users": [],
        },
        "user": {"id": user, "Custom": {"name": "Alice"}, "role": "user"},
    }


def stream_headers(raw: bytes, *, secret: str = API_SECRET, signature: str | None = None) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "X-Signature": signature if signature is not None else hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest(),
        "X-Webhook-Id": str(uuid.uuid4()),
        "X-Webhook-Attempt": "1",
        "X-Api-Key": API_KEY,
    }


async def post(url: str, raw: bytes, headers: dict[str, str]) -> httpx.Response:
    async with httpx.AsyncClient() as client:
        return await client.post(url + "/webhook", content=raw, headers=headers)


async def test_a_signed_command_is_acked_unchanged_and_answered(serve) -> None:
    served = serve()
    body = command_body("/echo hello")
    raw = json.dumps(body).encode()
    response = await post(served.url, raw, stream_headers(raw))
    assert response.status_code == 200
    assert response.json() == {"message": body["message"]}
    [reply] = await final_reply(served.standin, "echo-bot")
    assert reply["text"] == "hello"


async def test_gzip_bodies_are_verified_on_the_uncompressed_bytes(serve) -> None:
    served = serve()
    raw = json.dumps(command_body("/echo zipped")).encode()
    headers = stream_headers(raw) | {"Content-Encoding": "gzip"}
    response = await post(served.url, gzip.compress(raw), headers)
    assert response.status_code == 200
    [reply] = await final_reply(served.standin, "echo-bot")
    assert reply["text"] == "zipped"


@pytest.mark.parametrize(
    ("mangle", "status"),
    [
        (lambda raw, h: h.pop("X-Signature"), 401),
        (lambda raw, h: h.update({"X-Signature": ""}), 401),
        (lambda raw, h: h.update({"X-Signature": "0" * 64}), 401),
        (lambda raw, h: h.update({"X-Signature": hmac.new(b"wrong", raw, hashlib.sha256).hexdigest()}), 401),
        (lambda raw, h: h.update({"X-Signature": "not hex at all ✓".encode()}), 401),
        (lambda raw, h: h.update({"X-Api-Key": "another-app"}), 401),
    ],
    ids=["missing", "empty", "zeros", "wrong-secret", "garbage", "other-app-key"],
)
async def test_forged_or_unsigned_requests_are_refused_and_never_answered(serve, mangle, status) -> None:
    served = serve()
    raw = json.dumps(command_body("/echo forged")).encode()
    headers = stream_headers(raw)
    mangle(raw, headers)
    response = await post(served.url, raw, headers)
    assert response.status_code == status
    assert "message" not in response.json()
    # The ack decides, in the request: no reply job was started.
    assert served.app.state.replies.finished == 0 and not served.app.state.replies.running
    assert bot_messages(served.standin, "echo-bot") == []


async def test_a_signature_over_the_gzipped_bytes_is_refused(serve) -> None:
    served = serve()
    zipped = gzip.compress(json.dumps(command_body("/echo x")).encode())
    response = await post(served.url, zipped, stream_headers(zipped) | {"Content-Encoding": "gzip"})
    assert response.status_code == 401


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b"\x1f\x8b not really gzip", 400),
        (b"not json", 400),
        (b"[1, 2]", 400),
        (b'{"message": "text"}', 400),
        (json.dumps({"message": {"id": "m1", "cid": "messaging:general", "text": "/echo"}}).encode(), 400),
        (json.dumps({"message": {"id": "m1", "command": 7, "cid": "messaging:general"}}).encode(), 400),
        (json.dumps({"message": {"id": "m1", "command": "echo", "cid": "nocolon"}, "user": {"id": "a"}}).encode(), 400),
        (json.dumps({"message": {"id": "m1", "command": "echo", "cid": "messaging:x", "args": 5}, "user": {"id": "a"}}).encode(), 400),
        (json.dumps({"message": {"id": "m1", "command": "echo", "cid": "messaging:x"}}).encode(), 400),
        (json.dumps({"message": {"id": "m1", "command": "echo", "cid": "messaging:x"}, "user": {"id": 3}}).encode(), 400),
        (b"[" * 100_000 + b"]" * 100_000, 400),
        (b"{" + b'"a": "' + b"x" * 300_000 + b'"}', 413),
        (gzip.compress(b"[" + b"0," * 2_000_000 + b"0]"), 400),
    ],
    ids=["bad-gzip", "not-json", "not-object", "message-not-object", "no-command", "command-not-string",
         "cid-without-type", "args-not-string", "no-user", "user-id-not-string", "deeply-nested", "too-large",
         "gzip-bomb"],
)
async def test_bad_bodies_get_a_4xx_and_no_reply(serve, raw: bytes, status: int) -> None:
    served = serve()
    response = await post(served.url, raw, stream_headers(raw))
    assert response.status_code == status, response.text
    assert "Traceback" not in response.text
    assert served.app.state.replies.finished == 0 and not served.app.state.replies.running
    assert bot_messages(served.standin, "echo-bot") == []


async def test_an_unknown_command_is_an_error_only_the_sender_sees(serve) -> None:
    served = serve()
    raw = json.dumps(command_body("/nope hi")).encode()
    response = await post(served.url, raw, stream_headers(raw))
    assert response.status_code == 200
    assert response.json()["message"]["type"] == "error"
    assert "/nope" in response.json()["message"]["text"]


async def test_the_ack_makes_no_network_call(serve, stream) -> None:
    """Stream gives the hook one second; the ack must not wait on Stream (or anything else)."""
    served = serve()
    # Every Stream call now takes 2 s: the ack must still be immediate.
    stream.standin.inject_fault("POST", r".*", status=None, times=100, delay=2.0)
    stream.standin.inject_fault("PUT", r".*", status=None, times=100, delay=2.0)
    raw = json.dumps(command_body("/echo quick")).encode()
    loop = asyncio.get_running_loop()
    started = loop.time()
    response = await post(served.url, raw, stream_headers(raw))
    assert response.status_code == 200
    assert loop.time() - started < 1.0
    [reply] = await final_reply(served.standin, "echo-bot", timeout=20)
    assert reply["text"] == "quick"


async def test_through_stream_a_known_command_stays_as_typed(serve, chat) -> None:
    served = serve()
    sent = await send(chat, "/echo hello world")
    assert sent["type"] == "regular"
    assert sent["text"] == "/echo hello world"
    assert sent["user"]["id"] == "alice"
    [hook_call] = served.standin.hook_calls
    assert hook_call["status"] == 200


async def test_through_stream_an_unknown_command_is_an_error_for_the_sender_only(serve, chat, stream) -> None:
    serve(ECHO_BOT)
    # Registered with Stream but not in this server's bots.yaml (another server's, or removed since).
    await chat.create_command({"name": "weather", "description": "Weather"})
    await chat.update_channel_type("messaging", commands=["giphy", "echo", "weather"])
    sent = await send(chat, "/weather Paris")
    assert sent["type"] == "error"
    assert "/weather" in sent["text"]
    assert [m["text"] for m in stream.standin.messages("messaging:general")] == []
    assert stream.standin.ephemeral("alice")


async def test_a_bot_never_answers_another_bots_command(serve, chat) -> None:
    served = serve()
    await chat.upsert_user({"id": "echo-bot", "name": "Echo bot"})
    await chat.channel("messaging", "general").send_message({"text": "/echo loop?"}, "echo-bot")
    # Stream called the webhook inside that send: its ack has decided already, and started nothing.
    assert served.app.state.replies.finished == 0 and not served.app.state.replies.running
    assert [m["text"] for m in bot_messages(served.standin, "echo-bot")] == ["/echo loop?"]


async def test_webhook_only_accepts_post(serve) -> None:
    served = serve()
    async with httpx.AsyncClient() as client:
        assert (await client.get(served.url + "/webhook")).status_code == 405


async def test_utf8_survives_the_round_trip(serve, chat) -> None:
    served = serve()
    text = "héllo 👋🏽 世界 — «ok» \u2028 next"
    await send(chat, f"/echo {text}")
    [reply] = await final_reply(served.standin, "echo-bot")
    assert reply["text"] == text
    await wait_for(lambda: served.app.state.replies.finished == 1, what="job bookkeeping")
