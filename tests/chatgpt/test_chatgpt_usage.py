"""The ChatGPT provider reports the tokens each completion used: the server's counts, or an estimate."""

from __future__ import annotations

import contextlib
import json

from slashbots.usage import estimate_tokens
from tests.chatgpt.helpers import answer, command
from tests.support.openai_standin import Call, ErrorReply, OpenAIStandIn, Stream, error_body, tool_stream


def current_time(zone: str = "UTC") -> str:
    """The time in ``zone``."""
    return "21:47"


async def test_the_servers_counts_are_reported_over_every_round_of_tool_calls(
        standin: OpenAIStandIn, make_provider) -> None:
    standin.chats.extend([tool_stream(Call("current_time", '{"zone": "Europe/Paris"}')), Stream(["It is ", "21:47."])])
    request = command("what time is it?", tools=[current_time])
    _, exc = await answer(make_provider(moderation=False), request)
    assert exc is None
    assert (request._usage.prompt, request._usage.completion, request._usage.estimated) == (28, 3, 0)
    assert standin.tokens == {"prompt": 28, "completion": 3}


async def test_without_counts_from_the_server_the_tokens_are_estimated_from_the_characters(
        standin: OpenAIStandIn, make_provider) -> None:
    standin.chats.append(Stream(["Hello", " there!"], usage=False))
    request = command("hi")
    await answer(make_provider(moderation=False), request)
    sent = standin.bodies("/chat/completions")[0]
    prompt = estimate_tokens(json.dumps({"messages": sent["messages"], "tools": []}, ensure_ascii=False))
    assert (request._usage.prompt, request._usage.completion) == (prompt, 3)  # "Hello there!": 12 characters
    assert (request._usage.estimated_prompt, request._usage.estimated_completion) == (prompt, 3)


async def test_a_server_that_refuses_stream_options_is_asked_without_them_from_then_on(
        standin: OpenAIStandIn, make_provider, caplog) -> None:
    refusal = error_body("Unrecognized request argument supplied: stream_options", "invalid_request_error")
    standin.chats.extend([ErrorReply(400, refusal), Stream(["Hello"]), Stream(["Again"])])
    provider = make_provider(moderation=False)
    first, second = command("hi"), command("again")
    assert (await answer(provider, first))[1] is None and (await answer(provider, second))[1] is None
    assert ["stream_options" in body for body in standin.bodies("/chat/completions")] == [True, False, False]
    assert first._usage.estimated_completion == 2 and second._usage.estimated_completion == 2
    assert caplog.text.count("refuses stream_options") == 1


async def test_an_answer_stopped_part_way_counts_what_was_written(standin: OpenAIStandIn, make_provider) -> None:
    standin.chats.append(Stream(["Part of it"], stall_after=0.5))
    request = command("tell me everything")
    async with contextlib.aclosing(make_provider(moderation=False).respond(request)) as pieces:
        assert await anext(pieces) == "Part of it"
    # Stopped (the stop button, a shutdown): no usage chunk will come, but the text was paid for.
    assert request._usage.estimated_completion == 3 and request._usage.estimated_prompt > 0


async def test_a_failure_before_any_text_counts_nothing(standin: OpenAIStandIn, make_provider) -> None:
    standin.chats.append(ErrorReply(401, error_body("Incorrect API key provided", "invalid_request_error",
                                                    "invalid_api_key")))
    request = command("hi")
    _, exc = await answer(make_provider(moderation=False), request)
    assert exc is not None and request._usage.total == 0
