"""The shipped bots.yaml, end to end: Stream stand-in, slashbots, and an OpenAI stand-in, all on loopback."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from slashbots.app import create_app
from slashbots.config import load_config
from slashbots.sandbox.loopback import LoopbackServer, bind_loopback
from tests.conftest import API_KEY, API_SECRET, Served, final_reply, send, wait_until_ready
from tests.support.openai_standin import (
    Call,
    ErrorReply,
    Moderation,
    OpenAIStandIn,
    Stream,
    rate_limited,
    tool_stream,
)

SHIPPED = Path(__file__).resolve().parents[1] / "bots.yaml"
OPENAI_KEY = "sk-test-0123456789abcdef"


@pytest.fixture
def openai() -> Iterator[tuple[OpenAIStandIn, str]]:
    standin = OpenAIStandIn()
    with LoopbackServer(standin.app) as server:
        yield standin, server.url


@pytest.fixture
def shipped(stream, openai, monkeypatch) -> Iterator[Served]:
    monkeypatch.setenv("STREAM_API_KEY", API_KEY)
    monkeypatch.setenv("STREAM_API_SECRET", API_SECRET)
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", openai[1] + "/v1")
    config = load_config(SHIPPED)
    sock = bind_loopback()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    with LoopbackServer(create_app(config, stream_url=stream.url, public_url=url), sock=sock):
        wait_until_ready(url)
        yield Served(url, None, stream)


async def test_gpt_moderates_first_then_streams_the_answer(shipped, openai, chat) -> None:
    standin, _ = openai
    standin.chats.append(Stream(["A vector clock ", "orders events ", "across processes — ✓ 時計."], awkward=True))
    await send(chat, "/gpt what is a vector clock?")
    [reply] = await final_reply(shipped.standin, "chatgpt-bot")
    assert reply["text"] == "A vector clock orders events across processes — ✓ 時計."
    assert reply["user"]["name"] == "ChatGPT bot"
    assert standin.paths == ["/v1/moderations", "/v1/chat/completions"]
    assert standin.bodies("/moderations")[0]["input"] == "what is a vector clock?"
    chat_body = standin.bodies("/chat/completions")[0]
    assert chat_body["stream"] is True and chat_body["stream_options"] == {"include_usage": True}
    assert chat_body["messages"][-1] == {"role": "user", "content": "what is a vector clock?"}
    assert [tool["function"]["name"] for tool in chat_body["tools"]] == ["current_time", "channel_history"]
    assert standin.requests[1].headers["authorization"] == f"Bearer {OPENAI_KEY}"


async def test_a_flagged_question_never_reaches_the_model(shipped, openai, chat) -> None:
    standin, _ = openai
    standin.moderations.append(Moderation(flagged=True, categories=("violence", "harassment/threatening")))
    await send(chat, "/gpt something awful")
    [reply] = await final_reply(shipped.standin, "chatgpt-bot")
    assert "refused" in reply["text"]
    assert "violence" in reply["text"]
    assert "0." not in reply["text"]  # categories, never scores
    assert standin.paths == ["/v1/moderations"]


async def test_a_follow_up_carries_the_earlier_exchange(shipped, openai, chat) -> None:
    standin, _ = openai
    standin.chats.append(Stream(["Paris."]))
    await send(chat, "/gpt capital of France?")
    await final_reply(shipped.standin, "chatgpt-bot")
    await send(chat, "just chatting, not a command", user="bob")
    standin.chats.append(Stream(["About 2.1 million."]))
    await send(chat, "/gpt and its population?")
    replies = await final_reply(shipped.standin, "chatgpt-bot", count=2)
    assert replies[-1]["text"] == "About 2.1 million."
    messages = standin.bodies("/chat/completions")[1]["messages"]
    assert messages[0]["role"] == "system"
    assert messages[1:] == [
        {"role": "user", "content": "capital of France?"},
        {"role": "assistant", "content": "Paris."},
        {"role": "user", "content": "and its population?"},
    ]


async def test_rate_limits_and_server_errors_are_retried(shipped, openai, chat) -> None:
    standin, _ = openai
    standin.chats.extend([
        ErrorReply(429, rate_limited(), headers={"retry-after-ms": "20"}),
        ErrorReply(500, {"error": {"message": "boom", "type": "server_error", "param": None, "code": None}}),
        Stream(["Third time lucky."]),
    ])
    await send(chat, "/gpt hello?")
    [reply] = await final_reply(shipped.standin, "chatgpt-bot", timeout=20)
    assert reply["text"] == "Third time lucky."
    assert standin.paths.count("/v1/chat/completions") == 3


async def test_an_error_mid_stream_keeps_the_text_and_says_what_happened(shipped, openai, chat) -> None:
    standin, _ = openai
    standin.chats.append(Stream(["Half of the ", "answer"], error={"message": "overloaded", "type": "server_error"}))
    await send(chat, "/gpt tell me everything")
    [reply] = await final_reply(shipped.standin, "chatgpt-bot")
    text, _, note = reply["text"].partition("\n\n⚠️ Answer interrupted: ")
    assert text == "Half of the answer"
    assert note, reply["text"]


async def test_a_dropped_stream_is_told_to_the_user(shipped, openai, chat) -> None:
    standin, _ = openai
    standin.chats.append(Stream(["Partial ", "text"], drop=True, finish_reason=None, done=False, usage=False))
    await send(chat, "/gpt go on")
    [reply] = await final_reply(shipped.standin, "chatgpt-bot", timeout=20)
    assert reply["text"].startswith("Partial text\n\n⚠️ Answer interrupted: ")


async def test_gpt_may_tell_the_time(shipped, openai, chat) -> None:
    standin, _ = openai
    standin.chats.append(tool_stream(Call("current_time", '{"zone": "UTC"}')))
    standin.chats.append(Stream(["It is late."]))
    await send(chat, "/gpt what time is it?")
    [reply] = await final_reply(shipped.standin, "chatgpt-bot")
    assert reply["text"] == '🔧 current_time(zone="UTC")\n\nIt is late.'
    [result] = [m for m in standin.bodies("/chat/completions")[1]["messages"] if m["role"] == "tool"]
    assert " UTC (" in result["content"]


async def test_echo_works_next_to_gpt(shipped, chat) -> None:
    await send(chat, "/echo hello")
    [reply] = await final_reply(shipped.standin, "echo-bot")
    assert reply["text"] == "hello"
