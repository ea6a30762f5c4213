"""Stream's app rate limits in the stand-in, driven through the real stream_chat SDK.

The stand-in's clock is the test's (`enforce_rate_limits(clock=...)`), so which window a call
falls in never depends on how fast this machine runs the test.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import jwt
import pytest
import pytest_asyncio
from stream_chat import StreamChatAsync
from stream_chat.base.exceptions import StreamAPIException

from slashbots.sandbox.standin.rate_limits import BUCKETS, PER_MINUTE
from tests.conftest import API_KEY, API_SECRET, Stream

MINUTE = 1_000_020.0  # a whole minute in unix seconds: windows are aligned to the clock


class Clock:
    def __init__(self, at: float) -> None:
        self.at = at

    def __call__(self) -> float:
        return self.at


@pytest_asyncio.fixture
async def client(stream: Stream) -> AsyncIterator[StreamChatAsync]:
    async with StreamChatAsync(API_KEY, API_SECRET, base_url=stream.url) as client:
        yield client


def window(response: Any) -> tuple[int, int, int]:
    """(limit, remaining, reset) from an answer's X-RateLimit-* headers. Not `response.rate_limit()`:
    aiohttp 3.14 gives these names in its own case (X-RateLimit-Limit), and stream-chat 4.33 looks
    them up in lower case in a plain dict, so it finds none."""
    headers = {name.lower(): value for name, value in response.headers().items()}
    return tuple(int(headers[f"x-ratelimit-{part}"]) for part in ("limit", "remaining", "reset"))  # type: ignore[return-value]


async def raw_send(stream: Stream, text: str) -> httpx.Response:
    """A send whose answer headers the test can read (the SDK's exception drops them)."""
    token = jwt.encode({"server": True}, API_SECRET, algorithm="HS256")
    async with httpx.AsyncClient() as http:
        return await http.post(f"{stream.url}/channels/messaging/general/message", params={"api_key": API_KEY},
                               headers={"Authorization": token, "stream-auth-type": "jwt"},
                               json={"message": {"text": text, "user": {"id": "bot"}}})


def test_streams_documented_limits_and_the_assumed_bucket_of_partial_updates() -> None:
    assert PER_MINUTE == {"SendMessage": 1000, "UpdateMessage": 1000}
    assert BUCKETS["UpdateMessagePartial"] == BUCKETS["UpdateMessage"]  # the labelled assumption


async def test_off_by_default(stream: Stream, client: StreamChatAsync) -> None:
    channel = client.channel("messaging", "general")
    for n in range(40):  # more than a second's burst
        sent = await channel.send_message({"text": f"m{n}"}, "bot")
    assert not [name for name in sent.headers() if name.lower().startswith("x-ratelimit")]
    assert stream.standin.rate_limited == {}


async def test_a_burst_beyond_a_thirtieth_of_the_minute_is_refused(stream: Stream, client: StreamChatAsync) -> None:
    clock = Clock(MINUTE + 5.5)
    stream.standin.enforce_rate_limits(clock=clock)
    channel = client.channel("messaging", "general")
    for n in range(33):  # 1,000 / 30
        sent = await channel.send_message({"text": f"m{n}"}, "bot")
        assert window(sent) == (1000, 1000 - n - 1, MINUTE + 60)  # the minute window, to its end

    with pytest.raises(StreamAPIException) as err:
        await channel.send_message({"text": "m33"}, "bot")
    assert err.value.status_code == 429 and err.value.error_code == 9
    assert "Too many requests" in err.value.error_message
    refused = await raw_send(stream, "m34")
    assert refused.status_code == 429
    assert refused.headers["x-ratelimit-limit"] == "33" and refused.headers["x-ratelimit-remaining"] == "0"
    assert refused.headers["x-ratelimit-reset"] == str(int(MINUTE) + 6)  # the next second
    assert set(refused.json()) >= {"code", "message", "StatusCode", "duration", "more_info"}

    clock.at += 1
    sent = await channel.send_message({"text": "next second"}, "bot")
    assert window(sent)[1] == 1000 - 34  # refused calls used up nothing
    assert stream.standin.rate_limited == {"SendMessage": 2}
    assert len(stream.standin.messages("messaging:general")) == 34
    assert [c["status"] for c in stream.standin.calls if c["operation"] == "SendMessage"] == [200] * 33 + [429] * 2 + [200]


async def test_the_minute_limit(stream: Stream, client: StreamChatAsync) -> None:
    clock = Clock(MINUTE)
    stream.standin.enforce_rate_limits(per_minute={"SendMessage": 60}, clock=clock)  # bursts of 2
    channel = client.channel("messaging", "general")
    for second in range(30):
        clock.at = MINUTE + second
        for _ in range(2):
            await channel.send_message({"text": "x"}, "bot")
    clock.at = MINUTE + 30
    refused = await raw_send(stream, "one too many")
    assert refused.status_code == 429
    assert (refused.headers["x-ratelimit-limit"], refused.headers["x-ratelimit-remaining"]) == ("60", "0")
    assert refused.headers["x-ratelimit-reset"] == str(int(MINUTE) + 60)
    clock.at = MINUTE + 60
    sent = await channel.send_message({"text": "a new minute"}, "bot")
    assert window(sent) == (60, 59, MINUTE + 120)
    assert stream.standin.rate_limited == {"SendMessage": 1}


async def test_full_and_partial_updates_share_a_bucket_apart_from_sends(
    stream: Stream, client: StreamChatAsync
) -> None:
    stream.standin.enforce_rate_limits(per_minute={"UpdateMessage": 60}, clock=Clock(MINUTE))  # bursts of 2
    channel = client.channel("messaging", "general")
    await channel.send_message({"id": "m1", "text": "draft"}, "bot")
    await client.update_message({"id": "m1", "text": "full", "user": {"id": "bot"}})
    partial = await client.update_message_partial("m1", {"set": {"text": "partial"}}, "bot")
    assert window(partial)[:2] == (60, 58)
    with pytest.raises(StreamAPIException) as err:
        await client.update_message_partial("m1", {"set": {"text": "refused"}}, "bot")
    assert err.value.status_code == 429
    with pytest.raises(StreamAPIException) as err:
        await client.update_message({"id": "m1", "text": "refused too", "user": {"id": "bot"}})
    assert err.value.status_code == 429
    await channel.send_message({"text": "sending is another bucket"}, "bot")
    assert stream.standin.message("m1")["text"] == "partial"
    assert stream.standin.rate_limited == {"UpdateMessagePartial": 1, "UpdateMessage": 1}


async def test_only_message_writes_are_limited_and_limits_can_be_switched_off(
    stream: Stream, client: StreamChatAsync
) -> None:
    stream.standin.enforce_rate_limits(per_minute={"SendMessage": 30}, clock=Clock(MINUTE))  # bursts of 1
    channel = client.channel("messaging", "general")
    await channel.send_message({"id": "m1", "text": "one"}, "bot")
    for _ in range(5):
        fetched = await client.get_message("m1")
        assert not [name for name in fetched.headers() if name.lower().startswith("x-ratelimit")]
        await channel.send_event({"type": "ai_indicator.clear"}, "bot")
    with pytest.raises(StreamAPIException):
        await channel.send_message({"text": "two"}, "bot")
    stream.standin.enforce_rate_limits(False)
    await channel.send_message({"text": "two"}, "bot")
    assert stream.standin.rate_limited == {"SendMessage": 1}


async def test_injected_429s_are_not_counted_as_rate_limited(stream: Stream, client: StreamChatAsync) -> None:
    stream.standin.inject_fault("POST", r"/message$", status=429)
    with pytest.raises(StreamAPIException):
        await client.channel("messaging", "general").send_message({"text": "x"}, "bot")
    assert stream.standin.rate_limited == {}
