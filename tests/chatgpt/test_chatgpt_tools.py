"""The ChatGPT provider calling tools, against the OpenAI stand-in on a real socket.

Tools are real functions; the stand-in streams their calls in OpenAI's wire format (and in
compatible servers' variants), and records what the provider sent back.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any, Literal

import pytest

from slashbots import CommandRequest, ToolUse
from slashbots.plugins.chatgpt.tool_rounds import NO_MORE_TOOLS
from tests.chatgpt.helpers import answer, command
from tests.support.openai_standin import Call, OpenAIStandIn, Stream, tool_stream


async def current_time(zone: str = "UTC") -> str:
    """The current time in a time zone."""
    return f"12:00 in {zone}"


async def roll_dice(sides: int, count: int = 1) -> str:
    """Roll dice."""
    return f"rolled {count}d{sides}: {sides * count}"


def text_of(pieces: list[Any]) -> str:
    return "".join(piece for piece in pieces if isinstance(piece, str))


def tool_messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [message for message in body["messages"] if message["role"] == "tool"]


async def test_tools_are_offered_and_the_result_goes_back_until_the_model_answers(
        standin: OpenAIStandIn, make_provider) -> None:
    standin.chats.append(tool_stream(Call("current_time", '{"zone": "Europe/Paris"}', id="call_1")))
    standin.chats.append(Stream(["It is ", "noon in Paris."]))
    pieces, exc = await answer(make_provider(), command("what time is it in Paris?", tools=[current_time]))
    assert exc is None
    assert pieces == [ToolUse("current_time", '{"zone": "Europe/Paris"}'), "It is ", "noon in Paris."]

    first, second = standin.bodies("/chat/completions")
    assert first["tools"] == [{"type": "function", "function": {
        "name": "current_time",
        "description": "The current time in a time zone.",
        "parameters": {"additionalProperties": False, "properties": {"zone": {"default": "UTC", "type": "string"}},
                       "type": "object"},
    }}]
    assert "strict" not in json.dumps(first["tools"]) and "tool_choice" not in first
    assert second["messages"][-2:] == [
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "current_time",
                                                            "arguments": '{"zone": "Europe/Paris"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "12:00 in Europe/Paris"},
    ]
    assert second["tools"] == first["tools"]


async def test_a_bot_without_tools_never_offers_any(standin: OpenAIStandIn, make_provider) -> None:
    pieces, exc = await answer(make_provider(), command("hi"))
    assert exc is None and text_of(pieces) == "Hello there!"
    [body] = standin.bodies("/chat/completions")
    assert "tools" not in body and "tool_choice" not in body


async def test_a_model_that_calls_a_tool_it_was_not_offered_gets_an_error_result(
        standin: OpenAIStandIn, make_provider) -> None:
    standin.chats.append(tool_stream(Call("delete_channel", "{}")))
    standin.chats.append(Stream(["I can't do that."]))
    _, exc = await answer(make_provider(), command("delete it", tools=[current_time]))
    assert exc is None
    [result] = tool_messages(standin.bodies("/chat/completions")[1])
    assert result["content"] == ("Error: there is no tool named 'delete_channel'. "
                                 "The tools you can call are: current_time.")


async def test_text_before_the_calls_is_shown_and_sent_back(standin: OpenAIStandIn, make_provider) -> None:
    standin.chats.append(Stream(["Let me check. "], tool_calls=[Call("current_time", "{}")], finish_reason="stop"))
    standin.chats.append(Stream(["Noon."]))
    pieces, exc = await answer(make_provider(), command("time?", tools=[current_time]))
    assert exc is None
    assert pieces == ["Let me check. ", ToolUse("current_time", "{}"), "Noon."]
    assert standin.bodies("/chat/completions")[1]["messages"][-2]["content"] == "Let me check. "


@pytest.mark.parametrize(
    "quirks",
    [
        {"fragment": 1},  # OpenAI, cut as finely as the network can
        {"whole": True, "reuse_index": True, "omit_ids": True},  # Ollama at its most awkward
        {"repeat_ids": True, "awkward": True},  # LiteLLM's repeated ids, read in 7-byte pieces
    ],
)
async def test_parallel_calls_run_at_once_and_each_gets_one_result(
        standin: OpenAIStandIn, make_provider, quirks: dict[str, Any]) -> None:
    both_running = asyncio.Barrier(2)  # passes only when both calls are in it: one after the other would time out

    async def weather(city: str) -> str:
        """The weather in a city."""
        await both_running.wait()
        return f"sunny in {city}"

    standin.chats.append(tool_stream(
        Call("weather", '{"city": "Oslo"}', id="call_a"), Call("weather", '{"city": "Rome"}', id="call_b"),
        **quirks))
    standin.chats.append(Stream(["Sunny in both."]))
    pieces, exc = await answer(make_provider(tool_timeout=10), command("weather?", tools=[weather]))
    assert exc is None
    assert [piece.arguments for piece in pieces if isinstance(piece, ToolUse)] == ['{"city": "Oslo"}',
                                                                               '{"city": "Rome"}']
    second = standin.bodies("/chat/completions")[1]
    assistant = second["messages"][-3]
    ids = [call["id"] for call in assistant["tool_calls"]]
    assert len(set(ids)) == 2
    assert [(message["tool_call_id"], message["content"]) for message in tool_messages(second)] == [
        (ids[0], "sunny in Oslo"), (ids[1], "sunny in Rome")]


async def test_bad_arguments_and_a_failing_tool_go_back_to_the_model_and_the_user_gets_an_answer(
        standin: OpenAIStandIn, make_provider) -> None:
    async def flaky(mode: Literal["on", "off"]) -> str:
        """Always breaks."""
        raise ConnectionError("db password=hunter2 refused")

    standin.chats.append(tool_stream(
        Call("roll_dice", '{"sides": "lots"}'),
        Call("roll_dice", '{"sides": 6'),  # cut short: not JSON
        Call("flaky", '{"mode": "on"}'),
    ))
    standin.chats.append(Stream(["Sorry, the tools failed."]))
    pieces, exc = await answer(make_provider(), command("go", tools=[roll_dice, flaky]))
    assert exc is None and text_of(pieces) == "Sorry, the tools failed."
    bad_value, bad_json, failed = (message["content"] for message in tool_messages(standin.bodies("/chat/completions")[1]))
    assert bad_value.startswith("Error: the arguments do not match the parameters of roll_dice: sides: Input should")
    assert bad_json.startswith("Error: the arguments are not valid JSON")
    assert failed.startswith("Error: flaky failed with an internal error.") and "hunter2" not in failed


async def test_a_tool_that_overruns_its_timeout_is_reported_to_the_model(
        standin: OpenAIStandIn, make_provider) -> None:
    async def hang() -> str:
        """Never answers."""
        await asyncio.Event().wait()
        return ""

    standin.chats.append(tool_stream(Call("hang", "{}")))
    standin.chats.append(Stream(["It didn't answer."]))
    _, exc = await answer(make_provider(tool_timeout=0.1), command("go", tools=[hang]))
    assert exc is None
    [result] = tool_messages(standin.bodies("/chat/completions")[1])
    assert result["content"].startswith("Error: hang did not finish within 0.1 seconds and was stopped.")


async def test_after_max_tool_rounds_the_model_must_answer_without_tools_and_the_user_is_told(
        standin: OpenAIStandIn, make_provider) -> None:
    for _ in range(2):
        standin.chats.append(tool_stream(Call("roll_dice", '{"sides": 6}')))
    standin.chats.append(Stream(["Six and six."]))
    pieces, exc = await answer(make_provider(max_tool_rounds=2), command("roll forever", tools=[roll_dice]))
    assert exc is None
    assert text_of(pieces) == ("Six and six.\n\n_(The bot stopped using tools after 2 rounds of calls, "
                               "so this answer rests on what it had found by then.)_")
    first, second, last = standin.bodies("/chat/completions")
    assert "tools" in first and "tools" in second
    assert "tools" not in last
    assert last["messages"][-1] == {"role": "system", "content": NO_MORE_TOOLS}
    assert len(tool_messages(last)) == 2  # every call of both rounds has its result


async def test_show_tool_calls_false_still_reports_the_work_but_hides_the_line(
        standin: OpenAIStandIn, make_provider) -> None:
    standin.chats.append(tool_stream(Call("current_time", "{}")))
    standin.chats.append(Stream(["Noon."]))
    pieces, _ = await answer(make_provider(show_tool_calls=False), command("time?", tools=[current_time]))
    assert pieces == [ToolUse("current_time", "{}", show=False), "Noon."]


async def test_a_tool_receives_the_request(standin: OpenAIStandIn, make_provider) -> None:
    async def whoami(request: CommandRequest) -> str:
        """Who is asking."""
        return request.user_id

    standin.chats.append(tool_stream(Call("whoami", "")))
    standin.chats.append(Stream(["You are alice."]))
    await answer(make_provider(), command("who am I?", tools=[whoami]))
    [result] = tool_messages(standin.bodies("/chat/completions")[1])
    assert result["content"] == "alice"


async def test_a_stream_that_breaks_during_the_calls_is_retried_before_anything_runs(
        standin: OpenAIStandIn, make_provider) -> None:
    ran = []

    async def once() -> str:
        """Counts its calls."""
        ran.append(1)
        return "done"

    standin.chats.append(tool_stream(Call("once", "{}"), finish_reason=None, usage=False, done=False))  # cut off
    standin.chats.append(tool_stream(Call("once", "{}")))
    standin.chats.append(Stream(["Done."]))
    _, exc = await answer(make_provider(max_retries=1), command("go", tools=[once]))
    assert exc is None and ran == [1]


async def test_token_usage_adds_up_over_the_rounds(
        standin: OpenAIStandIn, make_provider, caplog: pytest.LogCaptureFixture) -> None:
    standin.chats.append(tool_stream(Call("current_time", "{}")))  # 14 prompt tokens, 1 completion token
    standin.chats.append(Stream(["It ", "is ", "noon."]))  # 14 and 3
    with caplog.at_level(logging.DEBUG, logger="slashbots.chatgpt"):
        await answer(make_provider(), command("time?", tools=[current_time]))
    assert ("/gpt: 2 completion(s), 1 round(s) of tool calls, usage "
            "{'prompt_tokens': 28, 'completion_tokens': 4, 'total_tokens': 32}") in caplog.text


async def test_stopping_the_reply_cancels_the_running_tool(standin: OpenAIStandIn, make_provider) -> None:
    started, cancelled = asyncio.Event(), asyncio.Event()

    async def slow() -> str:
        """Takes its time."""
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return ""

    standin.chats.append(tool_stream(Call("slow", "{}")))
    task = asyncio.ensure_future(answer(make_provider(), command("go", tools=[slow])))
    await started.wait()
    task.cancel()  # as the reply job is cancelled by a stop or a shutdown
    with pytest.raises(asyncio.CancelledError):
        await task
    assert cancelled.is_set()
