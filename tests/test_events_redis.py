"""Conversations across instances on a real Redis, with real processes: a stop reaches whichever instance
runs the reply, a stopped reply is never run again, a redelivered event is answered once, and every
instance knows the threads any of them answered in.

Events are posted to the instance a test picks, built and signed the way Stream builds them
(slashbots.sandbox.standin.hook_requests), from messages really sent to the Stream stand-in.
"""

from __future__ import annotations

import re
import signal
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import httpx
from stream_chat import StreamChatAsync

from slashbots.sandbox.standin.hook_requests import hook_request
from tests.conftest import API_KEY, API_SECRET, wait_for
from tests.support.processes import Served
from tests.support.processes import instances as two_instances

REPO = Path(__file__).resolve().parents[1]
LEASE = 2.0
CID = "messaging:general"
BOTS = f"""\
stream: {{api_key: {API_KEY}, api_secret: {API_SECRET}}}
plugins: [tests.support.talkers]
server: {{reply_lease_seconds: {LEASE}, shutdown_timeout: 0.5, redis_timeout_ms: 1000}}  # a shared, loaded machine
bots:
  - command: tick
    description: Ticks until stopped
    provider: ticker
    channel_types: [messaging]
    identity: {{id: tick-bot, name: Tick bot}}
    update_interval_ms: 50
    options: {{delay: 0.1}}
    mentions: true
    stop: true
  - command: ask
    description: Says what asked it
    provider: parrot
    channel_types: [messaging]
    identity: {{id: ask-bot, name: Ask bot}}
    mentions: true
    threads: true
"""


@contextmanager
def instances(tmp_path: Path, stream_url: str, redis_url: str, monkeypatch) -> Iterator[list[Served]]:
    monkeypatch.setenv("PYTHONPATH", str(REPO))  # so the served processes can import tests.support.talkers
    config = tmp_path / "bots.yaml"
    config.write_text(BOTS, encoding="utf-8")
    with two_instances(config, stream_url, redis_url, count=2) as started:
        yield started


async def say(stream, text: str, *, mentioned: tuple[str, ...] = (), parent_id: str | None = None) -> dict[str, Any]:
    """A message really sent to the stand-in, as the message.new event Stream would send about it."""
    async with StreamChatAsync(API_KEY, API_SECRET, base_url=stream.url) as chat:
        await chat.upsert_user({"id": "alice", "name": "Alice"})
        message: dict[str, Any] = {"text": text, "mentioned_users": list(mentioned)}
        if parent_id:
            message["parent_id"] = parent_id
        sent = (await chat.channel("messaging", "general").send_message(message, "alice"))["message"]
    return {"type": "message.new", "cid": CID, "channel_type": "messaging", "channel_id": "general",
            "message_id": sent["id"], "message": sent, "user": sent["user"]}


async def deliver(served: Served, event: dict[str, Any], webhook_id: str | None = None) -> None:
    request = hook_request(event, api_key=API_KEY, api_secret=API_SECRET, compress=False)
    headers = {**request.headers, **({"X-Webhook-Id": webhook_id} if webhook_id else {})}
    async with httpx.AsyncClient() as client:
        response = await client.post(served.url + "/events", content=request.content, headers=headers)
    assert response.status_code == 200, response.text


def answer_to(stream, message_id: str) -> list[dict[str, Any]]:
    return [m for m in stream.standin.messages(CID) if m.get("answer_to") == message_id]


async def ticking(stream, served: Served) -> dict[str, Any]:
    event = await say(stream, "@Tick bot go", mentioned=("tick-bot",))
    await deliver(served, event)
    return await wait_for(lambda: next((m for m in answer_to(stream, event["message"]["id"])
                                        if m["text"].count("tick") >= 3), None), what="the ticks")


def text_writes(stream, message_id: str) -> list[dict[str, Any]]:
    return [c["json"]["set"] for c in stream.standin.calls
            if c["operation"] == "UpdateMessagePartial" and c["path"].endswith(message_id)]


def counted(served: Served, command: str, outcome: str) -> float:
    found = re.search(rf'^slashbots_events_total\{{command="{command}",outcome="{outcome}"\}} ([0-9.]+)$',
                      httpx.get(served.url + "/metrics").text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


async def test_a_stop_sent_to_one_instance_stops_the_reply_another_runs_within_a_second(
        stream, redis_server, tmp_path, monkeypatch) -> None:
    with instances(tmp_path, stream.url, redis_server.url, monkeypatch) as (runner, other):
        answer = await ticking(stream, runner)
        pressed = time.monotonic()
        await deliver(other, {"type": "ai_indicator.stop", "cid": CID, "channel_type": "messaging",
                              "channel_id": "general", "user": {"id": "bob"}})
        await wait_for(lambda: stream.standin.message(answer["id"])["generating"] is False, timeout=5,
                       what="the reply to stop")
        took = time.monotonic() - pressed
        await wait_for(lambda: not redis_server.client().exists(f"slashbots:{API_KEY}:job:tick:{answer['answer_to']}"),
                       what="the stopped job to be finished")
    assert took < 1.0, took
    writes = text_writes(stream, answer["id"])
    assert writes[-1] == {"generating": False}
    assert stream.standin.message(answer["id"])["text"] == [w["text"] for w in writes if "text" in w][-1]
    clears = [e for e in stream.standin.events(CID) if e["type"] == "ai_indicator.clear"]
    assert clears and clears[-1]["message_id"] == answer["id"]
    assert "reply to tick:" in runner.output and "stopped by the stop button" in runner.output


async def test_a_stopped_reply_whose_instance_died_is_ended_as_it_stood_and_never_run_again(
        stream, redis_server, tmp_path, monkeypatch) -> None:
    with instances(tmp_path, stream.url, redis_server.url, monkeypatch) as (runner, other):
        answer = await ticking(stream, runner)
        runner.process.send_signal(signal.SIGSTOP)  # it hears nothing from now on
        pressed = time.monotonic()
        await deliver(other, {"type": "ai_indicator.stop", "cid": CID, "channel_type": "messaging",
                              "channel_id": "general", "user": {"id": "alice"}})
        # Its lease lapses; the other instance claims the job, finds it stopped, and ends it without a rerun.
        await wait_for(lambda: stream.standin.message(answer["id"])["generating"] is False, timeout=4 * LEASE,
                       what="the claimed, stopped reply to be ended")
        runner.process.send_signal(signal.SIGKILL)
    writes = [c for c in stream.standin.calls
              if c["operation"] == "UpdateMessagePartial" and c["path"].endswith(answer["id"])]
    texts = [c for c in writes if "text" in c["json"]["set"]]
    assert all(c["at"] < pressed for c in texts)  # no text written after the stop: nothing ran again ...
    assert writes[-1]["json"]["set"] == {"generating": False}
    assert stream.standin.message(answer["id"])["text"] == texts[-1]["json"]["set"]["text"]  # ... it shows what it did
    assert len(answer_to(stream, answer["answer_to"])) == 1


async def test_an_event_delivered_to_two_instances_is_answered_once(
        stream, redis_server, tmp_path, monkeypatch) -> None:
    with instances(tmp_path, stream.url, redis_server.url, monkeypatch) as (a, b):
        event = await say(stream, "@Ask bot once, please", mentioned=("ask-bot",))
        await deliver(a, event, webhook_id="wh-1")
        await deliver(b, event, webhook_id="wh-1")  # Stream retried, and the balancer chose the other
        await wait_for(lambda: [m for m in answer_to(stream, event["message"]["id"]) if not m["generating"]],
                       what="the answer")
        assert counted(a, "ask", "accepted") + counted(b, "ask", "accepted") == 1
        assert counted(a, "ask", "duplicate") + counted(b, "ask", "duplicate") == 1
    assert [m["text"] for m in answer_to(stream, event["message"]["id"])] == ["mention: once, please"]


async def test_every_instance_knows_the_threads_any_answered_in(stream, redis_server, tmp_path, monkeypatch) -> None:
    with instances(tmp_path, stream.url, redis_server.url, monkeypatch) as (a, b):
        event = await say(stream, "@Ask bot start", mentioned=("ask-bot",))
        await deliver(a, event)
        [first] = await wait_for(lambda: [m for m in answer_to(stream, event["message"]["id"]) if not m["generating"]],
                                 what="the answer")
        reads = len([c for c in stream.standin.calls if c["operation"] == "GetMessage"])
        follow_up = await say(stream, "and then?", parent_id=first["id"])
        await deliver(b, follow_up)
        [reply] = await wait_for(lambda: [m for m in answer_to(stream, follow_up["message"]["id"])
                                          if not m["generating"]], what="the follow-up's answer")
    assert (reply["text"], reply["parent_id"]) == ("thread: and then?", first["id"])
    assert len([c for c in stream.standin.calls if c["operation"] == "GetMessage"]) == reads  # known from Redis
