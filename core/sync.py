"""Make Stream match bots.yaml: read what is there, then write only what differs.

Run on every start, by every instance, possibly at the same moment, so it must be
idempotent and safe to race: a second start with the same config writes nothing; a create
answered "already exists" (another instance was quicker) becomes an update; and after any
write the plan is made again from what Stream now holds, until nothing is left to do.
Channel types get the *union* of their current commands and ours, because Stream replaces
the list on update and would otherwise drop ``giphy`` and anyone else's commands, and the
app's event hooks are merged the same way (slashbots.event_hook).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from slashbots.config import Bot, Config
from slashbots.event_hook import HookChange, events_url_of, plan_hooks, wanted_hook
from slashbots.stream import StreamError, StreamGateway

log = logging.getLogger("slashbots.sync")

COMMAND_SET = "slashbots"  # groups our commands in Stream's dashboard, and marks them ours for --prune
MAX_ROUNDS = 4  # plans made before giving up on a Stream that keeps changing under us


class SyncRefused(Exception):
    """Syncing would take something that belongs to another deployment; the message says what and how to proceed."""


@dataclass
class SyncPlan:
    users: list[dict[str, Any]] = field(default_factory=list)
    create: list[Bot] = field(default_factory=list)
    update: list[tuple[Bot, dict[str, Any]]] = field(default_factory=list)
    channel_types: dict[str, tuple[list[str], list[str]]] = field(default_factory=dict)  # name -> (before, after)
    handler_url: tuple[str, str] | None = None  # (current, wanted)
    foreign_handler: str | None = None  # the handler URL, when it points at someone else
    on_foreign_handler: str = "replace"
    prune: list[str] = field(default_factory=list)  # our commands that bots.yaml no longer has
    max_message_length: dict[str, int] = field(default_factory=dict)  # per channel type, where set
    event_hooks: HookChange | None = None

    @property
    def writes(self) -> int:
        """Writes besides the user upsert (which is always made: Stream has no cheap diff for it)."""
        return (len(self.create) + len(self.update) + len(self.channel_types) + (self.handler_url is not None)
                + len(self.prune) + (self.event_hooks is not None))

    def describe(self) -> list[str]:
        lines = [f"upsert bot user {user['id']} ({user['name']})" for user in self.users]
        lines += [f"create command /{bot.command}: {bot.description!r} args {bot.args!r}" for bot in self.create]
        for bot, current in self.update:
            lines.append(f"update command /{bot.command} (was {current!r})")
        for name, (before, after) in self.channel_types.items():
            added = [command for command in after if command not in before]
            removed = [command for command in before if command not in after]
            if added:
                lines.append(f"enable {', '.join('/' + c for c in added)} on channel type '{name}' (keeping {before or 'none'})")
            if removed:
                lines.append(f"disable {', '.join('/' + c for c in removed)} on channel type '{name}' (no longer in bots.yaml)")
        lines += [f"delete command /{name} (set {COMMAND_SET!r}, no longer in bots.yaml)" for name in self.prune]
        if self.handler_url is not None:
            current, wanted = self.handler_url
            taking = "; it points at another deployment, and on_foreign_handler: replace takes it over" if self.foreign_handler else ""
            lines.append(f"set custom_action_handler_url to {wanted} (was {current or 'unset'}{taking})")
        if self.event_hooks is not None:
            lines.append(self.event_hooks.describe())
        if not self.writes:
            lines.append("commands, channel types, handler URL and event hooks already match bots.yaml")
        return lines


def wanted_command(bot: Bot) -> dict[str, Any]:
    return {"description": bot.description, "args": bot.args, "set": COMMAND_SET}


async def plan_sync(gateway: StreamGateway, config: Config, handler_url: str | None, *, prune: bool = False,
                    events_url: str | None = None) -> SyncPlan:
    plan = SyncPlan(on_foreign_handler=config.stream.on_foreign_handler)
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
    ours = {bot.command for bot in config.bots}
    if prune:
        plan.prune = sorted(name for name, command in existing.items()
                            if command.get("set") == COMMAND_SET and name not in ours)

    wanted: dict[str, list[str]] = {}
    for bot in config.bots:
        for channel_type in bot.channel_types:
            wanted.setdefault(channel_type, []).append(bot.command)
    # Pruning looks at every channel type: a removed bot may have been enabled anywhere.
    names = sorted(set(wanted) | (set(await gateway.list_channel_types()) if plan.prune else set()))
    for channel_type in names:
        current_commands, longest = await gateway.channel_type(channel_type)
        if longest:
            plan.max_message_length[channel_type] = longest
        kept = [command for command in current_commands if command not in plan.prune]
        after = kept + [command for command in wanted.get(channel_type, []) if command not in kept]
        if after != current_commands:
            plan.channel_types[channel_type] = (current_commands, after)

    if handler_url:
        current_url = await gateway.handler_url()
        if current_url != handler_url:
            plan.handler_url = (current_url, handler_url)
            plan.foreign_handler = current_url or None  # an empty URL belongs to nobody

    if events_url:
        plan.event_hooks = plan_hooks(await gateway.event_hooks(), wanted_hook(config.bots, events_url), events_url,
                                      events_url_of(plan.foreign_handler))
    elif any(bot.needs_events for bot in config.bots):
        log.warning("no events URL: set SLASHBOTS_PUBLIC_URL (or stream.events_url) so Stream can reach /events; "
                    "until then no bot answers mentions, follow-ups or the stop button")
    return plan


def check_plan(plan: SyncPlan) -> None:
    """Refuse a plan that takes another deployment's handler URL, when bots.yaml says to."""
    if plan.foreign_handler is None or plan.handler_url is None:
        return
    wanted = plan.handler_url[1]
    if plan.on_foreign_handler == "refuse":
        raise SyncRefused(
            f"the Stream app's command handler URL is {plan.foreign_handler}, not ours ({wanted}): another deployment "
            "may be using this app. Stop it, or set stream.on_foreign_handler: replace to take the app over"
        )
    if plan.prune:
        raise SyncRefused(
            f"not pruning: the Stream app's command handler URL is {plan.foreign_handler}, not ours ({wanted}), so the "
            f"commands in set {COMMAND_SET!r} may be another deployment's. Sync without --prune first"
        )


async def apply_sync(gateway: StreamGateway, plan: SyncPlan) -> None:
    if plan.users:
        await gateway.upsert_users(plan.users)
    for bot in plan.create:
        command = wanted_command(bot)
        try:
            await gateway.create_command(bot.command, command["description"], command["args"], command["set"])
        except StreamError as exc:
            if not exc.already_exists:
                raise
            # Another instance created it a moment ago; ours may still differ, so write ours.
            await gateway.update_command(bot.command, command["description"], command["args"], command["set"])
    for bot, _ in plan.update:
        command = wanted_command(bot)
        await gateway.update_command(bot.command, command["description"], command["args"], command["set"])
    # After the commands exist: Stream refuses a channel type naming an unknown command. Before
    # deleting any: Stream refuses to delete a command a channel type still names.
    for channel_type, (_, commands) in plan.channel_types.items():
        await gateway.set_channel_type_commands(channel_type, commands)
    for name in plan.prune:
        await gateway.delete_command(name)
    # Before the handler URL: once that is ours, another deployment's hook could no longer be told from anyone's.
    if plan.event_hooks is not None:
        if plan.event_hooks.action == "take_over":
            log.warning("the app's event hook pointed at %s; it now points here, at %s (stream.on_foreign_handler: "
                        "replace)", plan.event_hooks.taken_from, plan.event_hooks.url)
        await gateway.set_event_hooks(plan.event_hooks.after)
    if plan.handler_url is not None:
        if plan.foreign_handler:
            log.warning("the Stream app's command handler URL pointed at %s; it now points here, at %s "
                        "(stream.on_foreign_handler: replace)", plan.foreign_handler, plan.handler_url[1])
        await gateway.set_handler_url(plan.handler_url[1])


async def sync_bots(gateway: StreamGateway, config: Config, handler_url: str | None, *, dry_run: bool = False,
                    prune: bool = False, events_url: str | None = None) -> SyncPlan:
    """Plan, then (unless ``dry_run``) apply, and plan again until Stream holds what bots.yaml says.

    Raises SyncRefused when the plan would take another deployment's app (see ``check_plan``).
    """
    if handler_url is None:
        log.warning("no handler URL: set SLASHBOTS_PUBLIC_URL (or stream.webhook_url) so Stream can reach /webhook")
    first: SyncPlan | None = None
    for _ in range(MAX_ROUNDS):
        plan = await plan_sync(gateway, config, handler_url, prune=prune, events_url=events_url)
        check_plan(plan)
        if dry_run:
            return plan
        first = first or plan
        if not plan.writes and plan is not first:
            return first  # a later round found nothing left: Stream holds what we wrote
        await apply_sync(gateway, plan)
        for line in plan.describe():
            log.info("sync: %s", line)
        if not plan.writes:
            return plan
        # Someone else (another instance starting now) may have written between our read and
        # our write, and a channel type's command list is replaced whole: read it all again.
    raise StreamError(f"sync: Stream kept changing while syncing; gave up after {MAX_ROUNDS} rounds", status=0)


def handler_url_for(config: Config, public_url: str | None) -> str | None:
    """``stream.webhook_url`` if set, else ``$SLASHBOTS_PUBLIC_URL/webhook``, else None."""
    if config.stream.webhook_url:
        return config.stream.webhook_url
    if public_url:
        return public_url.rstrip("/") + "/webhook"
    return None


def events_url_for(config: Config, public_url: str | None) -> str | None:
    """``stream.events_url`` if set, else ``$SLASHBOTS_PUBLIC_URL/events``, else None."""
    if config.stream.events_url:
        return config.stream.events_url
    if public_url:
        return public_url.rstrip("/") + "/events"
    return None
