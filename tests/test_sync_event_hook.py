"""Sync and the app's event hooks: ours merged in, everyone else's kept exactly, written only when different."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from slashbots.config import load_config
from slashbots.stream import StreamGateway
from slashbots.sync import SyncRefused, sync_bots
from tests.conftest import API_KEY, API_SECRET, ECHO_BOT

OURS = "https://ours.example.com/events"
HANDLER = "https://ours.example.com/webhook"
THEIRS = {"hook_type": "webhook", "enabled": True, "webhook_url": "https://analytics.example.com/stream",
          "event_types": ["message.new", "user.updated"], "product": "chat", "timeout_ms": 3000}
QUEUE = {"hook_type": "sqs", "enabled": True, "sqs_queue_url": "https://sqs.example.com/q", "sqs_region": "eu-west-1"}


def bots(**switches: bool) -> str:
    return ECHO_BOT + "".join(f"    {name}: {str(value).lower()}\n" for name, value in switches.items())


async def hooks(chat) -> list[dict[str, Any]]:
    return (await chat.get_app_settings())["app"]["event_hooks"]


async def sync(stream, write_config, text: str, **options: Any):
    gateway = StreamGateway(API_KEY, API_SECRET, base_url=stream.url)
    try:
        return await sync_bots(gateway, load_config(write_config(text)), HANDLER, events_url=OURS, **options)
    finally:
        await gateway.close()


async def test_ours_joins_someone_elses_hooks_which_survive_exactly(stream, write_config, chat) -> None:
    await chat.update_app_settings(event_hooks=[THEIRS, QUEUE])
    before = await hooks(chat)
    plan = await sync(stream, write_config, bots(mentions=True, threads=True))
    assert f"add event hook {OURS} for message.new (keeping the app's 2 other hooks as they are)" in plan.describe()
    after = await hooks(chat)
    assert after[:2] == before  # ids, stamps and every field as they were
    ours = after[2]
    assert {key: ours[key] for key in ("hook_type", "enabled", "webhook_url", "event_types", "should_send_custom_events")} \
        == {"hook_type": "webhook", "enabled": True, "webhook_url": OURS, "event_types": ["message.new"],
            "should_send_custom_events": False}

    writes = len(stream.standin.writes("app"))
    again = await sync(stream, write_config, bots(mentions=True, threads=True))
    assert again.event_hooks is None and len(stream.standin.writes("app")) == writes  # nothing differs: no write
    assert "event hooks already match bots.yaml" in "\n".join(again.describe())


async def test_ours_changes_in_place_and_goes_when_no_bot_needs_events(stream, write_config, chat) -> None:
    await chat.update_app_settings(event_hooks=[THEIRS])
    await sync(stream, write_config, bots(mentions=True))
    [theirs, ours] = await hooks(chat)
    plan = await sync(stream, write_config, bots(mentions=True, stop=True))
    assert plan.event_hooks.action == "update"
    [kept, changed] = await hooks(chat)
    assert kept == theirs and changed["id"] == ours["id"]
    assert (changed["event_types"], changed["should_send_custom_events"]) == (["message.new"], True)

    dry = await sync(stream, write_config, ECHO_BOT, dry_run=True)
    assert f"remove event hook {OURS}: no bot needs events (keeping the app's 1 other hook as they are)" \
        in dry.describe()
    assert len(await hooks(chat)) == 2  # a dry run writes nothing
    await sync(stream, write_config, ECHO_BOT)
    assert await hooks(chat) == [theirs]


async def test_no_bot_needing_events_means_no_hook_and_no_write(stream, write_config, chat) -> None:
    await sync(stream, write_config, ECHO_BOT)
    assert await hooks(chat) == []
    assert [c["json"] for c in stream.standin.writes("app") if "event_hooks" in c["json"]] == []


async def test_stop_alone_subscribes_to_the_stop_event_not_to_everything(stream, write_config, chat) -> None:
    await sync(stream, write_config, bots(stop=True))
    [ours] = await hooks(chat)
    # An empty event_types would mean every event of the app.
    assert (ours["event_types"], ours["should_send_custom_events"]) == (["ai_indicator.stop"], True)


async def test_the_hook_of_the_deployment_holding_the_handler_url_is_taken_over_with_a_warning(
        stream, write_config, chat, caplog) -> None:
    old = {"hook_type": "webhook", "enabled": True, "webhook_url": "https://old.example.com/events",
           "event_types": ["message.new"]}
    await chat.update_app_settings(custom_action_handler_url="https://old.example.com/webhook",
                                   event_hooks=[THEIRS, old])
    [theirs, before] = await hooks(chat)
    plan = await sync(stream, write_config, bots(mentions=True), dry_run=True)
    assert plan.event_hooks.action == "take_over"
    assert "point event hook https://old.example.com/events at " + OURS in "\n".join(plan.describe())
    with caplog.at_level(logging.WARNING, logger="slashbots.sync"):
        await sync(stream, write_config, bots(mentions=True))
    [kept, taken] = await hooks(chat)
    assert kept == theirs and taken["id"] == before["id"] and taken["webhook_url"] == OURS
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("https://old.example.com/events" in w and OURS in w for w in warnings), warnings


async def test_on_foreign_handler_refuse_leaves_the_hooks_alone(stream, write_config, chat) -> None:
    old = {"hook_type": "webhook", "enabled": True, "webhook_url": "https://old.example.com/events",
           "event_types": ["message.new"]}
    await chat.update_app_settings(custom_action_handler_url="https://old.example.com/webhook", event_hooks=[old])
    before = await hooks(chat)
    text = "stream:\n  on_foreign_handler: refuse\n"
    with pytest.raises(SyncRefused, match="another deployment may be using this app"):
        gateway = StreamGateway(API_KEY, API_SECRET, base_url=stream.url)
        path = write_config(bots(mentions=True))
        path.write_text(path.read_text().replace("stream:\n", text))
        try:
            await sync_bots(gateway, load_config(path), HANDLER, events_url=OURS)
        finally:
            await gateway.close()
    assert await hooks(chat) == before


async def test_syncs_racing_leave_one_hook_of_ours_and_theirs(stream, write_config, chat) -> None:
    await chat.update_app_settings(event_hooks=[THEIRS])
    [theirs] = await hooks(chat)
    # Every instance reads the hooks before any writes: each adds ours, and the last write wins.
    stream.standin.inject_fault("PATCH", r"^/app$", status=None, delay=0.3, times=3)
    config = load_config(write_config(bots(threads=True)))
    gateways = [StreamGateway(API_KEY, API_SECRET, base_url=stream.url) for _ in range(3)]
    try:
        await asyncio.gather(*(sync_bots(g, config, HANDLER, events_url=OURS) for g in gateways))
        again = await sync_bots(gateways[0], config, HANDLER, events_url=OURS, dry_run=True)
    finally:
        await asyncio.gather(*(g.close() for g in gateways))
    after = await hooks(chat)
    assert after[0] == theirs and [h["webhook_url"] for h in after] == [THEIRS["webhook_url"], OURS]
    assert again.writes == 0
