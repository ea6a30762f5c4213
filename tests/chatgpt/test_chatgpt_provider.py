"""The ChatGPT provider end to end against the OpenAI stand-in on a real loopback socket."""

from __future__ import annotations

import logging
import time

import pytest

from slashbots import ChatMessage, ProviderError, Refusal
from slashbots.plugins.chatgpt.failures import APIFailure
from tests.chatgpt.helpers import BOT, TEST_KEY, answer, command
from tests.support.openai_standin import (
    ErrorReply,
    Moderation,
    OpenAIStandIn,
    Raw,
    Stream,
    context_length_exceeded,
    error_body,
    insufficient_quota,
    invalid_api_key,
    model_not_found,
    rate_limited,
    server_error,
)

FAST = {"retry-after-ms": "5"}  # keeps retry tests quick; the real delays are tested in test_chatgpt_wording


def failure(exc: BaseException | None) -> APIFailure:
    assert isinstance(exc, APIFailure), repr(exc)
    return exc


# -- the happy path ---------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_moderation_then_streamed_answer(standin: OpenAIStandIn, make_provider) -> None:
    standin.chats.append(Stream(["Vector clocks ", "order events", "."]))
    pieces, exc = await answer(make_provider(), command("what is a vector clock?"))
    assert exc is None
    assert pieces == ["Vector clocks ", "order events", "."]  # piece by piece, as they arrived

    assert standin.paths == ["/v1/moderations", "/v1/chat/completions"]
    moderation, chat = standin.requests
    assert moderation.body == {"model": "omni-moderation-latest", "input": "what is a vector clock?"}
    assert moderation.headers["authorization"] == f"Bearer {TEST_KEY}"
    assert chat.headers["authorization"] == f"Bearer {TEST_KEY}"
    assert chat.headers["accept"] == "text/event-stream"
    assert chat.body["model"] == "gpt-4o-mini"
    assert chat.body["stream"] is True
    assert chat.body["stream_options"] == {"include_usage": True}
    assert chat.body["messages"][0]["role"] == "system"
    assert chat.body["messages"][-1] == {"role": "user", "content": "what is a vector clock?"}
    assert "temperature" not in chat.body and "max_completion_tokens" not in chat.body
    assert moderation.client_port == chat.client_port  # one pooled connection, reused


@pytest.mark.asyncio
async def test_options_reach_the_request(standin: OpenAIStandIn, make_provider) -> None:
    provider = make_provider(
        model="gpt-4o", system_prompt="Be terse.", temperature=0.2, max_completion_tokens=300,
        moderation_model="omni-moderation-2024-09-26",
    )
    _, exc = await answer(provider, command("hi"))
    assert exc is None
    moderation, chat = standin.requests
    assert moderation.body["model"] == "omni-moderation-2024-09-26"
    assert chat.body["model"] == "gpt-4o"
    assert chat.body["temperature"] == 0.2
    assert chat.body["max_completion_tokens"] == 300
    assert chat.body["messages"] == [
        {"role": "system", "content": "Be terse."},
        {"role": "user", "content": "hi"},
    ]


@pytest.mark.asyncio
async def test_max_tokens_for_servers_that_only_know_it(standin: OpenAIStandIn, make_provider) -> None:
    await answer(make_provider(max_completion_tokens=50, max_tokens_param="max_tokens", system_prompt=""), command("hi"))
    chat = standin.requests[-1].body
    assert chat["max_tokens"] == 50 and "max_completion_tokens" not in chat
    assert chat["messages"] == [{"role": "user", "content": "hi"}]  # empty system_prompt: none sent


@pytest.mark.asyncio
async def test_empty_question_gets_a_hint_without_any_call(standin: OpenAIStandIn, make_provider) -> None:
    pieces, exc = await answer(make_provider(), command("   "))
    assert isinstance(exc, Refusal) and "/gpt what is" in exc.text
    assert pieces == [] and standin.requests == []


# -- moderation -------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_flagged_request_is_refused_and_never_reaches_chat(standin: OpenAIStandIn, make_provider) -> None:
    standin.moderations.append(
        Moderation(flagged=True, categories=("harassment", "harassment/threatening", "violence", "violence/graphic"))
    )
    pieces, exc = await answer(make_provider(), command("I want to kill them."))
    assert isinstance(exc, Refusal) and not isinstance(exc, ProviderError)
    assert exc.text.startswith("Your request was refused")
    assert "threatening harassment" in exc.text and "graphic violence" in exc.text
    assert "0.9" not in exc.text and "harassment/threatening" not in exc.text  # no scores, no keys
    assert pieces == []
    assert standin.paths == ["/v1/moderations"]


@pytest.mark.asyncio
async def test_moderation_error_fails_closed(standin: OpenAIStandIn, make_provider) -> None:
    standin.moderations.extend(ErrorReply(500, server_error(), FAST) for _ in range(3))
    pieces, exc = await answer(make_provider(), command("hello"))
    error = failure(exc)
    assert error.reason == "moderation_server_error"
    assert "moderation" in error.text and "wasn't sent" in error.text and "HTTP 500" in error.text
    assert pieces == []
    assert standin.paths == ["/v1/moderations"] * 3  # retried, then gave up; chat never called


@pytest.mark.asyncio
async def test_moderation_error_fails_open_when_asked(
    standin: OpenAIStandIn, make_provider, caplog: pytest.LogCaptureFixture
) -> None:
    standin.moderations.append(ErrorReply(500, server_error()))
    with caplog.at_level(logging.WARNING, logger="slashbots.chatgpt"):
        pieces, exc = await answer(make_provider(moderation_fail_open=True, max_retries=0), command("hello"))
    assert exc is None and "".join(pieces) == "Hello there!"
    assert standin.paths == ["/v1/moderations", "/v1/chat/completions"]
    assert "answering unmoderated" in caplog.text


@pytest.mark.asyncio
async def test_missing_moderation_endpoint_fails_closed_with_a_hint_in_the_log(
    standin: OpenAIStandIn, standin_url: str, make_provider, caplog: pytest.LogCaptureFixture
) -> None:
    # Like Ollama, vLLM or llama.cpp: the route does not exist (the stand-in's own 404).
    with caplog.at_level(logging.WARNING, logger="slashbots.chatgpt"):
        _, exc = await answer(make_provider(moderation_base_url=f"{standin_url}/nomod"), command("hello"))
    error = failure(exc)
    assert error.reason == "moderation_not_found"
    assert "moderation settings" in error.text
    assert "moderation: false" in caplog.text
    assert standin.requests == []  # (the 404 came from an unrouted path) and chat was never called


@pytest.mark.asyncio
async def test_moderation_can_be_turned_off(standin: OpenAIStandIn, make_provider) -> None:
    _, exc = await answer(make_provider(moderation=False), command("hello"))
    assert exc is None
    assert standin.paths == ["/v1/chat/completions"]


@pytest.mark.asyncio
async def test_moderation_elsewhere(standin: OpenAIStandIn, standin_url: str, make_provider) -> None:
    provider = make_provider(
        base_url=standin_url, azure_deployment="dep", api_version="2024-10-21",
        moderation_base_url=f"{standin_url}/v1", moderation_api_key="sk-moderation-only-key",
    )
    _, exc = await answer(provider, command("hello"))
    assert exc is None
    moderation, chat = standin.requests
    assert moderation.path == "/v1/moderations"
    assert moderation.headers["authorization"] == "Bearer sk-moderation-only-key"
    assert chat.headers["api-key"] == TEST_KEY


@pytest.mark.asyncio
async def test_moderation_unreachable(standin: OpenAIStandIn, make_provider) -> None:
    # Nothing listens on port 9 of the loopback address: the connection is refused at once.
    provider = make_provider(moderation_base_url="http://127.0.0.1:9/v1", max_retries=0)
    _, exc = await answer(provider, command("hello"))
    error = failure(exc)
    assert error.reason == "moderation_connection" and "couldn't be reached" in error.text
    assert standin.requests == []


# -- retries ----------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_429_with_retry_after_ms_then_success(standin: OpenAIStandIn, make_provider) -> None:
    standin.chats.extend([ErrorReply(429, rate_limited(), {"retry-after-ms": "120"}), Stream(["ok"])])
    started = time.monotonic()
    pieces, exc = await answer(make_provider(), command("hi"))
    assert exc is None and pieces == ["ok"]
    assert time.monotonic() - started >= 0.12  # the server's delay was honoured
    assert standin.paths == ["/v1/moderations", "/v1/chat/completions", "/v1/chat/completions"]


@pytest.mark.asyncio
async def test_429_with_retry_after_seconds_then_success(standin: OpenAIStandIn, make_provider) -> None:
    standin.chats.extend([ErrorReply(429, rate_limited(), {"retry-after": "0.05"}), Stream(["ok"])])
    pieces, exc = await answer(make_provider(), command("hi"))
    assert exc is None and pieces == ["ok"]


@pytest.mark.asyncio
async def test_500_then_success(standin: OpenAIStandIn, make_provider) -> None:
    standin.chats.extend([ErrorReply(500, server_error(), FAST), ErrorReply(503, server_error(), FAST), Stream(["ok"])])
    pieces, exc = await answer(make_provider(), command("hi"))
    assert exc is None and pieces == ["ok"]
    assert standin.paths.count("/v1/chat/completions") == 3


@pytest.mark.asyncio
async def test_server_errors_after_retries(standin: OpenAIStandIn, make_provider) -> None:
    standin.chats.extend(ErrorReply(502, server_error(), FAST) for _ in range(3))
    _, exc = await answer(make_provider(), command("hi"))
    error = failure(exc)
    assert error.reason == "server_error" and error.status == 502
    assert "having trouble" in error.text and "HTTP 502" in error.text
    assert standin.paths.count("/v1/chat/completions") == 3  # max_retries 2: three attempts


@pytest.mark.asyncio
async def test_rate_limited_after_retries(standin: OpenAIStandIn, make_provider) -> None:
    standin.chats.extend(ErrorReply(429, rate_limited(), FAST) for _ in range(2))
    _, exc = await answer(make_provider(max_retries=1), command("hi"))
    error = failure(exc)
    assert error.reason == "rate_limited" and "try again in a minute" in error.text
    assert "org-standin" not in error.text


@pytest.mark.asyncio
async def test_long_retry_after_is_not_waited_out(standin: OpenAIStandIn, make_provider) -> None:
    standin.chats.append(ErrorReply(429, rate_limited(), {"retry-after": "120"}))
    started = time.monotonic()
    _, exc = await answer(make_provider(), command("hi"))
    error = failure(exc)
    assert time.monotonic() - started < 5
    assert error.reason == "rate_limited" and "about 2 minutes" in error.text
    assert standin.paths.count("/v1/chat/completions") == 1


@pytest.mark.asyncio
async def test_insufficient_quota_is_never_retried(standin: OpenAIStandIn, make_provider) -> None:
    standin.chats.append(ErrorReply(429, insufficient_quota(), FAST))
    _, exc = await answer(make_provider(), command("hi"))
    error = failure(exc)
    assert error.reason == "quota" and "run out of quota" in error.text and "billing" in error.text
    assert standin.paths.count("/v1/chat/completions") == 1


@pytest.mark.asyncio
async def test_bad_api_key(standin: OpenAIStandIn, make_provider) -> None:
    standin.chats.append(ErrorReply(401, invalid_api_key(TEST_KEY), FAST))
    _, exc = await answer(make_provider(), command("hi"))
    error = failure(exc)
    assert error.reason == "auth"
    assert "rejected this bot's API key" in error.text and "OPENAI_API_KEY" in error.text
    assert TEST_KEY not in error.text and TEST_KEY[:8] not in error.text and "***" not in error.text
    assert standin.paths.count("/v1/chat/completions") == 1


@pytest.mark.asyncio
async def test_bad_api_key_is_not_logged_either(
    standin: OpenAIStandIn, make_provider, caplog: pytest.LogCaptureFixture
) -> None:
    standin.chats.append(ErrorReply(401, error_body(f"Bad key {TEST_KEY}", "invalid_request_error", "invalid_api_key")))
    with caplog.at_level(logging.DEBUG, logger="slashbots.chatgpt"):
        await answer(make_provider(), command("hi"))
    assert TEST_KEY not in caplog.text and "standinKEY" not in caplog.text


@pytest.mark.asyncio
async def test_context_too_long(standin: OpenAIStandIn, make_provider) -> None:
    standin.chats.append(ErrorReply(400, context_length_exceeded()))
    _, exc = await answer(make_provider(), command("a very long question"))
    error = failure(exc)
    assert error.reason == "context_length" and "too long" in error.text and "shorter question" in error.text
    assert standin.paths.count("/v1/chat/completions") == 1


@pytest.mark.asyncio
async def test_model_not_found(standin: OpenAIStandIn, make_provider) -> None:
    standin.chats.append(ErrorReply(404, model_not_found("gpt-9")))
    _, exc = await answer(make_provider(model="gpt-9"), command("hi"))
    error = failure(exc)
    assert error.reason == "model_not_found" and "'gpt-9'" in error.text and "`model`" in error.text


@pytest.mark.asyncio
async def test_other_bad_request_shows_the_servers_reason(standin: OpenAIStandIn, make_provider) -> None:
    standin.chats.append(ErrorReply(400, error_body("Unsupported parameter: 'max_completion_tokens'.",
                                                    "invalid_request_error", "unsupported_parameter")))
    _, exc = await answer(make_provider(max_completion_tokens=10), command("hi"))
    error = failure(exc)
    assert error.reason == "bad_request" and "Unsupported parameter" in error.text and "HTTP 400" in error.text


@pytest.mark.asyncio
async def test_html_error_page(standin: OpenAIStandIn, make_provider) -> None:
    standin.chats.append(Raw(502, b"<html><body>Bad Gateway</body></html>", "text/html"))
    _, exc = await answer(make_provider(max_retries=0), command("hi"))
    assert failure(exc).reason == "server_error"


# -- streams that go wrong --------------------------------------------------------------------


@pytest.mark.asyncio
async def test_error_event_mid_stream(standin: OpenAIStandIn, make_provider) -> None:
    standin.chats.append(Stream(["Partial ", "answer"], error=server_error()["error"]))
    pieces, exc = await answer(make_provider(), command("hi"))
    assert pieces == ["Partial ", "answer"]  # what was shown stays shown
    error = failure(exc)
    assert error.reason == "stream_error" and "while writing the answer" in error.text
    assert standin.paths.count("/v1/chat/completions") == 1  # not retried


@pytest.mark.asyncio
async def test_vllm_error_event_with_integer_code(standin: OpenAIStandIn, make_provider) -> None:
    standin.chats.append(Stream([], error={"message": "This model's maximum context length is 2048 tokens.",
                                           "type": "BadRequestError", "param": None, "code": 400}))
    _, exc = await answer(make_provider(), command("hi"))
    assert failure(exc).reason == "context_length"


@pytest.mark.asyncio
async def test_llama_cpp_context_error(standin: OpenAIStandIn, make_provider) -> None:
    body = {"error": {"code": 400, "message": "request (4390 tokens) exceeds the available context size "
                      "(4096 tokens), try increasing it", "type": "exceed_context_size_error",
                      "n_prompt_tokens": 4390, "n_ctx": 4096}}
    standin.chats.append(ErrorReply(400, body))
    _, exc = await answer(make_provider(), command("hi"))
    assert failure(exc).reason == "context_length"


@pytest.mark.asyncio
async def test_connection_dropped_mid_answer(standin: OpenAIStandIn, make_provider) -> None:
    standin.chats.append(Stream(["The first half"], drop=True))
    pieces, exc = await answer(make_provider(), command("hi"))
    assert pieces == ["The first half"]
    error = failure(exc)
    assert error.reason == "connection" and "broke off" in error.text
    assert standin.paths.count("/v1/chat/completions") == 1  # text was shown: no retry


@pytest.mark.asyncio
async def test_connection_dropped_before_any_text_is_retried(standin: OpenAIStandIn, make_provider) -> None:
    standin.chats.extend([Stream([], drop=True), Stream(["second try"])])
    pieces, exc = await answer(make_provider(max_retries=1), command("hi"))
    assert exc is None and pieces == ["second try"]
    assert standin.paths.count("/v1/chat/completions") == 2


@pytest.mark.asyncio
async def test_stream_ending_without_done_or_finish_reason(standin: OpenAIStandIn, make_provider) -> None:
    standin.chats.append(Stream(["Cut"], finish_reason=None, usage=False, done=False))
    pieces, exc = await answer(make_provider(), command("hi"))
    assert pieces == ["Cut"]
    error = failure(exc)
    assert error.reason == "cut_off" and "stopped before it was finished" in error.text


@pytest.mark.asyncio
async def test_finish_reason_without_done_is_a_complete_answer(standin: OpenAIStandIn, make_provider) -> None:
    standin.chats.append(Stream(["All", " here"], usage=False, done=False))
    pieces, exc = await answer(make_provider(), command("hi"))
    assert exc is None and pieces == ["All", " here"]


@pytest.mark.asyncio
async def test_empty_stream_is_retried_then_reported(standin: OpenAIStandIn, make_provider) -> None:
    standin.chats.extend([Stream([], finish_reason=None, usage=False, done=False)] * 2)
    pieces, exc = await answer(make_provider(max_retries=1), command("hi"))
    assert pieces == []
    assert failure(exc).reason == "cut_off"
    assert standin.paths.count("/v1/chat/completions") == 2


@pytest.mark.asyncio
async def test_length_limit_adds_a_note(standin: OpenAIStandIn, make_provider) -> None:
    standin.chats.append(Stream(["A long"], finish_reason="length"))
    pieces, exc = await answer(make_provider(), command("hi"))
    assert exc is None
    assert pieces[0] == "A long" and "cut short" in pieces[-1]


@pytest.mark.asyncio
async def test_content_filter_finish(standin: OpenAIStandIn, make_provider) -> None:
    standin.chats.append(Stream(["Once upon"], finish_reason="content_filter"))
    pieces, exc = await answer(make_provider(), command("hi"))
    assert pieces == ["Once upon"]
    assert isinstance(exc, Refusal) and "content filter" in exc.text


@pytest.mark.asyncio
async def test_read_timeout_before_the_answer(standin: OpenAIStandIn, make_provider) -> None:
    standin.chats.append(Stream(["late"], stall=1.0))
    _, exc = await answer(make_provider(timeout=0.3, max_retries=0, moderation=False), command("hi"))
    error = failure(exc)
    assert error.reason == "timeout" and "didn't respond in time" in error.text


@pytest.mark.asyncio
async def test_read_timeout_mid_answer(standin: OpenAIStandIn, make_provider) -> None:
    standin.chats.append(Stream(["early"], stall_after=1.0))
    pieces, exc = await answer(make_provider(timeout={"read": 0.3}, moderation=False), command("hi"))
    assert pieces == ["early"]
    error = failure(exc)
    assert error.reason == "timeout" and "stopped sending the answer partway" in error.text


@pytest.mark.asyncio
@pytest.mark.parametrize("newline", ["\r\n", "\r", "\n"])
async def test_awkwardly_framed_stream(standin: OpenAIStandIn, make_provider, newline: str) -> None:
    # Tiny writes cut inside every CRLF and every multibyte character, with comments.
    text = ["Grüße ", "aus ", "東京 ", "🙂🎉", " — fin\u2028al"]
    standin.chats.append(Stream(text, newline=newline, awkward=True, comments=True))
    pieces, exc = await answer(make_provider(moderation=False), command("hi"))
    assert exc is None and pieces == text


@pytest.mark.asyncio
async def test_server_that_ignores_stream_true(standin: OpenAIStandIn, make_provider) -> None:
    body = (b'{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,'
            b'"message":{"role":"assistant","content":"All at once"},"finish_reason":"stop"}]}')
    standin.chats.append(Raw(200, body))
    pieces, exc = await answer(make_provider(moderation=False), command("hi"))
    assert exc is None and pieces == ["All at once"]


# -- keys, local servers, Azure ---------------------------------------------------------------


@pytest.mark.asyncio
async def test_missing_key_for_openai_is_explained_without_any_call(make_provider) -> None:
    pieces, exc = await answer(make_provider(api_key="", base_url="https://api.openai.com/v1"), command("hi"))
    assert isinstance(exc, Refusal)
    assert "needs an OpenAI API key" in exc.text and "OPENAI_API_KEY" in exc.text and "api_key" in exc.text


@pytest.mark.asyncio
async def test_missing_moderation_key_is_explained(standin: OpenAIStandIn, make_provider) -> None:
    provider = make_provider(api_key="", moderation_base_url="https://api.openai.com/v1")
    _, exc = await answer(provider, command("hi"))
    assert isinstance(exc, Refusal) and "content moderation" in exc.text
    assert standin.requests == []


@pytest.mark.asyncio
async def test_local_server_without_key(standin: OpenAIStandIn, make_provider) -> None:
    pieces, exc = await answer(make_provider(api_key="", moderation=False, model="llama3.2"), command("hi"))
    assert exc is None and "".join(pieces) == "Hello there!"
    (chat,) = standin.requests
    assert "authorization" not in chat.headers and "api-key" not in chat.headers
    assert chat.body["model"] == "llama3.2"


@pytest.mark.asyncio
async def test_azure(standin: OpenAIStandIn, standin_url: str, make_provider) -> None:
    standin.chats.append(Stream(["Hi from Azure"], azure_filters=True))
    provider = make_provider(base_url=standin_url, azure_deployment="gpt4o-prod", api_version="2024-10-21")
    pieces, exc = await answer(provider, command("hi"))
    assert exc is None and pieces == ["Hi from Azure"]
    (chat,) = standin.requests  # no moderation: Azure filters content itself
    assert chat.path == "/openai/deployments/gpt4o-prod/chat/completions"
    assert chat.query == {"api-version": "2024-10-21"}
    assert chat.headers["api-key"] == TEST_KEY
    assert "authorization" not in chat.headers


@pytest.mark.asyncio
async def test_azure_prompt_filter(standin: OpenAIStandIn, standin_url: str, make_provider) -> None:
    body = {"error": {"message": "The response was filtered due to the prompt triggering Azure OpenAI's content "
                      "management policy.", "type": None, "param": "prompt", "code": "content_filter", "status": 400,
                      "innererror": {"code": "ResponsibleAIPolicyViolation", "content_filter_result": {
                          "hate": {"filtered": False, "severity": "safe"},
                          "jailbreak": {"filtered": False, "detected": False},
                          "violence": {"filtered": True, "severity": "medium"}}}}}
    standin.chats.append(ErrorReply(400, body))
    provider = make_provider(base_url=standin_url, azure_deployment="d", api_version="2024-10-21")
    _, exc = await answer(provider, command("hi"))
    assert isinstance(exc, Refusal) and not isinstance(exc, ProviderError)
    assert "Azure OpenAI's content filter blocked this request (violence)" in exc.text


@pytest.mark.asyncio
async def test_azure_missing_key(make_provider, standin_url: str) -> None:
    provider = make_provider(base_url=standin_url, azure_deployment="d", api_version="2024-10-21", api_key="")
    _, exc = await answer(provider, command("hi"))
    assert isinstance(exc, Refusal) and "AZURE_OPENAI_API_KEY" in exc.text


# -- memory -----------------------------------------------------------------------------------


def _history() -> list[ChatMessage]:
    bot_id = BOT.identity.id
    return [
        ChatMessage("m1", "alice", "/gpt what is a vector clock?", "gpt", "what is a vector clock?"),
        ChatMessage("m2", "bob", "nice"),
        ChatMessage("m3", bot_id, "A vector clock orders events."),
        ChatMessage("m4", "bob", "/gpt and a Lamport clock?", "gpt", "and a Lamport clock?"),
        ChatMessage("m5", bot_id, "A Lamport clock is a counter."),
    ]


@pytest.mark.asyncio
async def test_memory_goes_between_system_prompt_and_question(standin: OpenAIStandIn, make_provider) -> None:
    request = command("which is simpler?", history=_history())
    _, exc = await answer(make_provider(system_prompt="S"), request)
    assert exc is None
    assert standin.bodies("/chat/completions")[0]["messages"] == [
        {"role": "system", "content": "S"},
        {"role": "user", "content": "what is a vector clock?"},
        {"role": "assistant", "content": "A vector clock orders events."},
        {"role": "user", "content": "and a Lamport clock?"},
        {"role": "assistant", "content": "A Lamport clock is a counter."},
        {"role": "user", "content": "which is simpler?"},
    ]
    # Moderation sees only the new question.
    assert standin.bodies("/moderations")[0]["input"] == "which is simpler?"


@pytest.mark.asyncio
async def test_memory_bounds(standin: OpenAIStandIn, make_provider) -> None:
    await answer(make_provider(memory_turns=1), command("next", history=_history()))
    messages = standin.bodies("/chat/completions")[0]["messages"]
    assert [m["content"] for m in messages[1:]] == ["and a Lamport clock?", "A Lamport clock is a counter.", "next"]

    standin.reset()
    request = command("next", history=_history())
    await answer(make_provider(memory_turns=0), request)
    assert len(standin.bodies("/chat/completions")[0]["messages"]) == 2
    assert request._history.limits == []  # type: ignore[attr-defined]  # not even read


@pytest.mark.asyncio
async def test_unreadable_history_means_no_memory(standin: OpenAIStandIn, make_provider) -> None:
    async def broken(limit: int) -> list[ChatMessage]:
        raise ConnectionError("Stream is down")

    request = command("hi")
    object.__setattr__(request, "_history", broken)
    pieces, exc = await answer(make_provider(), request)
    assert exc is None and "".join(pieces) == "Hello there!"


# -- lifecycle --------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_aclose_closes_the_pool_and_is_repeatable(make_provider) -> None:
    provider = make_provider()
    await answer(provider, command("hi"))
    client = provider.api._http
    assert client is not None
    await provider.aclose()
    assert client.is_closed
    await provider.aclose()


@pytest.mark.asyncio
async def test_stopping_early_closes_the_stream(standin: OpenAIStandIn, make_provider) -> None:
    standin.chats.append(Stream(["one", "two", "three"]))
    provider = make_provider(moderation=False)
    stream = provider.respond(command("hi"))
    assert await stream.__anext__() == "one"
    await stream.aclose()
    pieces, exc = await answer(provider, command("again"))  # the pool still works
    assert exc is None and "".join(pieces) == "Hello there!"
