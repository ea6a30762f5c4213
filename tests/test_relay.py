"""Streaming replies through the real SDK and the Stream stand-in: pace, coalescing, splitting, faults."""

from __future__ import annotations

import json
import time

import pytest

from slashbots.relay import split_point
from tests.conftest import bot_messages, final_reply, send, wait_for

WRITER = """\
  - command: write
    description: Writes at a set pace
    provider: writer
    channel_types: [messaging]
    identity: {{id: writer-bot, name: Writer bot}}
    update_interval_ms: {interval}
    streaming: {streaming}
    options: {options}
"""
PLUGIN = "plugins:\n  - slashbots.paced_writers\n"


def writer(serve, *, interval: int = 250, streaming: bool = True, **options):
    rendered = json.dumps(options)  # JSON is YAML, escapes included
    bots = WRITER.format(interval=interval, streaming=str(streaming).lower(), options=rendered)
    return serve(bots, extra=PLUGIN)


def message_writes(standin, message_ids: set[str] | None = None) -> list[dict]:
    """Stream calls that wrote a bot message's text: sends and partial updates."""
    writes = []
    for call in standin.calls:
        if call["status"] != 200:
            continue
        if call["operation"] == "SendMessage" and call["json"]["message"]["user"]["id"] == "writer-bot":
            writes.append(call)
        elif call["operation"] == "UpdateMessagePartial" and call["json"]["user"]["id"] == "writer-bot":
            writes.append(call)
    return writes


@pytest.mark.parametrize(
    ("text", "limit", "cut"),
    [
        ("short", 10, 5),
        ("first para.\n\nsecond para that is long", 20, 13),
        ("One sentence. Another one here", 20, 14),
        ("words words words words", 14, 12),
        ("x" * 30, 10, 10),
        ("tiny. " + "y" * 30, 20, 20),  # a cut in the first half would leave a stub: cut hard instead
    ],
)
def test_split_point_prefers_paragraphs_then_sentences_then_words(text: str, limit: int, cut: int) -> None:
    assert split_point(text, limit) == cut
    assert split_point(text, limit) <= limit


async def test_a_slow_writer_is_streamed_with_bounded_writes(serve, chat) -> None:
    served = writer(serve, interval=100, pieces=12, piece="word ", delay=0.08, first_delay=0.2)
    started = time.monotonic()
    await send(chat, "/write")
    [reply] = await final_reply(served.standin, "writer-bot")
    duration = time.monotonic() - started
    assert reply["text"] == ("word " * 12).rstrip()  # trailing whitespace is trimmed from the final text
    writes = message_writes(served.standin)
    assert len(writes) <= duration / 0.1 + 3
    texts = [(w["json"].get("set") or w["json"].get("message"))["text"] for w in writes]
    shown = [t for t in texts if t]
    assert len(shown) >= 3, texts  # text appeared while the model was still writing
    assert shown == sorted(shown, key=len), "a write never shows older text than the one before"
    assert all(set(text.split()) == {"word"} for text in shown), "pieces are never cut or mixed"
    first, *_, last = writes
    assert first["json"]["message"]["text"] == "" and first["json"]["message"]["generating"] is True
    assert last["json"]["set"] == {"text": ("word " * 12).rstrip(), "generating": False}


async def test_indicator_goes_thinking_generating_then_clear(serve, chat) -> None:
    served = writer(serve, interval=50, pieces=5, delay=0.05, first_delay=0.2)
    await send(chat, "/write")
    [reply] = await final_reply(served.standin, "writer-bot")
    await wait_for(lambda: any(e["type"] == "ai_indicator.clear" for e in served.standin.events("messaging:general")))
    events = [(e["type"], e.get("ai_state")) for e in served.standin.events("messaging:general")]
    assert events == [
        ("ai_indicator.update", "AI_STATE_THINKING"),
        ("ai_indicator.update", "AI_STATE_GENERATING"),
        ("ai_indicator.clear", None),
    ]
    assert all(e["message_id"] == reply["id"] for e in served.standin.events("messaging:general"))


async def test_a_fast_writer_is_coalesced_into_few_writes(serve, chat) -> None:
    served = writer(serve, interval=250, pieces=2000, piece="ab", delay=0.0, first_delay=0.1)
    await send(chat, "/write")
    [reply] = await final_reply(served.standin, "writer-bot")
    assert reply["text"] == "ab" * 2000
    assert len(message_writes(served.standin)) <= 4


async def test_a_provider_that_yields_once_makes_one_message(serve, chat) -> None:
    served = writer(serve, pieces=1, piece="all at once")
    await send(chat, "/write")
    [reply] = await final_reply(served.standin, "writer-bot")
    assert reply["text"] == "all at once"
    assert len(message_writes(served.standin)) <= 2


async def test_streaming_off_posts_once_at_the_end(serve, chat) -> None:
    served = writer(serve, streaming=False, pieces=5, delay=0.05)
    await send(chat, "/write")
    [reply] = await final_reply(served.standin, "writer-bot")
    assert reply["text"] == ("word " * 5).rstrip()
    [write] = message_writes(served.standin)
    assert write["operation"] == "SendMessage" and write["json"]["message"]["generating"] is False


LONG = "".join(
    f"Paragraph {p}. " + " ".join(f"Sentence {p}.{s} has some words in it." for s in range(12)) + "\n\n"
    for p in range(30)
)


async def test_a_long_answer_continues_in_new_messages_in_order(serve, chat) -> None:
    assert len(LONG) > 12_000
    served = writer(serve, interval=50, text=LONG, chunk=400, delay=0.01)
    await send(chat, "/write")
    replies = await final_reply(served.standin, "writer-bot", count=3)
    assert all(len(m["text"]) <= 5000 for m in replies)
    assert all(m["text"] == m["text"].strip() for m in replies)
    assert " ".join(m["text"] for m in replies).split() == LONG.split()
    assert all(m["text"].endswith(".") for m in replies[:-1]), "cuts fall at sentence ends"
    assert not [c for c in served.standin.calls if c["status"] >= 400]


async def test_a_channel_type_with_a_lower_limit_is_respected(serve, chat, stream) -> None:
    stream.standin.set_max_message_length("messaging", 1000)
    served = writer(serve, interval=50, text=LONG[:3500], chunk=500)
    await send(chat, "/write")
    replies = await final_reply(served.standin, "writer-bot", count=4)
    assert all(len(m["text"]) <= 1000 for m in replies)
    assert " ".join(m["text"] for m in replies).split() == LONG[:3500].split()
    assert not [c for c in served.standin.calls if c["status"] >= 400]


async def test_rate_limited_patches_back_off_and_the_final_text_lands(serve, chat) -> None:
    served = writer(serve, interval=50, pieces=30, piece="tick ", delay=0.03, first_delay=0.1)
    reset = str(int(time.time()) + 1)
    served.standin.inject_fault("PUT", r"^/messages/", status=429, times=4, headers={"X-RateLimit-Reset": reset})
    await send(chat, "/write")
    [reply] = await final_reply(served.standin, "writer-bot", timeout=20)
    assert reply["text"] == ("tick " * 30).rstrip()
    assert reply["generating"] is False
    assert len([c for c in served.standin.calls if c["status"] == 429]) == 4


async def test_the_final_text_is_retried_through_server_errors(serve, chat) -> None:
    served = writer(serve, pieces=1, piece="must land", first_delay=0.3)
    # The placeholder goes out at once; every later write fails three times first.
    await send(chat, "/write")
    await wait_for(lambda: bot_messages(served.standin, "writer-bot"))
    served.standin.inject_fault("PUT", r"^/messages/", status=500, times=3)
    [reply] = await final_reply(served.standin, "writer-bot", timeout=20)
    assert reply["text"] == "must land"


async def test_failing_indicator_events_never_hold_up_text(serve, chat) -> None:
    served = writer(serve, interval=50, pieces=5, delay=0.02, first_delay=0.1)
    served.standin.inject_fault("POST", r"/event$", status=500, times=50)
    await send(chat, "/write")
    [reply] = await final_reply(served.standin, "writer-bot")
    assert reply["text"] == ("word " * 5).rstrip()
    assert served.standin.events("messaging:general") == []


async def test_a_failure_mid_stream_keeps_the_text_and_marks_the_error(serve, chat) -> None:
    served = writer(serve, interval=50, pieces=6, piece="ok ", delay=0.05, fail_after=3)
    await send(chat, "/write")
    [reply] = await final_reply(served.standin, "writer-bot")
    assert reply["text"] == "ok ok ok \n\n⚠️ Answer interrupted: the model stopped answering."
    await wait_for(lambda: "AI_STATE_ERROR" in [e.get("ai_state") for e in served.standin.events("messaging:general")])
    states = [e.get("ai_state") for e in served.standin.events("messaging:general")]
    assert states == ["AI_STATE_THINKING", "AI_STATE_GENERATING", "AI_STATE_ERROR"]


async def test_trailing_whitespace_at_the_limit_makes_no_empty_message(serve, chat, stream) -> None:
    stream.standin.set_max_message_length("messaging", 100)
    served = writer(serve, interval=50, text="word " * 20 + "\n\n\n", chunk=101)
    await send(chat, "/write")
    [reply] = await final_reply(served.standin, "writer-bot")
    assert reply["text"] == ("word " * 20).strip()
    await wait_for(lambda: not served.app.state.replies.running, what="the reply job to end")  # it posts nothing after
    assert len(bot_messages(served.standin, "writer-bot")) == 1
