"""Exactly one reply per command: replays, floods, a full house, shutdown, and Stream away at start-up."""

from __future__ import annotations

import asyncio
import json
import uuid

import httpx
from stream_chat import StreamChatAsync

from slashbots.app import create_app
from slashbots.config import load_config
from slashbots.sandbox.loopback import LoopbackServer, bind_loopback
from slashbots.sandbox.standin import StreamStandIn
from tests.conftest import API_KEY, API_SECRET, ECHO_BOT, bot_messages, final_reply, send, wait_for
from tests.test_webhook import command_body, post, stream_headers

SLOW = """\
  - command: slow
    description: Takes its time
    provider: writer
    channel_types: [messaging]
    identity: {{id: slow-bot, name: Slow bot}}
    update_interval_ms: 50
    options: {{pieces: {pieces}, piece: "step ", delay: {delay}}}
"""
WRITERS = "plugins:\n  - slashbots.paced_writers\n"


async def test_a_replayed_webhook_is_answered_once(serve) -> None:
    served = serve()
    raw = json.dumps(command_body("/echo once")).encode()
    headers = stream_headers(raw)
    for _ in range(3):
        response = await post(served.url, raw, headers)
        assert response.status_code == 200
    await final_reply(served.standin, "echo-bot")
    await wait_for(lambda: not served.app.state.replies.running, what="the reply job to end")
    assert served.app.state.replies.finished == 1  # the acks of the replays started no job
    assert [m["text"] for m in bot_messages(served.standin, "echo-bot")] == ["once"]


async def test_the_same_message_under_new_webhook_ids_is_answered_once(serve) -> None:
    served = serve()
    body = command_body("/echo same message")
    raw = json.dumps(body).encode()
    for _ in range(3):
        assert (await post(served.url, raw, stream_headers(raw))).status_code == 200  # fresh X-Webhook-Id each time
    headers = stream_headers(raw)
    del headers["X-Webhook-Id"]
    assert (await post(served.url, raw, headers)).status_code == 200
    await final_reply(served.standin, "echo-bot")
    await wait_for(lambda: not served.app.state.replies.running, what="the reply job to end")
    assert served.app.state.replies.finished == 1
    assert len(bot_messages(served.standin, "echo-bot")) == 1


async def test_a_user_over_the_limit_is_told_when_to_come_back(serve, chat) -> None:
    served = serve(ECHO_BOT + "    rate_limit: {per_user: 2/minute, per_channel: 30/minute}\n")
    for word in ("one", "two"):
        assert (await send(chat, f"/echo {word}"))["type"] == "regular"
    refused = await send(chat, "/echo three")
    assert refused["type"] == "error"
    assert "Slow down: /echo takes 2 per minute per person, 30 per minute in this channel." in refused["text"]
    assert "Try again in 30 seconds." in refused["text"]
    assert (await send(chat, "/echo from bob", user="bob"))["type"] == "regular"
    replies = await final_reply(served.standin, "echo-bot", count=3)
    assert sorted(m["text"] for m in replies) == ["from bob", "one", "two"]
    assert refused["text"] not in [m["text"] for m in served.standin.messages("messaging:general")]


async def test_a_full_house_says_busy_instead_of_queueing(serve, chat) -> None:
    served = serve(SLOW.format(pieces=20, delay=0.05), extra=WRITERS + "server: {max_replies_in_flight: 1}\n")
    assert (await send(chat, "/slow first"))["type"] == "regular"
    busy = await send(chat, "/slow second", user="bob")
    assert httpx.get(served.url + "/readyz").status_code == 503  # a load balancer would send work elsewhere
    assert busy["type"] == "error"
    assert busy["text"] == "The bots are busy right now. Please try /slow again shortly."
    [reply] = await final_reply(served.standin, "slow-bot")
    assert reply["text"] == ("step " * 20).rstrip()
    assert (await send(chat, "/slow third"))["type"] == "regular"


async def test_shutdown_lets_quick_replies_finish_and_ends_slow_ones_honestly(stream, write_config, chat) -> None:
    bots = SLOW.format(pieces=5, delay=0.05) + SLOW.format(pieces=400, delay=0.05).replace(
        "command: slow", "command: slower").replace("slow-bot", "slower-bot")
    config = load_config(write_config(bots, extra=WRITERS + "server: {shutdown_timeout: 1}\n"))
    sock = bind_loopback()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    server = LoopbackServer(create_app(config, stream_url=stream.url, public_url=url), sock=sock).start()
    try:
        await wait_for(lambda: httpx.get(url + "/readyz").status_code == 200, what="ready")
        await send(chat, "/slow quick")
        await send(chat, "/slower long")
        await wait_for(lambda: bot_messages(stream.standin, "slower-bot"), what="the slow reply to start")
    finally:
        await asyncio.to_thread(server.stop)  # SIGTERM's path: uvicorn stops, then the lifespan drains
    [quick] = await final_reply(stream.standin, "slow-bot")
    assert quick["text"] == ("step " * 5).rstrip()
    [cut] = await final_reply(stream.standin, "slower-bot")
    assert cut["text"].startswith("step step")
    assert cut["text"].endswith("⚠️ Answer interrupted: The server shut down before the answer was finished. Please ask again.")
    assert cut["generating"] is False


async def test_stream_away_at_start_up_is_retried_while_not_ready(write_config) -> None:
    stream_socket = bind_loopback()  # Stream's address is known, but nothing answers there yet
    stream_url = f"http://127.0.0.1:{stream_socket.getsockname()[1]}"
    stream_socket.close()
    config = load_config(write_config(ECHO_BOT))
    sock = bind_loopback()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    with LoopbackServer(create_app(config, stream_url=stream_url, public_url=url), sock=sock):
        assert httpx.get(url + "/healthz").status_code == 200
        assert httpx.get(url + "/readyz").status_code == 503
        standin = StreamStandIn(API_KEY, API_SECRET)
        port = int(stream_url.rsplit(":", 1)[1])
        with LoopbackServer(standin.app, sock=bind_loopback(port=port)):
            await wait_for(lambda: httpx.get(url + "/readyz").status_code == 200, timeout=15, what="ready")
            async with StreamChatAsync(API_KEY, API_SECRET, base_url=stream_url) as chat:
                await send(chat, "/echo back online")
                [reply] = await final_reply(standin, "echo-bot")
    assert reply["text"] == "back online"


async def test_bad_credentials_stop_the_server(stream, write_config) -> None:
    path = write_config(ECHO_BOT)
    path.write_text(path.read_text().replace(API_SECRET, "a-different-secret-a-different-secret"))
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    sock = bind_loopback()
    app = create_app(load_config(path), stream_url=stream.url, public_url="http://127.0.0.1:1",
                     on_fatal=lambda: loop.call_soon_threadsafe(stopped.set))
    with LoopbackServer(app, sock=sock):
        await asyncio.wait_for(stopped.wait(), timeout=10)
    assert "Stream answered 401" in app.state.fatal
    assert "check STREAM_API_KEY and STREAM_API_SECRET" in app.state.fatal


async def test_unique_ids_are_all_answered(serve) -> None:
    """The dedupe keys on ids: different commands with the same text are all answered."""
    served = serve()
    for _ in range(5):
        raw = json.dumps(command_body("/echo same text", message_id=str(uuid.uuid4()))).encode()
        assert (await post(served.url, raw, stream_headers(raw))).status_code == 200
    replies = await final_reply(served.standin, "echo-bot", count=5)
    assert [m["text"] for m in replies] == ["same text"] * 5
