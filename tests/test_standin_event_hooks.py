"""Event hooks in the Stream stand-in, driven through the real stream_chat SDK over loopback.

A receiver plays the hook's server: it records what arrives and answers as told, and can hold
an answer until the test lets it go, so what happens while a delivery is under way is decided
by the test, not by timing.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import pytest_asyncio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from stream_chat import StreamChatAsync
from stream_chat.base.exceptions import StreamAPIException

from slashbots.sandbox.loopback import LoopbackServer
from slashbots.sandbox.standin import StreamStandIn
from slashbots.sandbox.standin.app_config import AppConfig
from slashbots.sandbox.standin.event_hooks import EventHooks
from slashbots.sandbox.standin.recorder import Recorder
from tests.conftest import API_KEY, API_SECRET, wait_for

CID = "messaging:general"


class Receiver:
    """An event hook's server. At `/events`, `answers` are used in turn (then 200): a status, or
    "hold" to wait until `release` is set; `/slow` always holds. `/command` is a command hook
    that answers with an error message."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.answers: list[int | str] = []
        self.release = threading.Event()
        self.app = Starlette(routes=[Route("/events", self.events, methods=["POST"]),
                                     Route("/slow", self.events, methods=["POST"]),
                                     Route("/command", self.command, methods=["POST"])])

    async def events(self, request: Request) -> Response:
        raw = await request.body()
        plain = gzip.decompress(raw) if request.headers.get("content-encoding") == "gzip" else raw
        self.requests.append({"raw": raw, "plain": plain, "headers": dict(request.headers)})
        if request.url.path == "/slow":
            answer: int | str = "hold"
        else:
            answer = self.answers.pop(0) if self.answers else 200
        if answer == "hold":
            await asyncio.to_thread(self.release.wait, 10)
            answer = 200
        return Response(status_code=int(answer))

    async def command(self, request: Request) -> Response:
        return JSONResponse({"message": {"type": "error", "text": "Only you see this."}})

    def payloads(self, event_type: str | None = None) -> list[dict[str, Any]]:
        found = [json.loads(r["plain"]) for r in self.requests]
        return [p for p in found if event_type is None or p["type"] == event_type]


@pytest.fixture
def standin() -> StreamStandIn:
    return StreamStandIn(API_KEY, API_SECRET, event_hook_timeout=0.3)


@pytest.fixture
def standin_url(standin: StreamStandIn) -> Iterator[str]:
    with LoopbackServer(standin.app) as server:
        yield server.url


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, str]]:
    receiver = Receiver()
    with LoopbackServer(receiver.app) as server:
        yield receiver, server.url
        receiver.release.set()  # nothing held past the test


@pytest_asyncio.fixture
async def client(standin_url: str) -> AsyncIterator[StreamChatAsync]:
    async with StreamChatAsync(API_KEY, API_SECRET, base_url=standin_url) as client:
        await client.upsert_users([{"id": "alice", "name": "Alice"}, {"id": "gpt-bot", "name": "GPT bot"}])
        await client.channel("messaging", "general", {"members": ["alice", "gpt-bot"]}).create("alice")
        yield client


def hook(url: str, **fields: Any) -> dict[str, Any]:
    return {"hook_type": "webhook", "enabled": True, "webhook_url": url, **fields}


def settled(standin: StreamStandIn, count: int) -> list[dict[str, Any]] | None:
    """The event-hook records once `count` of them exist and none is pending any more."""
    calls = standin.event_hook_calls
    return calls if len(calls) >= count and all(c["outcome"] != "pending" for c in calls) else None


# ---- the app's event_hooks ---------------------------------------------------------------


async def test_event_hooks_are_replaced_as_a_whole(client: StreamChatAsync) -> None:
    assert (await client.get_app_settings())["app"]["event_hooks"] == []
    ours = hook("https://bots.example.com/events", event_types=["message.new"], should_send_custom_events=True)
    theirs = hook("https://other.example.com/hook")
    queue = {"hook_type": "sqs", "enabled": True, "sqs_queue_url": "https://sqs.example/q", "sqs_region": "eu-west-1"}
    await client.update_app_settings(event_hooks=[ours, theirs, queue])
    hooks = (await client.get_app_settings())["app"]["event_hooks"]
    assert [h["webhook_url"] for h in hooks[:2]] == [ours["webhook_url"], theirs["webhook_url"]]
    assert len({h["id"] for h in hooks}) == 3 and all(h["created_at"] and h["updated_at"] for h in hooks)
    assert hooks[1]["event_types"] == [] and hooks[1]["should_send_custom_events"] is False  # every event; none custom
    assert hooks[2]["sqs_queue_url"] == "https://sqs.example/q"  # kept as given

    kept, changed = hooks[0], {**hooks[2], "enabled": False}
    await client.update_app_settings(event_hooks=[kept, changed])  # as read back, stamps and all
    after = (await client.get_app_settings())["app"]["event_hooks"]
    assert [h["id"] for h in after] == [kept["id"], changed["id"]]  # `theirs` is gone
    assert after[0] == kept  # unchanged: same id, same stamps
    assert after[1]["created_at"] == hooks[2]["created_at"] and after[1]["enabled"] is False

    for bad in ([{"enabled": True, "webhook_url": "https://x.example"}],  # no hook_type
                [hook("not a url")], [hook("https://x.example", event_types="message.new")],
                [hook("https://x.example", enabled="yes")], [{**kept}, {**kept}], {"not": "a list"}):
        with pytest.raises(StreamAPIException) as err:
            await client.update_app_settings(event_hooks=bad)
        assert err.value.status_code == 400
    assert (await client.get_app_settings())["app"]["event_hooks"] == after
    await client.update_app_settings(event_hooks=[])
    assert (await client.get_app_settings())["app"]["event_hooks"] == []


# ---- message events ------------------------------------------------------------------------


async def test_every_new_message_is_sent_signed_bots_own_included(
    client: StreamChatAsync, standin: StreamStandIn, receiver: tuple[Receiver, str]
) -> None:
    hook_server, url = receiver
    await client.update_app_settings(event_hooks=[hook(f"{url}/events", event_types=["message.new"])])
    channel = client.channel("messaging", "general")
    asked = (await channel.send_message({"text": "@GPT bot hi", "mentioned_users": ["gpt-bot"]}, "alice"))["message"]
    await channel.send_message({"text": "Hello!", "parent_id": asked["id"], "ai_generated": True}, "gpt-bot")
    await wait_for(lambda: settled(standin, 2), what="two deliveries")

    for request in hook_server.requests:
        headers = request["headers"]
        parsed = client.verify_and_parse_webhook(request["raw"], headers["x-signature"])
        assert parsed["type"] == "message.new" and headers["x-api-key"] == API_KEY
        assert headers["x-webhook-attempt"] == "1" and len(headers["x-webhook-id"]) == 36
    assert len({r["headers"]["x-webhook-id"] for r in hook_server.requests}) == 2

    # Deliveries to one hook may overlap, so they may arrive in either order.
    [mention] = [p for p in hook_server.payloads("message.new") if p["user"]["id"] == "alice"]
    [answer] = [p for p in hook_server.payloads("message.new") if p["user"]["id"] == "gpt-bot"]
    assert (mention["cid"], mention["channel_type"], mention["channel_id"]) == (CID, "messaging", "general")
    assert mention["message"]["id"] == asked["id"] and mention["message_id"] == asked["id"]
    assert mention["user"]["id"] == "alice" and mention["message"]["user"]["name"] == "Alice"
    assert [u["name"] for u in mention["message"]["mentioned_users"]] == ["GPT bot"]  # ids in, users out
    assert "parent_id" not in mention["message"] and mention["created_at"].endswith("Z")
    assert [m["user_id"] for m in mention["members"]] == ["alice", "gpt-bot"]
    assert answer["user"]["id"] == "gpt-bot" and answer["message"]["ai_generated"] is True
    assert answer["message"]["parent_id"] == asked["id"] and answer["message"]["type"] == "reply"
    assert [c["outcome"] for c in standin.event_hook_calls] == ["delivered", "delivered"]
    assert [a["status"] for c in standin.event_hook_calls for a in c["attempts"]] == [200, 200]


async def test_sending_does_not_wait_for_delivery(
    client: StreamChatAsync, standin: StreamStandIn, receiver: tuple[Receiver, str]
) -> None:
    hook_server, url = receiver
    hook_server.answers = ["hold"]
    await client.update_app_settings(event_hooks=[hook(f"{url}/events")])
    await client.channel("messaging", "general").send_message({"text": "hi"}, "alice")
    await wait_for(lambda: hook_server.requests, what="the delivery to arrive")
    [call] = standin.event_hook_calls
    assert call["outcome"] == "pending"  # the send has its answer; the hook has not answered yet
    hook_server.release.set()
    await wait_for(lambda: settled(standin, 1), what="the delivery to settle")
    assert standin.event_hook_calls[0]["outcome"] == "delivered"


async def test_each_hook_gets_the_types_it_names(
    client: StreamChatAsync, standin: StreamStandIn, receiver: tuple[Receiver, str]
) -> None:
    _, url = receiver
    await client.update_app_settings(event_hooks=[
        hook(f"{url}/events?h=new", id="new", event_types=["message.new"]),
        hook(f"{url}/events?h=updated", id="updated", event_types=["message.updated"]),
        hook(f"{url}/events?h=all", id="all"),
        hook(f"{url}/events?h=off", id="off", enabled=False),
    ])
    channel = client.channel("messaging", "general")
    await channel.send_message({"id": "m1", "text": "draft"}, "gpt-bot")
    await client.update_message_partial("m1", {"set": {"text": "final"}}, "gpt-bot")
    await channel.send_event({"type": "typing.start"}, "alice")
    await channel.send_event({"type": "ai_indicator.clear"}, "gpt-bot")  # custom: no hook asked for those
    calls = await wait_for(lambda: settled(standin, 5), what="five deliveries")
    got = sorted((c["hook_id"], c["event_type"]) for c in calls)
    assert got == [("all", "message.new"), ("all", "message.updated"), ("all", "typing.start"),
                   ("new", "message.new"), ("updated", "message.updated")]
    updated = next(c for c in calls if c["hook_id"] == "updated")["payload"]
    assert updated["message"]["text"] == "final" and updated["user"]["id"] == "gpt-bot" and "members" not in updated


async def test_custom_events_reach_hooks_that_take_them(
    client: StreamChatAsync, standin: StreamStandIn, receiver: tuple[Receiver, str]
) -> None:
    hook_server, url = receiver
    await client.update_app_settings(event_hooks=[
        hook(f"{url}/events", id="ours", event_types=["message.new"], should_send_custom_events=True),
    ])
    channel = client.channel("messaging", "general")
    await channel.send_event({"type": "ai_indicator.stop"}, "alice")  # what channel.stopAIResponse() sends
    await channel.send_event({"type": "ai_indicator.stop", "message_id": "m7"}, "alice")
    await channel.send_event({"type": "typing.start"}, "alice")  # Stream's own, and not named: not sent
    await wait_for(lambda: settled(standin, 2), what="two deliveries")
    stop, stop_one = sorted(hook_server.payloads(), key=lambda p: "message_id" in p)  # in either order
    assert (stop["type"], stop["cid"], stop["channel_type"], stop["channel_id"]) == (
        "ai_indicator.stop", CID, "messaging", "general")
    assert stop["user"]["id"] == "alice" and "message_id" not in stop and stop_one["message_id"] == "m7"
    assert len(standin.event_hook_calls) == 2


async def test_a_message_only_its_sender_sees_is_not_sent(
    client: StreamChatAsync, standin: StreamStandIn, receiver: tuple[Receiver, str]
) -> None:
    hook_server, url = receiver
    await client.create_command({"name": "ask", "description": "Ask"})
    await client.update_channel_type("messaging", commands=["giphy", "ask"])
    await client.update_app_settings(custom_action_handler_url=f"{url}/command",
                                     event_hooks=[hook(f"{url}/events", event_types=["message.new"])])
    channel = client.channel("messaging", "general")
    refused = await channel.send_message({"text": "/ask anything"}, "alice")
    assert refused["message"]["type"] == "error"
    await channel.send_message({"text": "plain"}, "alice")
    await wait_for(lambda: settled(standin, 1), what="one delivery")
    assert [p["message"]["text"] for p in hook_server.payloads()] == ["plain"]


async def test_gzip_when_the_app_compresses_hook_payloads(
    client: StreamChatAsync, standin: StreamStandIn, receiver: tuple[Receiver, str]
) -> None:
    hook_server, url = receiver
    await client.update_app_settings(enable_hook_payload_compression=True, event_hooks=[hook(f"{url}/events")])
    await client.channel("messaging", "general").send_message({"text": "zipped"}, "alice")
    await wait_for(lambda: settled(standin, 1), what="one delivery")
    [request] = hook_server.requests
    assert request["headers"]["content-encoding"] == "gzip" and request["raw"][:2] == b"\x1f\x8b"
    parsed = client.verify_and_parse_webhook(request["raw"], request["headers"]["x-signature"])
    assert parsed["message"]["text"] == "zipped" and standin.event_hook_calls[0]["compressed"] is True


# ---- failures --------------------------------------------------------------------------------


async def test_failures_are_retried_as_stream_says_then_given_up(
    client: StreamChatAsync, standin: StreamStandIn, receiver: tuple[Receiver, str]
) -> None:
    hook_server, url = receiver
    await client.update_app_settings(event_hooks=[hook(f"{url}/events")])
    channel = client.channel("messaging", "general")
    hook_server.answers = [500, 503, 500]  # 5xx: three attempts, then given up
    await channel.send_message({"text": "one"}, "alice")
    [failed] = await wait_for(lambda: settled(standin, 1), what="the first delivery to settle")
    assert failed["outcome"] == "failed" and [a["status"] for a in failed["attempts"]] == [500, 503, 500]
    assert [r["headers"]["x-webhook-attempt"] for r in hook_server.requests] == ["1", "2", "3"]
    assert len({r["headers"]["x-webhook-id"] for r in hook_server.requests}) == 1  # one id across attempts

    hook_server.answers = [429, 200]
    await channel.send_message({"text": "two"}, "alice")
    calls = await wait_for(lambda: settled(standin, 2), what="the second delivery to settle")
    assert calls[1]["outcome"] == "delivered" and [a["status"] for a in calls[1]["attempts"]] == [429, 200]

    hook_server.answers = [400]  # other 4xx: not retried
    await channel.send_message({"text": "three"}, "alice")
    calls = await wait_for(lambda: settled(standin, 3), what="the third delivery to settle")
    assert calls[2]["outcome"] == "failed" and [a["status"] for a in calls[2]["attempts"]] == [400]
    assert len(hook_server.requests) == 3 + 2 + 1


async def test_unreachable_and_slow_hooks_hold_up_nothing(
    client: StreamChatAsync, standin: StreamStandIn, receiver: tuple[Receiver, str]
) -> None:
    hook_server, url = receiver
    with LoopbackServer(Starlette()) as gone:
        unreachable = f"{gone.url}/events"  # nothing listens there once this block ends
    await client.update_app_settings(event_hooks=[
        hook(f"{url}/slow", id="slow"),  # each of its three attempts runs past the 0.3 s timeout
        hook(unreachable, id="unreachable"),
        hook(f"{url}/events", id="well"),
    ])
    channel = client.channel("messaging", "general")
    await channel.send_message({"text": "one"}, "alice")
    well = await wait_for(lambda: [c for c in standin.event_hook_calls if c["outcome"] == "delivered"],
                          what="the well hook's delivery")
    # Its delivery took milliseconds; the slow hook's attempts take 0.3 s each, with waits between.
    assert [c["hook_id"] for c in well] == ["well"] and standin.event_hook_calls[0]["outcome"] == "pending"
    calls = await wait_for(lambda: settled(standin, 3), what="every hook's delivery to settle")
    outcome = {c["hook_id"]: c for c in calls}
    assert outcome["well"]["outcome"] == "delivered"
    assert outcome["slow"]["outcome"] == "failed" and [a["error"] for a in outcome["slow"]["attempts"]] == ["timeout"] * 3
    assert outcome["unreachable"]["outcome"] == "failed" and len(outcome["unreachable"]["attempts"]) == 2
    assert "ConnectError" in outcome["unreachable"]["attempts"][0]["error"]


async def test_deliveries_left_when_the_standin_stops_are_cancelled(receiver: tuple[Receiver, str]) -> None:
    hook_server, url = receiver
    hook_server.answers = ["hold"]
    standin = StreamStandIn(API_KEY, API_SECRET)
    with LoopbackServer(standin.app) as server:
        async with StreamChatAsync(API_KEY, API_SECRET, base_url=server.url) as client:
            await client.update_app_settings(event_hooks=[hook(f"{url}/events")])
            await client.channel("messaging", "general").send_message({"text": "hi"}, "alice")
        await wait_for(lambda: hook_server.requests, what="the delivery to arrive")
    assert [c["outcome"] for c in standin.event_hook_calls] == ["cancelled"]


async def test_a_hook_with_a_full_queue_drops_new_events() -> None:
    """The bound on what waits for one hook (1,000 by default; 2 here, one of them about to go)."""
    receiver = Receiver()
    receiver.answers = ["hold"]
    lock = threading.RLock()
    config, recorder = AppConfig(lock), Recorder(lock)
    with LoopbackServer(receiver.app) as server:
        config.update_app({"event_hooks": [hook(f"{server.url}/events", id="h")]})
        hooks = EventHooks(config, recorder, members=lambda cid, limit: [], api_key=API_KEY, api_secret=API_SECRET,
                           concurrency=1, backlog=2)
        try:
            for n in range(3):
                hooks.dispatch({"type": "message.new", "cid": CID, "message": {"id": f"m{n}"}})
            await wait_for(lambda: receiver.requests, what="the first delivery to arrive")
            assert [c["outcome"] for c in recorder.event_hook_calls] == ["pending", "pending", "dropped"]
        finally:
            receiver.release.set()
        await wait_for(lambda: [c["outcome"] for c in recorder.event_hook_calls] == ["delivered"] * 2 + ["dropped"],
                       what="the two queued deliveries")
        await hooks.close()


# ---- mentions and threads, as the events carry them ---------------------------------------------


async def test_mentions_and_threads(client: StreamChatAsync, standin: StreamStandIn) -> None:
    channel = client.channel("messaging", "general")
    with pytest.raises(StreamAPIException) as err:
        await channel.send_message({"text": "too many", "mentioned_users": [f"u{n}" for n in range(26)]}, "alice")
    assert err.value.status_code == 400
    parent = (await channel.send_message({"text": "q", "mentioned_users": ["gpt-bot", "gpt-bot"]}, "alice"))["message"]
    assert [u["id"] for u in parent["mentioned_users"]] == ["gpt-bot"]
    for n in range(3):
        await channel.send_message({"text": f"r{n}", "parent_id": parent["id"]}, "gpt-bot" if n % 2 else "alice")
    assert (await client.get_message(parent["id"]))["message"]["reply_count"] == 3
    replies = (await channel.get_replies(parent["id"]))["messages"]
    assert [m["text"] for m in replies] == ["r0", "r1", "r2"] and {m["parent_id"] for m in replies} == {parent["id"]}
    older = (await channel.get_replies(parent["id"], id_lte=replies[1]["id"]))["messages"]
    assert [m["text"] for m in older] == ["r0", "r1"]
