"""The Stream stand-in, driven through the real stream_chat SDK over real sockets.

If these pass, code written against Stream's SDK sees the behaviour Stream documents:
auth, command registration, the signed command webhook and how its answer is applied,
message limits, threads, events and rate-limit errors.
"""

from __future__ import annotations

import ast
import asyncio
import gzip
import hashlib
import hmac
import json
import re
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
import pytest_asyncio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from stream_chat import StreamChatAsync
from stream_chat.base.exceptions import StreamAPIException

import slashbots.sandbox.standin
from slashbots.sandbox.loopback import LoopbackServer
from slashbots.sandbox.standin import StreamStandIn

KEY, SECRET = "standin-key", "standin-secret-long-enough-for-hs256-0123456789"
CID = "messaging:general"


class Receiver:
    """A tiny command handler: records what Stream sent and answers as told."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.answer: Callable[[dict[str, Any]], Response] = lambda payload: JSONResponse({})
        self.delay = 0.0
        self.app = Starlette(routes=[Route("/hook", self.hook, methods=["POST"])])

    async def hook(self, request: Request) -> Response:
        raw = await request.body()
        plain = gzip.decompress(raw) if request.headers.get("content-encoding") == "gzip" else raw
        self.requests.append(
            {"raw": raw, "plain": plain, "headers": dict(request.headers), "query": dict(request.query_params)}
        )
        if self.delay:
            await asyncio.sleep(self.delay)
        return self.answer(json.loads(plain))


@pytest.fixture
def standin() -> StreamStandIn:
    return StreamStandIn(KEY, SECRET, hook_timeout=0.5)


@pytest.fixture
def standin_url(standin: StreamStandIn) -> Iterator[str]:
    with LoopbackServer(standin.app) as server:
        yield server.url


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, str]]:
    receiver = Receiver()
    with LoopbackServer(receiver.app) as server:
        yield receiver, server.url


@pytest_asyncio.fixture
async def client(standin_url: str) -> AsyncIterator[StreamChatAsync]:
    async with StreamChatAsync(KEY, SECRET, base_url=standin_url) as client:
        yield client


async def register_echo(client: StreamChatAsync, receiver_url: str, *, compress: bool = False) -> None:
    """What slashbots' sync does: create the command, enable it on messaging, set the handler URL."""
    await client.create_command({"name": "echo", "description": "Echo it back", "args": "[text]"})
    current = [c["name"] for c in (await client.get_channel_type("messaging"))["commands"]]
    await client.update_channel_type("messaging", commands=current + ["echo"])
    await client.update_app_settings(
        custom_action_handler_url=f"{receiver_url}/hook?type={{type}}",
        enable_hook_payload_compression=compress,
    )
    await client.upsert_user({"id": "alice", "name": "Alice"})


# ---- auth and errors --------------------------------------------------------------------


@pytest.mark.asyncio
async def test_wrong_secret_or_key_is_401(standin_url: str) -> None:
    async with StreamChatAsync(KEY, "not-the-secret-but-just-as-long-0123456789abcdef", base_url=standin_url) as bad:
        with pytest.raises(StreamAPIException) as err:
            await bad.get_app_settings()
    assert err.value.status_code == 401 and err.value.error_code == 5
    async with StreamChatAsync("other-key", SECRET, base_url=standin_url) as bad:
        with pytest.raises(StreamAPIException) as err:
            await bad.get_app_settings()
    assert err.value.status_code == 401
    body = json.loads(err.value.response_text)
    assert set(body) >= {"code", "message", "StatusCode", "duration", "more_info"}


@pytest.mark.asyncio
async def test_user_token_is_refused(standin_url: str) -> None:
    token = jwt.encode({"user_id": "alice"}, SECRET, algorithm="HS256")
    async with httpx.AsyncClient() as http:
        response = await http.get(f"{standin_url}/app", params={"api_key": KEY},
                                  headers={"Authorization": token, "stream-auth-type": "jwt"})
    assert response.status_code == 401


@pytest.mark.asyncio
async def test_unknown_endpoint_is_a_recorded_404(client: StreamChatAsync, standin: StreamStandIn) -> None:
    with pytest.raises(StreamAPIException) as err:
        await client.get("no/such/thing")
    assert err.value.status_code == 404 and err.value.error_code == 16
    assert standin.calls[-1]["path"] == "/no/such/thing" and standin.calls[-1]["status"] == 404


# ---- app settings, commands, channel types ------------------------------------------------


@pytest.mark.asyncio
async def test_app_handler_url_validation(client: StreamChatAsync, standin: StreamStandIn) -> None:
    app = (await client.get_app_settings())["app"]
    assert app["custom_action_handler_url"] == "" and app["enable_hook_payload_compression"] is False
    await client.update_app_settings(custom_action_handler_url="https://bots.example.com/webhook?type={type}")
    app = (await client.get_app_settings())["app"]
    assert app["custom_action_handler_url"] == "https://bots.example.com/webhook?type={type}"
    with pytest.raises(StreamAPIException) as err:
        await client.update_app_settings(custom_action_handler_url="gibbrish")
    assert err.value.status_code == 400 and err.value.error_code == 4
    await client.update_app_settings(custom_action_handler_url="")
    assert (await client.get_app_settings())["app"]["custom_action_handler_url"] == ""
    assert len(standin.writes("app")) == 2


@pytest.mark.asyncio
async def test_command_crud(client: StreamChatAsync, standin: StreamStandIn) -> None:
    created = await client.create_command(
        {"name": "ticket", "description": "Create a ticket", "args": "[description]", "set": "support"}
    )
    assert created["command"]["name"] == "ticket" and "created_at" in created["command"]
    with pytest.raises(StreamAPIException) as err:
        await client.create_command({"name": "ticket", "description": "again"})
    assert err.value.status_code == 400
    with pytest.raises(StreamAPIException):
        await client.create_command({"name": "nodesc"})
    assert [c["name"] for c in (await client.list_commands())["commands"]] == ["ticket"]
    fetched = await client.get_command("ticket")
    assert fetched["description"] == "Create a ticket" and fetched["args"] == "[description]"
    updated = await client.update_command("ticket", description="Create customer support tickets")
    assert updated["command"]["description"] == "Create customer support tickets"
    assert updated["command"]["args"] == "[description]"

    await client.update_channel_type("team", commands=["ticket"])
    with pytest.raises(StreamAPIException) as err:
        await client.delete_command("ticket")
    assert err.value.status_code == 400  # still referenced by a channel type
    await client.update_channel_type("team", commands=[])
    await client.delete_command("ticket")
    with pytest.raises(StreamAPIException) as err:
        await client.get_command("ticket")
    assert err.value.status_code == 404
    assert len(standin.writes("command")) == 3  # create, update, delete


@pytest.mark.asyncio
async def test_channel_type_commands_are_replaced_not_merged(client: StreamChatAsync) -> None:
    messaging = await client.get_channel_type("messaging")
    assert messaging["max_message_length"] == 5000
    giphy = {"name": "giphy", "description": "Post a random gif to the channel", "args": "[text]", "set": "fun_set"}
    assert messaging["commands"] == [giphy]  # GET answers carry full command objects
    await client.create_command({"name": "gpt", "description": "Ask GPT", "args": "[question]"})

    updated = await client.update_channel_type("messaging", commands=["gpt"])
    assert updated["commands"] == ["gpt"]  # the update answer carries names
    fetched = await client.get_channel_type("messaging")
    assert [c["name"] for c in fetched["commands"]] == ["gpt"]  # giphy is gone
    assert fetched["commands"][0]["description"] == "Ask GPT"

    with pytest.raises(StreamAPIException) as err:
        await client.update_channel_type("messaging", commands=["gpt", "nope"])
    assert err.value.status_code == 400
    livestream = await client.get_channel_type("livestream")
    assert {"giphy", "mute", "ban"} <= {c["name"] for c in livestream["commands"]}
    listed = (await client.list_channel_types())["channel_types"]
    assert set(listed) >= {"messaging", "team", "livestream", "commerce", "gaming"}
    created = await client.create_channel_type({"name": "support"})
    assert created["commands"] == ["all"]  # the SDK's default
    with pytest.raises(StreamAPIException) as err:
        await client.get_channel_type("nope")
    assert err.value.status_code == 404


@pytest.mark.asyncio
async def test_query_channel_creates_and_returns_state(client: StreamChatAsync) -> None:
    await client.upsert_users([{"id": "alice"}, {"id": "bob", "name": "Bob"}])
    channel = client.channel("messaging", "general", {"members": ["alice", "bob"], "name": "General"})
    with pytest.raises(StreamAPIException):  # server-side creation needs created_by
        await channel.query()
    state = await channel.create("alice")
    assert state["channel"]["cid"] == CID and state["channel"]["name"] == "General"
    assert state["channel"]["config"]["commands"][0]["name"] == "giphy"
    assert [m["user_id"] for m in state["members"]] == ["alice", "bob"]
    for n in range(4):
        await channel.send_message({"text": f"m{n}"}, "alice")
    state = await channel.query(messages={"limit": 2})
    assert [m["text"] for m in state["messages"]] == ["m2", "m3"]
    with pytest.raises(StreamAPIException) as err:
        await client.channel("nosuchtype", "x").create("alice")
    assert err.value.status_code == 404


# ---- the custom-command webhook ------------------------------------------------------------


def verify(request: dict[str, Any]) -> dict[str, Any]:
    expected = hmac.new(SECRET.encode(), request["plain"], hashlib.sha256).hexdigest()
    assert request["headers"]["x-signature"] == expected
    return json.loads(request["plain"])


@pytest.mark.asyncio
async def test_command_hook_is_signed_and_unchanged_answer_keeps_message(
    client: StreamChatAsync, standin: StreamStandIn, receiver: tuple[Receiver, str]
) -> None:
    hook, url = receiver
    await register_echo(client, url)
    sent = await client.channel("messaging", "general").send_message({"text": "/echo hi there"}, "alice")

    [request] = hook.requests
    payload = verify(request)
    assert client.verify_and_parse_webhook(request["raw"], request["headers"]["x-signature"]) == payload
    headers = request["headers"]
    assert headers["content-type"] == "application/json" and headers["x-api-key"] == KEY
    assert headers["x-webhook-attempt"] == "1" and len(headers["x-webhook-id"]) == 36
    assert "content-encoding" not in headers and request["query"] == {"type": "echo"}
    message = payload["message"]
    assert (message["command"], message["args"], message["cid"]) == ("echo", "hi there", CID)
    assert message["id"] == sent["message"]["id"] and message["type"] == "regular"
    assert payload["user"]["id"] == "alice" and payload["user"]["name"] == "Alice"
    assert "form_data" not in payload

    assert sent["message"]["text"] == "/echo hi there"
    assert [m["text"] for m in standin.messages(CID)] == ["/echo hi there"]
    assert standin.hook_calls[0]["status"] == 200 and standin.hook_calls[0]["outcome"] == "unchanged"


@pytest.mark.asyncio
async def test_command_hook_gzip(client: StreamChatAsync, receiver: tuple[Receiver, str]) -> None:
    hook, url = receiver
    await register_echo(client, url, compress=True)
    await client.channel("messaging", "general").send_message({"text": "/echo zip"}, "alice")
    [request] = hook.requests
    assert request["headers"]["content-encoding"] == "gzip" and request["raw"][:2] == b"\x1f\x8b"
    assert verify(request)["message"]["args"] == "zip"  # signed over the uncompressed bytes
    parsed = client.verify_and_parse_webhook(request["raw"], request["headers"]["x-signature"])
    assert parsed["message"]["args"] == "zip"


@pytest.mark.asyncio
async def test_command_hook_error_answer_is_only_for_the_sender(
    client: StreamChatAsync, standin: StreamStandIn, receiver: tuple[Receiver, str]
) -> None:
    hook, url = receiver
    hook.answer = lambda payload: JSONResponse({"message": {"type": "error", "text": "Unknown bot."}})
    await register_echo(client, url)
    sent = await client.channel("messaging", "general").send_message({"text": "/echo x"}, "alice")
    assert sent["message"]["type"] == "error" and sent["message"]["text"] == "Unknown bot."
    assert sent["message"]["user"]["id"] == "alice"
    assert standin.messages(CID) == []
    assert [m["text"] for m in standin.ephemeral("alice")] == ["Unknown bot."]
    with pytest.raises(StreamAPIException):
        await client.get_message(sent["message"]["id"])


@pytest.mark.asyncio
async def test_command_hook_rewrite_keeps_author(
    client: StreamChatAsync, standin: StreamStandIn, receiver: tuple[Receiver, str]
) -> None:
    hook, url = receiver
    attachment = {"type": "text", "text": "note"}
    hook.answer = lambda payload: JSONResponse({"message": {
        **payload["message"], "text": "rewritten", "attachments": [attachment], "ticket": 42,
        "user": {"id": "mallory"}, "id": "other-id",
    }})
    await register_echo(client, url)
    sent = await client.channel("messaging", "general").send_message({"text": "/echo x"}, "alice")
    [stored] = standin.messages(CID)
    assert stored == sent["message"]
    assert (stored["text"], stored["attachments"], stored["ticket"]) == ("rewritten", [attachment], 42)
    assert stored["user"]["id"] == "alice" and stored["id"] != "other-id" and stored["type"] == "regular"
    assert standin.hook_calls[0]["outcome"] == "rewritten"


@pytest.mark.asyncio
@pytest.mark.parametrize("failure", ["timeout", "status500", "not_json"])
async def test_command_hook_failure_saves_message_unchanged(
    failure: str, client: StreamChatAsync, standin: StreamStandIn, receiver: tuple[Receiver, str]
) -> None:
    hook, url = receiver
    rewrite = JSONResponse({"message": {"type": "error", "text": "too late"}})
    if failure == "timeout":
        hook.delay, hook.answer = 1.0, lambda payload: rewrite
    elif failure == "status500":
        hook.answer = lambda payload: JSONResponse({"message": {"type": "error", "text": "x"}}, status_code=500)
    else:
        hook.answer = lambda payload: Response("not json", media_type="text/plain")
    await register_echo(client, url)
    started = time.perf_counter()
    sent = await client.channel("messaging", "general").send_message({"text": "/echo slow"}, "alice")
    assert sent["message"]["text"] == "/echo slow" and sent["message"]["type"] == "regular"
    assert [m["text"] for m in standin.messages(CID)] == ["/echo slow"]
    call = standin.hook_calls[0]
    assert call["outcome"] == "unchanged"
    if failure == "timeout":
        assert call["error"] == "timeout" and call["status"] is None
        assert call["elapsed"] < 0.9 and time.perf_counter() - started < 0.95


@pytest.mark.asyncio
async def test_commands_need_enabling_and_a_handler(
    client: StreamChatAsync, standin: StreamStandIn, receiver: tuple[Receiver, str]
) -> None:
    hook, url = receiver
    await register_echo(client, url)
    team = await client.channel("team", "t1").send_message({"text": "/echo hi"}, "alice")
    assert "command" not in team["message"]  # echo is not enabled on `team`
    giphy = await client.channel("messaging", "general").send_message({"text": "/giphy cats"}, "alice")
    assert (giphy["message"]["command"], giphy["message"]["args"]) == ("giphy", "cats")  # built-in: no hook
    await client.update_app_settings(custom_action_handler_url="")
    await client.channel("messaging", "general").send_message({"text": "/echo nobody home"}, "alice")
    assert hook.requests == [] and standin.hook_calls == []


# ---- messages, threads, events -------------------------------------------------------------


@pytest.mark.asyncio
async def test_bot_message_and_partial_updates(client: StreamChatAsync, standin: StreamStandIn) -> None:
    await client.upsert_user({"id": "gpt-bot", "name": "GPT"})
    channel = client.channel("messaging", "general")
    placeholder = await channel.send_message(
        {"id": "bot-1", "text": "", "ai_generated": True}, "gpt-bot", skip_push=True
    )
    message = placeholder["message"]
    assert message["id"] == "bot-1" and message["ai_generated"] is True and message["user"]["name"] == "GPT"
    assert message["created_at"].endswith("Z") and message["type"] == "regular"
    with pytest.raises(StreamAPIException) as err:
        await channel.send_message({"id": "bot-1", "text": "again"}, "gpt-bot")
    assert err.value.status_code == 400
    with pytest.raises(StreamAPIException) as err:
        await channel.send_message({"text": "no", "type": "ephemeral"}, "gpt-bot")
    assert err.value.status_code == 400

    updated = await client.update_message_partial("bot-1", {"set": {"text": "Hello", "generating": True}}, "gpt-bot")
    assert updated["message"]["text"] == "Hello" and updated["message"]["generating"] is True
    await client.update_message_partial(
        "bot-1", {"set": {"text": "Hello world", "generating": False}, "unset": ["ai_generated"]}, "gpt-bot"
    )
    fetched = (await client.get_message("bot-1"))["message"]
    assert fetched["text"] == "Hello world" and fetched["generating"] is False and "ai_generated" not in fetched
    assert fetched["user"]["id"] == "gpt-bot"

    full = await client.update_message({"id": "bot-1", "text": "Final", "user": {"id": "gpt-bot"}})
    assert full["message"]["text"] == "Final" and "generating" not in full["message"]
    with pytest.raises(StreamAPIException) as err:
        await client.update_message_partial("missing", {"set": {"text": "x"}}, "gpt-bot")
    assert err.value.status_code == 404
    assert [e["type"] for e in standin.published(CID)] == ["message.new"] + ["message.updated"] * 3


@pytest.mark.asyncio
async def test_message_length_limit(client: StreamChatAsync, standin: StreamStandIn) -> None:
    channel = client.channel("messaging", "general")
    await channel.send_message({"id": "ok", "text": "x" * 5000}, "bot")
    with pytest.raises(StreamAPIException) as err:
        await channel.send_message({"text": "x" * 5001}, "bot")
    assert err.value.status_code == 400 and err.value.error_code == 4 and "5000" in err.value.error_message
    with pytest.raises(StreamAPIException) as err:
        await client.update_message_partial("ok", {"set": {"text": "y" * 5001}}, "bot")
    assert err.value.status_code == 400
    standin.set_max_message_length("messaging", 10)
    with pytest.raises(StreamAPIException):
        await channel.send_message({"text": "eleven char"}, "bot")


@pytest.mark.asyncio
async def test_thread_replies(client: StreamChatAsync, standin: StreamStandIn) -> None:
    channel = client.channel("messaging", "general")
    parent = (await channel.send_message({"text": "question"}, "alice"))["message"]
    for n in range(3):
        reply = await channel.send_message(
            {"text": f"r{n}", "parent_id": parent["id"], "show_in_channel": n == 2}, "bot"
        )
        assert reply["message"]["type"] == "reply" and reply["message"]["parent_id"] == parent["id"]
    replies = await channel.get_replies(parent["id"], limit=2)
    assert [m["text"] for m in replies["messages"]] == ["r1", "r2"]
    assert (await client.get_message(parent["id"]))["message"]["reply_count"] == 3
    state = await channel.query()
    assert [m["text"] for m in state["messages"]] == ["question", "r2"]
    assert len(standin.messages(CID)) == 4
    with pytest.raises(StreamAPIException):
        await channel.send_message({"text": "orphan", "parent_id": "nope"}, "bot")


async def test_messages_are_soft_deleted_by_default_and_gone_when_hard_deleted(
    client: StreamChatAsync, standin: StreamStandIn
) -> None:
    channel = client.channel("messaging", "general")
    parent = (await channel.send_message({"text": "question"}, "alice"))["message"]
    soft = (await channel.send_message({"text": "oops"}, "alice"))["message"]
    reply = (await channel.send_message({"text": "leftover", "parent_id": parent["id"]}, "bot"))["message"]
    deleted = (await client.delete_message(soft["id"]))["message"]
    assert (deleted["type"], bool(deleted["deleted_at"])) == ("deleted", True)
    assert standin.message(soft["id"])["type"] == "deleted"  # still there, marked
    await client.delete_message(reply["id"], hard=True)
    assert standin.message(reply["id"]) is None
    assert (await client.get_message(parent["id"]))["message"]["reply_count"] == 0
    with pytest.raises(StreamAPIException) as missing:
        await client.delete_message(reply["id"], hard=True)
    assert missing.value.status_code == 404
    events = [(e["type"], e.get("hard_delete", False)) for e in standin.published(CID) if e["type"] == "message.deleted"]
    assert events == [("message.deleted", False), ("message.deleted", True)]
    assert [c["operation"] for c in standin.writes("message")][-2:] == ["DeleteMessage", "DeleteMessage"]


async def test_members_are_added_once_and_only_to_a_channel_that_exists(
    client: StreamChatAsync, standin: StreamStandIn
) -> None:
    channel = client.channel("messaging", "general", {"members": ["alice"]})
    await channel.create("alice")
    await client.upsert_user({"id": "gpt-bot", "name": "GPT bot"})
    for _ in range(2):
        answer = await channel.add_members(["gpt-bot"])
        assert [m["user_id"] for m in answer["members"]] == ["alice", "gpt-bot"]
    assert standin.members(CID) == ["alice", "gpt-bot"]
    assert len([e for e in standin.published(CID) if e["type"] == "member.added"]) == 1
    with pytest.raises(StreamAPIException) as missing:
        await client.channel("messaging", "nowhere").add_members(["gpt-bot"])
    assert missing.value.status_code == 404


@pytest.mark.asyncio
async def test_events(client: StreamChatAsync, standin: StreamStandIn) -> None:
    channel = client.channel("messaging", "general")
    thinking = {"type": "ai_indicator.update", "ai_state": "AI_STATE_THINKING", "message_id": "m1"}
    sent = await channel.send_event(thinking, "gpt-bot")
    event = sent["event"]
    assert (event["cid"], event["channel_type"], event["channel_id"]) == (CID, "messaging", "general")
    assert event["user"]["id"] == "gpt-bot" and event["ai_state"] == "AI_STATE_THINKING" and "created_at" in event
    await channel.send_event({"type": "ai_indicator.clear"}, "gpt-bot")
    assert [e["type"] for e in standin.events(CID)] == ["ai_indicator.update", "ai_indicator.clear"]
    assert [e["type"] for e in standin.published(CID)] == ["ai_indicator.update", "ai_indicator.clear"]
    with pytest.raises(StreamAPIException):
        await channel.send_event({"ai_state": "x"}, "gpt-bot")


# ---- fault injection -------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_injected_429_carries_rate_limit_headers(
    client: StreamChatAsync, standin: StreamStandIn, standin_url: str
) -> None:
    reset = str(int(time.time()) + 30)
    limits = {"X-RateLimit-Limit": "1000", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": reset}
    standin.inject_fault("POST", r"/message$", status=429, times=2, headers=limits)
    channel = client.channel("messaging", "general")
    with pytest.raises(StreamAPIException) as err:
        await channel.send_message({"text": "hi"}, "bot")
    assert err.value.status_code == 429 and err.value.error_code == 9
    token = jwt.encode({"server": True}, SECRET, algorithm="HS256")
    async with httpx.AsyncClient() as http:
        response = await http.post(f"{standin_url}/channels/messaging/general/message", params={"api_key": KEY},
                                   headers={"Authorization": token, "stream-auth-type": "jwt"},
                                   json={"message": {"text": "hi", "user": {"id": "bot"}}})
    assert response.status_code == 429 and response.headers["x-ratelimit-reset"] == reset
    assert response.headers["x-ratelimit-remaining"] == "0"
    sent = await channel.send_message({"text": "hi"}, "bot")  # the fault is used up
    assert sent.rate_limit() is None and [m["text"] for m in standin.messages(CID)] == ["hi"]
    assert [c["status"] for c in standin.calls if c["operation"] == "SendMessage"] == [429, 429, 200]


@pytest.mark.asyncio
async def test_injected_delay_then_served(client: StreamChatAsync, standin: StreamStandIn) -> None:
    standin.inject_fault("*", r"^/messages/", status=None, delay=0.3)
    await client.channel("messaging", "general").send_message({"id": "m1", "text": "hi"}, "bot")
    started = time.perf_counter()
    assert (await client.get_message("m1"))["message"]["text"] == "hi"
    assert time.perf_counter() - started >= 0.3


def test_loopback_server_stops() -> None:
    app = Starlette(routes=[Route("/", lambda request: JSONResponse({"ok": True}))])
    with LoopbackServer(app) as server:
        assert httpx.get(server.url + "/").json() == {"ok": True}
        url = server.url
    with pytest.raises(httpx.ConnectError):
        httpx.get(url + "/", timeout=1)


@pytest.mark.asyncio
async def test_subscribers_receive_published_events(standin: StreamStandIn) -> None:
    with LoopbackServer(standin.app) as server:

        async def subscribe() -> asyncio.Queue[dict[str, Any]]:
            return standin.subscribe()  # queues belong to the server's loop

        queue = await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(subscribe(), server.loop))
        async with StreamChatAsync(KEY, SECRET, base_url=server.url) as client:
            await client.channel("messaging", "general").send_message({"id": "m1", "text": "hi"}, "bot")
            await client.update_message_partial("m1", {"set": {"text": "hi!"}}, "bot")

        async def next_two() -> list[dict[str, Any]]:
            return [await asyncio.wait_for(queue.get(), 2) for _ in range(2)]

        events = await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(next_two(), server.loop))
        assert [(e["type"], e["message"]["text"]) for e in events] == [
            ("message.new", "hi"), ("message.updated", "hi!"),
        ]
        standin.unsubscribe(queue)


def test_the_standin_imports_nothing_else_of_slashbots() -> None:
    """It plays Stream independently of our code: a bug there must not hide a bug here."""
    package = Path(slashbots.sandbox.standin.__file__).parent
    for module in package.glob("*.py"):
        for node in ast.walk(ast.parse(module.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            for name in names:
                assert not name.startswith("slashbots") or name.startswith("slashbots.sandbox.standin"), (
                    f"{module.name} imports {name}")


@pytest.mark.asyncio
async def test_the_benchmarks_fast_standin_answers_and_records_the_same(receiver: tuple[Receiver, str]) -> None:
    """benchmarks/fast_standin.py serves through shortcuts; what it answers and records must not drift."""
    from benchmarks.fast_standin import FastStreamStandIn

    hook, url = receiver
    hook.answer = lambda payload: JSONResponse({"message": {"text": "rewritten"}})
    masks = [(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", "T"), (r"[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}", "U"),
             (r'"(duration|at|elapsed)": ("[^"]*"|[0-9.e-]+)', r'"\1": 0'), (r"127\.0\.0\.1:\d+", "HOST"),
             (r'(?i)"x-signature": "[0-9a-f]+"', "SIG")]

    async def run(standin: StreamStandIn) -> str:
        with LoopbackServer(standin.app) as server:
            async with StreamChatAsync(KEY, SECRET, base_url=server.url) as client:
                await register_echo(client, url)
                channel = client.channel("messaging", "general")
                answers: list[Any] = [await channel.send_message({"text": "/echo hi"}, "alice")]
                answers.append(await channel.send_message({"id": "m1", "text": "", "ai_generated": True}, "bot"))
                answers.append(await client.update_message_partial("m1", {"set": {"text": "hey"}}, "bot"))
                answers.append(await channel.send_event({"type": "ai_indicator.clear"}, "bot"))
                answers.append(await channel.get_replies("m1"))
                for bad in (client.get("no/such/thing"), client.update_message_partial("m1", {"set": {"id": "x"}}, "bot")):
                    with pytest.raises(StreamAPIException) as err:
                        await bad
                    answers.append([err.value.status_code, json.loads(err.value.response_text)])
        seen = json.dumps([answers, standin.calls, standin.hook_calls, standin.published()], sort_keys=True)
        for pattern, mask in masks:
            seen = re.sub(pattern, mask, seen)
        return seen

    plain = await run(StreamStandIn(KEY, SECRET))
    fast = await run(FastStreamStandIn(KEY, SECRET))
    if fast != plain:
        at = next((n for n, (a, b) in enumerate(zip(plain, fast)) if a != b), min(len(plain), len(fast)))
        pytest.fail(f"the first difference, at {at}:\n{plain[at - 150:at + 150]}\n{fast[at - 150:at + 150]}")
    assert len(hook.requests) == 2
