"""Start-up sync: bot users, commands, merged channel types, handler URL; a second start writes nothing."""

from __future__ import annotations

import pytest

from slashbots.config import load_config
from slashbots.stream import StreamError, StreamGateway
from slashbots.sync import sync_bots
from tests.conftest import API_KEY, API_SECRET, ECHO_BOT

TWO_BOTS = ECHO_BOT + """\
  - command: shout
    description: Shouts
    args: "[text]"
    provider: echo
    channel_types: [messaging, team]
    identity: {id: shout-bot, name: Shout bot}
"""


async def test_first_start_registers_everything_and_keeps_other_commands(serve, chat, stream) -> None:
    # Someone else's command is already enabled on messaging, next to Stream's giphy.
    await chat.create_command({"name": "ticket", "description": "Open a ticket", "set": "support"})
    await chat.update_channel_type("messaging", commands=["giphy", "ticket"])

    served = serve(TWO_BOTS)

    commands = {c["name"]: c for c in (await chat.list_commands())["commands"]}
    assert commands["echo"]["description"] == "Repeats what you say"
    assert commands["echo"]["args"] == "[text]"
    assert commands["shout"]["set"] == "slashbots"
    assert "ticket" in commands
    messaging = [c["name"] for c in (await chat.get_channel_type("messaging"))["commands"]]
    assert messaging == ["giphy", "ticket", "echo", "shout"]
    team = [c["name"] for c in (await chat.get_channel_type("team"))["commands"]]
    assert team == ["giphy", "shout"]
    app = (await chat.get_app_settings())["app"]
    assert app["custom_action_handler_url"] == served.url + "/webhook"
    assert stream.standin.user("echo-bot")["name"] == "Echo bot"
    assert stream.standin.user("echo-bot")["image"] == "https://example.com/echo.png"
    assert stream.standin.user("shout-bot")["name"] == "Shout bot"


async def test_a_second_start_makes_no_command_channel_type_or_app_writes(stream, write_config) -> None:
    config = load_config(write_config(TWO_BOTS))
    gateway = StreamGateway(API_KEY, API_SECRET, base_url=stream.url)
    try:
        first = await sync_bots(gateway, config, "https://bots.example.com/webhook")
        assert first.writes == 2 + 2 + 1  # two commands, two channel types, the handler URL
        before = {kind: len(stream.standin.writes(kind)) for kind in ("command", "channel_type", "app")}
        second = await sync_bots(gateway, config, "https://bots.example.com/webhook")
        after = {kind: len(stream.standin.writes(kind)) for kind in ("command", "channel_type", "app")}
    finally:
        await gateway.close()
    assert second.writes == 0
    assert after == before
    assert "already match" in "\n".join(second.describe())


async def test_changed_descriptions_are_updated_and_dry_run_writes_nothing(stream, write_config) -> None:
    gateway = StreamGateway(API_KEY, API_SECRET, base_url=stream.url)
    try:
        await sync_bots(gateway, load_config(write_config(TWO_BOTS)), None)
        changed = load_config(write_config(TWO_BOTS.replace("Shouts", "Shouts louder")))
        writes = len(stream.standin.writes("command"))
        plan = await sync_bots(gateway, changed, None, dry_run=True)
        assert [bot.command for bot, _ in plan.update] == ["shout"]
        assert len(stream.standin.writes("command")) == writes
        await sync_bots(gateway, changed, None)
        assert len(stream.standin.writes("command")) == writes + 1
    finally:
        await gateway.close()
    assert stream.standin.writes("command")[-1]["json"]["description"] == "Shouts louder"


async def test_bad_credentials_give_a_clear_error(stream, write_config) -> None:
    gateway = StreamGateway(API_KEY, "not-the-secret-of-this-app-at-all", base_url=stream.url)
    try:
        with pytest.raises(StreamError) as caught:
            await sync_bots(gateway, load_config(write_config(ECHO_BOT)), None)
    finally:
        await gateway.close()
    assert caught.value.status == 401
    assert "Stream answered 401" in str(caught.value)
    assert "not-the-secret" not in str(caught.value)


async def test_unreachable_stream_gives_a_clear_error(write_config) -> None:
    gateway = StreamGateway(API_KEY, API_SECRET, base_url="http://127.0.0.1:9", timeout=2)
    try:
        with pytest.raises(StreamError) as caught:
            await sync_bots(gateway, load_config(write_config(ECHO_BOT)), None)
    finally:
        await gateway.close()
    assert caught.value.status == 0
    assert "could not reach Stream at http://127.0.0.1:9" in str(caught.value)


async def test_an_unknown_channel_type_is_named(stream, write_config) -> None:
    gateway = StreamGateway(API_KEY, API_SECRET, base_url=stream.url)
    try:
        with pytest.raises(StreamError, match="read channel type 'nosuchtype'"):
            await sync_bots(gateway, load_config(write_config(ECHO_BOT.replace("[messaging]", "[nosuchtype]"))), None)
    finally:
        await gateway.close()
