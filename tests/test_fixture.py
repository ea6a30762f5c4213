"""The `slashbots` pytest fixture itself: what plugin authors rely on beyond `command`."""

from __future__ import annotations

import asyncio

import pytest

from slashbots import hookimpl
from slashbots.config import ConfigError


class Counting:
    """Streams "one", "one two", "one two three", each piece only once the last is on screen."""

    def __init__(self, options):
        pass

    async def respond(self, request):
        words = ""
        for word in ("one", "two", "three"):
            words = f"{words} {word}".strip()
            yield word if words == word else f" {word}"
            await self.until_shown(request, words)

    @staticmethod
    async def until_shown(request, text):
        while not any(m.user_id == request.bot.identity.id and m.text == text for m in await request.history(5)):
            await asyncio.sleep(0.01)


class CountingPlugin:
    @hookimpl
    def register_providers(self, register):
        register("counting", Counting)


async def test_shown_gives_what_users_saw_as_the_answer_streamed(slashbots) -> None:
    bots = slashbots.start([{"command": "count", "provider": "counting", "update_interval_ms": 50},
                            {"command": "echo", "provider": "echo"}], plugins=[CountingPlugin()])
    assert await bots.command("/count") == "one two three"
    assert bots.shown() == ["one", "one two", "one two three"]
    assert await bots.command("/echo hi") == "hi"
    assert bots.shown(bot="echo") == ["hi"]
    assert bots.shown(bot="count") == ["one", "one two", "one two three"]
    assert bots.shown(cid="messaging:elsewhere") == []


def test_a_config_error_from_start_points_into_the_spec_not_a_temporary_file(slashbots) -> None:
    with pytest.raises(ConfigError) as raised:
        slashbots.start([{"command": "echo", "provider": "echo"}, {"command": "shout", "provider": "echo",
                                                                    "update_interval_ms": 5}])
    assert str(raised.value) == "slashbots.start(): bots[1].update_interval_ms: expected an integer from 50 to 10000, got 5"
    with pytest.raises(ConfigError, match=r"^slashbots\.start\(\): bots\[0\]\.options: echo: unknown option"):
        slashbots.start([{"command": "echo", "provider": "echo", "options": {"colour": "red"}}])
