"""The `slashbots` pytest fixture itself: what plugin authors rely on beyond `command`."""

from __future__ import annotations

import asyncio
import threading

import pytest

from slashbots import hookimpl
from slashbots.config import ConfigError
from slashbots.testing import wait_for


class Counting:
    """Streams "one", "one two", "one two three": each next piece once the test has seen the last on screen."""

    gates = [threading.Event(), threading.Event()]  # set by the test (the server runs in another thread)

    def __init__(self, options):
        pass

    async def respond(self, request):
        yield "one"
        await asyncio.to_thread(self.gates[0].wait, 10)
        yield " two"
        await asyncio.to_thread(self.gates[1].wait, 10)
        yield " three"


class CountingPlugin:
    @hookimpl
    def register_providers(self, register):
        register("counting", Counting)


async def test_shown_gives_what_users_saw_as_the_answer_streamed(slashbots) -> None:
    bots = slashbots.start([{"command": "count", "provider": "counting", "update_interval_ms": 50},
                            {"command": "echo", "provider": "echo"}], plugins=[CountingPlugin()])
    for gate in Counting.gates:
        gate.clear()
    answer = asyncio.create_task(bots.command("/count"))
    await wait_for(lambda: bots.shown() == ["one"], what="the first piece on screen")
    Counting.gates[0].set()
    await wait_for(lambda: bots.shown()[-1:] == ["one two"], what="the second piece on screen")
    Counting.gates[1].set()
    assert await answer == "one two three"
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
