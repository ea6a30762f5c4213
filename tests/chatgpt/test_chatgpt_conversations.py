"""The ChatGPT bot in a conversation, end to end: a Stream stand-in that already holds someone else's event
hook, the OpenAI stand-in, and messages sent with the stream-chat SDK and delivered to /events as Stream
delivers them.
"""

from __future__ import annotations

from typing import Any

from stream_chat import StreamChatAsync

from slashbots.testing import API_KEY, API_SECRET, Bots, wait_for
from tests.chatgpt.helpers import TEST_KEY
from tests.support.openai_standin import OpenAIStandIn, Stream

CID = "messaging:general"
THEIRS = {"hook_type": "webhook", "enabled": True, "webhook_url": "https://analytics.example.com/stream",
          "event_types": ["message.new"], "should_send_custom_events": True}


def gpt_bot(standin_url: str) -> str:
    return f"""\
  - command: gpt
    description: Ask GPT
    args: "[question]"
    provider: chatgpt
    channel_types: [messaging]
    identity: {{id: chatgpt-bot, name: ChatGPT bot}}
    update_interval_ms: 50
    mentions: true
    threads: true
    stop: true
    options: {{base_url: "{standin_url}/v1", api_key: {TEST_KEY}, moderation: false}}
"""


def asked(standin: OpenAIStandIn) -> list[list[dict[str, Any]]]:
    """The conversation sent with each chat request, without the system prompt."""
    return [[m for m in body["messages"] if m["role"] != "system"] for body in standin.bodies("/chat/completions")]


async def test_mentions_follow_ups_and_the_stop_button_beside_someone_elses_hook(
        serve, stream, standin: OpenAIStandIn, standin_url: str) -> None:
    async with StreamChatAsync(API_KEY, API_SECRET, base_url=stream.url) as chat:
        await chat.update_app_settings(event_hooks=[THEIRS])
        [theirs] = (await chat.get_app_settings())["app"]["event_hooks"]
        served = serve(gpt_bot(standin_url))
        bots = Bots(served.app.state.config, served.app, served.url, stream)
        hooks = (await chat.get_app_settings())["app"]["event_hooks"]
    assert hooks[0] == theirs and [h["webhook_url"] for h in hooks] == [theirs["webhook_url"], served.url + "/events"]

    # An @mention gets one answer; a plain message none (and no request to the model).
    standin.chats.append(Stream(["A vector clock is ", "a list of counters."]))
    answer = await bots.message("@ChatGPT bot what is a vector clock?")
    assert answer == "A vector clock is a list of counters."
    assert asked(standin)[-1] == [{"role": "user", "content": "what is a vector clock?"}]
    assert await bots.message("lunch, anyone?") is None
    assert len(asked(standin)) == 1

    # A /gpt command that mentions the bot also arrives as message.new: one answer.
    standin.chats.append(Stream(["Hello!"]))
    assert await bots.command("/gpt say hello @ChatGPT bot") == "Hello!"
    await bots._settle(bots.messages()[-2]["id"], 10)
    assert len(asked(standin)) == 2
    assert [m["text"] for m in bots.messages() if m["user"]["id"] == "chatgpt-bot"] == [answer, "Hello!"]

    # A follow-up in the bot's thread is answered there, with the earlier exchange.
    standin.chats.append(Stream(["A Lamport clock is one counter."]))
    assert await bots.reply(answer, "and a Lamport clock?") == "A Lamport clock is one counter."
    assert asked(standin)[-1] == [
        {"role": "user", "content": "what is a vector clock?"},
        {"role": "assistant", "content": "A vector clock is a list of counters."},
        {"role": "user", "content": "and a Lamport clock?"},
    ]
    follow_up = bots.messages()[-1]
    assert follow_up["parent_id"] == next(m["id"] for m in bots.messages() if m["text"] == answer)

    # Stop: the text stays as shown, the model request is cancelled, the indicator is cleared.
    slow = Stream([f"word{n} " for n in range(200)], pace=0.05)
    standin.chats.append(slow)
    sent = await bots._send("@ChatGPT bot write a long essay", user="bob", cid=CID, parent_id=None)
    writing = await wait_for(lambda: next((m for m in bots.messages() if m.get("answer_to") == sent["id"]
                                           and m["text"].count("word") >= 5), None), what="the essay to show")
    await bots.stop(CID, user="alice")  # any member may stop
    stopped = bots.standin.message(writing["id"])
    writes = [c["json"]["set"] for c in bots.stream_calls
              if c["operation"] == "UpdateMessagePartial" and c["path"].endswith(writing["id"])]
    assert writes[-1] == {"generating": False} and stopped["generating"] is False
    assert stopped["text"] == [w["text"] for w in writes if "text" in w][-1]
    assert stopped["text"].count("word") < 200
    await wait_for(slow.hung_up.is_set, what="the model request to be cancelled")
    assert bots.standin.events(CID)[-1]["type"] == "ai_indicator.clear"
