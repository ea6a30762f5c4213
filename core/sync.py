"""Make Stream match bots.yaml: read what is there, then write only what differs.

Run on every start, so it must be idempotent: a second start with the same config writes
no command, channel type or app setting. Channel types get the *union* of their current
commands and ours, because Stream replaces the list on update and would otherwise drop
``giphy`` and anyone else's commands.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from slashbots.config import Bot, Config
from slashbots.stream import StreamGateway

log = logging.getLogger("slashbots.sync")

COMMAND_SET = "slashbots"  # groups our commands in Stream's dashboard


@dataclass
class SyncPlan:
    users: list[dict[str, Any]] = field(default_factory=list)
    create: list[Bot] = field(default_factory=list)
    update: list[tuple[Bot, dict[str, Any]]] = field(default_factory=list)
    channel_types: dict[str, tuple[list[str], list[str]]] = field(default_factory=dict)
    handler_url: tuple[str, str] | None = None  # (current, wanted)
    max_message_length: dict[str, int] = field(default_factory=dict)  # per channel type, where set

    @property
    def writes(self) -> int:
        """Writes besides the user upsert (which is always made: Stream has no cheap diff for it)."""
        return len(self.create) + len(self.update) + len(self.channel_types) + (self.handler_url is not None)

    def describe(self) -> list[str]:
        lines = [f"upsert bot user {user['id']} ({user['name']})" for user in self.users]
        lines += [f"create command /{bot.command}: {bot.description!r} args {bot.args!r}" for bot in self.create]
        for bot, current in self.update:
            lines.append(f"update command /{bot.command} (was {current!r})")
        for name, (before, after) in self.channel_types.items():
            added = [command for command in after if command not in before]
            lines.append(f"enable {', '.join('/' + c for c in added)} on channel type '{name}' (keeping {before or 'none'})")
        if self.handler_url is not None:
            current, wanted = self.handler_url
            lines.append(f"set custom_action_handler_url to {wanted} (was {current or 'unset'})")
        if not self.writes:
            lines.append("commands, channel types and handler URL already match bots.yaml")
        return lines


def wanted_command(bot: Bot) -> dict[str, Any]:
    return {"description": bot.description, "args": bot.args, "set": COMMAND_SET}


async def plan_sync(gateway: StreamGateway, config: Config, handler_url: str | None) -> SyncPlan:
    plan = SyncPlan()
    seen: set[str] = set()
    for bot in config.bots:
        if bot.identity.id not in seen:
            seen.add(bot.identity.id)
            user = {"id": bot.identity.id, "name": bot.identity.name}
            if bot.identity.image:
                user["image"] = bot.identity.image
            plan.users.append(user)

    existing = await gateway.list_commands()
    for bot in config.bots:
        current = existing.get(bot.command)
        if current is None:
            plan.create.append(bot)
        else:
            have = {key: current.get(key) or "" for key in ("description", "args", "set")}
            if have != wanted_command(bot):
                plan.update.append((bot, have))

    wanted: dict[str, list[str]] = {}
    for bot in config.bots:
        for channel_type in bot.channel_types:
            wanted.setdefault(channel_type, []).append(bot.command)
    for channel_type, commands in wanted.items():
        current_commands, longest = await gateway.channel_type(channel_type)
        if longest:
            plan.max_message_length[channel_type] = longest
        missing = [command for command in commands if command not in current_commands]
        if missing:
            plan.channel_types[channel_type] = (current_commands, current_commands + missing)

    if handler_url:
        current_url = await gateway.handler_url()
        if current_url != handler_url:
            plan.handler_url = (current_url, handler_url)
    return plan


async def apply_sync(gateway: StreamGateway, plan: SyncPlan) -> None:
    if plan.users:
        await gateway.upsert_users(plan.users)
    for bot in plan.create:
        command = wanted_command(bot)
        await gateway.create_command(bot.command, command["description"], command["args"], command["set"])
    for bot, _ in plan.update:
        command = wanted_command(bot)
        await gateway.update_command(bot.command, command["description"], command["args"], command["set"])
    # After the commands exist: Stream refuses a channel type naming an unknown command.
    for channel_type, (_, commands) in plan.channel_types.items():
        await gateway.set_channel_type_commands(channel_type, commands)
    if plan.handler_url is not None:
        await gateway.set_handler_url(plan.handler_url[1])


async def sync_bots(gateway: StreamGateway, config: Config, handler_url: str | None, *, dry_run: bool = False) -> SyncPlan:
    """Plan, then (unless ``dry_run``) apply; every step is logged."""
    plan = await plan_sync(gateway, config, handler_url)
    if not dry_run:
        await apply_sync(gateway, plan)
        for line in plan.describe():
            log.info("sync: %s", line)
    if handler_url is None:
        log.warning("no handler URL: set SLASHBOTS_PUBLIC_URL (or stream.webhook_url) so Stream can reach /webhook")
    return plan


def handler_url_for(config: Config, public_url: str | None) -> str | None:
    """``stream.webhook_url`` if set, else ``$SLASHBOTS_PUBLIC_URL/webhook``, else None."""
    if config.stream.webhook_url:
        return config.stream.webhook_url
    if public_url:
        return public_url.rstrip("/") + "/webhook"
    return None
