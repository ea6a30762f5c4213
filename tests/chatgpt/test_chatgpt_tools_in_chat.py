"""Tools seen from the chat: a /gpt bot served against the Stream stand-in and the OpenAI stand-in.

The chat shows the work (the indicator while tools run, a line per call above the answer),
the lines count toward Stream's message limit, and the bot's memory leaves them out.
"""

from __future__ import annotations

import json
from typing import Any, Callable

from stream_chat import StreamChatAsync

from slashbots import CommandRequest, hookimpl
from slashbots.testing import API_KEY, API_SECRET, Bots, Slashbots, bot_messages, send, wait_for
from tests.chatgpt.helpers import TEST_KEY
from tests.support.openai_standin import Call, OpenAIStandIn, Stream, tool_stream


def tools_plugin(*functions: Callable[..., Any]) -> object:
    class Tools:
        @hookimpl
        def register_tools(self, register):
            for function in functions:
                register(function)

    return Tools()


def gpt(standin_url: str, tools: list[str], **options: Any) -> dict[str, Any]:
    return {"command": "gpt", "provider": "chatgpt", "tools": tools,
            "options": {"base_url": f"{standin_url}/v1", "api_key": TEST_KEY, "moderation": False, **options}}


def states(bots: Bots) -> list[str]:
    return [event["ai_state"] for event in bots.standin.events("messaging:general") if event.get("ai_state")]


async def test_the_chat_shows_which_tools_ran_and_the_answer_uses_their_results(
        slashbots: Slashbots, standin: OpenAIStandIn, standin_url: str) -> None:
    running: dict[str, Bots] = {}

    async def roll_dice(sides: int) -> str:
        """Roll a die."""
        # Still running once the chat shows the call and says tools are at work: the test sees that state.
        await wait_for(lambda: "AI_STATE_EXTERNAL_SOURCES" in states(running["bots"]), what="the indicator")
        return str(sides)

    standin.chats.append(tool_stream(
        Call("current_time", '{"zone": "Europe/Paris"}'), Call("roll_dice", '{"sides": 6}'), fragment=1))
    standin.chats.append(Stream(["It is lunchtime ", "and you rolled 6."]))
    bots = running["bots"] = slashbots.start([gpt(standin_url, ["current_time", "roll_dice"])],
                                             plugins=[tools_plugin(roll_dice)])
    answer = await bots.command("/gpt what time is it in Paris, and roll a d6?")
    assert answer == ('🔧 current_time(zone="Europe/Paris")\n🔧 roll_dice(sides=6)\n\n'
                      "It is lunchtime and you rolled 6.")
    results = [m["content"] for m in standin.bodies("/chat/completions")[1]["messages"] if m["role"] == "tool"]
    assert results[1] == "6" and "(" in results[0] and "zone Europe/Paris" in results[0]
    # The tool saw the indicator (it waited for it); once the answer is written, the indicator is cleared.
    await wait_for(lambda: bots.standin.events("messaging:general")[-1]["type"] == "ai_indicator.clear")


async def test_without_the_lines_the_indicator_still_shows_tools_at_work(
        slashbots: Slashbots, standin: OpenAIStandIn, standin_url: str) -> None:
    running: dict[str, Bots] = {}

    async def lookup() -> str:
        """Look something up."""
        await wait_for(lambda: "AI_STATE_EXTERNAL_SOURCES" in states(running["bots"]), what="the indicator")
        return "found"

    standin.chats.append(tool_stream(Call("lookup", "{}")))
    standin.chats.append(Stream(["Found it."]))
    bots = running["bots"] = slashbots.start([gpt(standin_url, ["lookup"], show_tool_calls=False)],
                                             plugins=[tools_plugin(lookup)])
    assert await bots.command("/gpt look it up") == "Found it."


async def test_a_bot_without_tools_never_offers_any(
        slashbots: Slashbots, standin: OpenAIStandIn, standin_url: str) -> None:
    plain = {**gpt(standin_url, []), "command": "plain"}
    del plain["tools"]
    bots = slashbots.start([gpt(standin_url, ["current_time"]), plain])
    await bots.command("/plain hello")
    await bots.command("/gpt hello")
    plain_body, gpt_body = standin.bodies("/chat/completions")
    assert "tools" not in plain_body
    assert [tool["function"]["name"] for tool in gpt_body["tools"]] == ["current_time"]


async def test_tool_lines_count_toward_the_message_limit(
        slashbots: Slashbots, standin: OpenAIStandIn, standin_url: str) -> None:
    standin.chats.append(tool_stream(Call("current_time", "{}")))
    standin.chats.append(Stream(["word " * 998]))  # 4,990 characters: one message alone, two with the line
    bots = slashbots.start([gpt(standin_url, ["current_time"])])
    await bots.command("/gpt a long answer")
    first, second = bot_messages(bots.standin, "gpt-bot")
    assert first["text"].startswith("🔧 current_time()\n\nword word")
    assert len(first["text"]) <= 5000 and second["text"].endswith("word")


async def test_memory_leaves_the_tool_lines_out(
        slashbots: Slashbots, standin: OpenAIStandIn, standin_url: str) -> None:
    standin.chats.append(tool_stream(Call("current_time", "{}")))
    standin.chats.append(Stream(["It is noon."]))
    standin.chats.append(Stream(["Still noon."]))
    bots = slashbots.start([gpt(standin_url, ["current_time"])])
    assert (await bots.command("/gpt what time is it?")).startswith("🔧 current_time()")
    await bots.command("/gpt and now?")
    last = standin.bodies("/chat/completions")[-1]["messages"]
    assert last[1:] == [
        {"role": "user", "content": "what time is it?"},
        {"role": "assistant", "content": "It is noon."},
        {"role": "user", "content": "and now?"},
    ]


async def test_channel_history_reads_the_thread_it_was_asked_in(
        slashbots: Slashbots, standin: OpenAIStandIn, standin_url: str) -> None:
    bots = slashbots.start([gpt(standin_url, ["channel_history"])])
    standin.chats.append(Stream(["Started."]))
    await bots.command("/gpt start a thread", user="bob")
    parent = bot_messages(bots.standin, "gpt-bot")[0]["id"]
    async with StreamChatAsync(API_KEY, API_SECRET, base_url=bots.stream.url) as chat:
        await send(chat, "Lunch at noon?", user="alice", parent_id=parent)
    standin.chats.append(tool_stream(Call("channel_history", '{"limit": 10}')))
    standin.chats.append(Stream(["Bob asked; you answered."]))
    await bots.command("/gpt summarise this thread", parent_id=parent)
    [result] = [m for m in standin.bodies("/chat/completions")[-1]["messages"] if m["role"] == "tool"]
    history = json.loads(result["content"])
    # Where the thread began (the question its parent answers), the parent and its replies; not the command
    # itself, nor this reply's own message (only a tool line so far).
    assert [(m["from"], m["text"]) for m in history] == [
        ("bob", "/gpt start a thread"), ("gpt-bot", "Started."), ("alice", "Lunch at noon?")]


async def test_current_time_in_a_zone_and_a_zone_that_does_not_exist(
        slashbots: Slashbots, standin: OpenAIStandIn, standin_url: str) -> None:
    standin.chats.append(tool_stream(Call("current_time", '{"zone": "Asia/Tokyo"}'),
                                     Call("current_time", '{"zone": "Mars/Olympus"}')))
    standin.chats.append(Stream(["Tokyo is ahead."]))
    bots = slashbots.start([gpt(standin_url, ["current_time"])])
    assert (await bots.command("/gpt time in Tokyo and on Mars?")).endswith("Tokyo is ahead.")
    tokyo, mars = (m["content"] for m in standin.bodies("/chat/completions")[1]["messages"] if m["role"] == "tool")
    assert "JST" in tokyo and "+09:00" in tokyo
    assert mars == "Error: 'Mars/Olympus' is not a time zone this server knows; use an IANA name such as Europe/Paris, or UTC"


async def test_a_tool_is_handed_the_request_of_whoever_asked(
        slashbots: Slashbots, standin: OpenAIStandIn, standin_url: str) -> None:
    async def whoami(request: CommandRequest) -> str:
        """Who asks, and where."""
        return f"{request.user_id} in {request.cid}, thread {request.parent_id}"

    standin.chats.append(tool_stream(Call("whoami", "{}")))
    standin.chats.append(Stream(["You are carol."]))
    bots = slashbots.start([gpt(standin_url, ["whoami"])], plugins=[tools_plugin(whoami)])
    await bots.command("/gpt who am I?", user="carol")
    [result] = [m for m in standin.bodies("/chat/completions")[1]["messages"] if m["role"] == "tool"]
    assert result["content"] == "carol in messaging:general, thread None"
