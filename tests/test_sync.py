"""Start-up sync: bot users, commands, merged channel types, handler URL; a second start writes nothing."""

from __future__ import annotations

import asyncio
import logging

import pytest
from stream_chat import StreamChatAsync

from slashbots.app import create_app
from slashbots.config import load_config
from slashbots.sandbox.loopback import LoopbackServer, bind_loopback
from slashbots.stream import StreamError, StreamGateway
from slashbots.sync import SyncRefused, sync_bots
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


async def test_syncs_racing_on_one_app_all_finish_and_agree(stream, write_config) -> None:
    """Instances starting together: each reads before any writes, so all but one create a command that exists."""
    config = load_config(write_config(TWO_BOTS))
    # Hold every create back long enough that all three have read the (empty) command list.
    stream.standin.inject_fault("POST", r"^/commands$", status=None, delay=0.3, times=6)
    gateways = [StreamGateway(API_KEY, API_SECRET, base_url=stream.url) for _ in range(3)]
    try:
        plans = await asyncio.gather(*(sync_bots(g, config, "https://bots.example.com/webhook") for g in gateways))
        again = await sync_bots(gateways[0], config, "https://bots.example.com/webhook", dry_run=True)
    finally:
        await asyncio.gather(*(g.close() for g in gateways))
    assert all([bot.command for bot in plan.create] == ["echo", "shout"] for plan in plans)  # all raced
    creates = [c["status"] for c in stream.standin.calls if c["operation"] == "CreateCommand"]
    assert sorted(creates) == [200] * 2 + [400] * 4, creates
    assert again.writes == 0  # what Stream holds now is what bots.yaml says
    messaging = (await _channel_type(stream, "messaging"))
    assert messaging == ["giphy", "echo", "shout"]


async def _channel_type(stream, name: str) -> list[str]:
    async with StreamChatAsync(API_KEY, API_SECRET, base_url=stream.url) as chat:
        return [c["name"] for c in (await chat.get_channel_type(name))["commands"]]


async def test_a_foreign_handler_url_is_replaced_with_a_warning_naming_both(stream, write_config, chat, caplog) -> None:
    await chat.update_app_settings(custom_action_handler_url="https://other-deployment.example.com/webhook")
    gateway = StreamGateway(API_KEY, API_SECRET, base_url=stream.url)
    try:
        plan = await sync_bots(gateway, load_config(write_config(ECHO_BOT)), "https://ours.example.com/webhook",
                               dry_run=True)
        assert "it points at another deployment, and on_foreign_handler: replace takes it over" in "\n".join(plan.describe())
        with caplog.at_level(logging.WARNING, logger="slashbots.sync"):
            await sync_bots(gateway, load_config(write_config(ECHO_BOT)), "https://ours.example.com/webhook")
    finally:
        await gateway.close()
    assert (await chat.get_app_settings())["app"]["custom_action_handler_url"] == "https://ours.example.com/webhook"
    [warning] = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "https://other-deployment.example.com/webhook" in warning and "https://ours.example.com/webhook" in warning


async def test_an_empty_handler_url_belongs_to_nobody(stream, write_config, caplog) -> None:
    gateway = StreamGateway(API_KEY, API_SECRET, base_url=stream.url)
    path = write_config(ECHO_BOT)
    path.write_text(path.read_text().replace("stream:\n", "stream:\n  on_foreign_handler: refuse\n"))
    try:
        with caplog.at_level(logging.WARNING, logger="slashbots.sync"):
            await sync_bots(gateway, load_config(path), "https://ours.example.com/webhook")
    finally:
        await gateway.close()
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


async def test_on_foreign_handler_refuse_stops_the_server_with_a_clear_error(stream, write_config, chat) -> None:
    await chat.update_app_settings(custom_action_handler_url="https://other-deployment.example.com/webhook")
    path = write_config(ECHO_BOT)
    path.write_text(path.read_text().replace("stream:\n", "stream:\n  on_foreign_handler: refuse\n"))
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    app = create_app(load_config(path), stream_url=stream.url, public_url="https://ours.example.com",
                     on_fatal=lambda: loop.call_soon_threadsafe(stopped.set))
    with LoopbackServer(app, sock=bind_loopback()):
        await asyncio.wait_for(stopped.wait(), timeout=10)
    assert app.state.fatal.startswith("not syncing with Stream: the Stream app's command handler URL is "
                                      "https://other-deployment.example.com/webhook, not ours (https://ours.example.com/webhook)")
    assert "stream.on_foreign_handler: replace" in app.state.fatal
    assert (await chat.get_app_settings())["app"]["custom_action_handler_url"] == "https://other-deployment.example.com/webhook"
    assert stream.standin.writes("command") == []


async def test_prune_removes_our_commands_that_bots_yaml_dropped_and_nothing_else(stream, write_config, chat) -> None:
    await chat.create_command({"name": "ticket", "description": "Open a ticket", "set": "support"})
    await chat.update_channel_type("messaging", commands=["giphy", "ticket"])
    gateway = StreamGateway(API_KEY, API_SECRET, base_url=stream.url)
    url = "https://ours.example.com/webhook"
    try:
        await sync_bots(gateway, load_config(write_config(TWO_BOTS)), url)
        only_echo = load_config(write_config(ECHO_BOT))
        kept = await sync_bots(gateway, only_echo, url)  # without --prune, nothing is removed
        assert kept.prune == [] and "shout" in {c["name"] for c in (await chat.list_commands())["commands"]}
        plan = await sync_bots(gateway, only_echo, url, prune=True, dry_run=True)
        assert "\n".join(plan.describe()).count("disable /shout on channel type") == 2
        assert "delete command /shout (set 'slashbots', no longer in bots.yaml)" in plan.describe()
        await sync_bots(gateway, only_echo, url, prune=True)
    finally:
        await gateway.close()
    assert {c["name"] for c in (await chat.list_commands())["commands"]} == {"echo", "ticket"}
    assert await _channel_type(stream, "messaging") == ["giphy", "ticket", "echo"]
    assert await _channel_type(stream, "team") == ["giphy"]


async def test_prune_refuses_while_the_handler_url_points_elsewhere(stream, write_config, chat) -> None:
    gateway = StreamGateway(API_KEY, API_SECRET, base_url=stream.url)
    try:
        await sync_bots(gateway, load_config(write_config(TWO_BOTS)), "https://theirs.example.com/webhook")
        with pytest.raises(SyncRefused, match=r"not pruning: the Stream app's command handler URL is "
                                              r"https://theirs.example.com/webhook, not ours"):
            await sync_bots(gateway, load_config(write_config(ECHO_BOT)), "https://ours.example.com/webhook",
                            prune=True, dry_run=True)
    finally:
        await gateway.close()
    assert "shout" in {c["name"] for c in (await chat.list_commands())["commands"]}
