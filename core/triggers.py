"""Which of our bots a new message asks for: the cheap "not for us" test every message of the app goes through.

Once Stream sends ``message.new`` to /events, every message of the whole app arrives, so
this runs on all of them and touches nothing but the message itself: no network, no
shared state. What it leaves are the bots the message mentions (those with ``mentions``)
and, for a reply in a thread, the bots that may have answered in that thread (those with
``threads``), for slashbots.threads to settle.

Never answered, whatever they say: messages by any of our bots (so two bots that mention
each other cannot loop), messages marked ``ai_generated`` (another AI bot's), messages
that are themselves one of our commands (the command webhook answers those: one answer per
message), and messages that are not ordinary: system, error, ephemeral, deleted, silent.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from slashbots.config import Bot

ORDINARY = frozenset({"regular", "reply"})


@dataclass(frozen=True)
class Asked:
    """What a new message asks of our bots: the bots it mentions, and those whose thread it may be in."""

    outcome: str  # "asked", or why the message is not for us
    message: Mapping[str, Any] = field(default_factory=dict)
    user: Mapping[str, Any] = field(default_factory=dict)
    mentioned: tuple[Bot, ...] = ()
    maybe_thread: tuple[Bot, ...] = ()  # a reply in a thread: bots with `threads` not mentioned in it


class Triggers:
    """The bots.yaml side of the test, worked out once: who our bots are, and what each listens to."""

    def __init__(self, bots: Sequence[Bot]) -> None:
        self.bot_ids = frozenset(bot.identity.id for bot in bots)
        self.commands = frozenset(bot.command for bot in bots)
        # Config guarantees one bot with `mentions` per identity.
        self.by_mention = {bot.identity.id: bot for bot in bots if bot.mentions}
        self.threaded = tuple(bot for bot in bots if bot.threads)

    @property
    def listening(self) -> bool:
        return bool(self.by_mention or self.threaded)

    def asked(self, event: Mapping[str, Any]) -> Asked:
        """What a ``message.new`` event asks of our bots."""
        message = event.get("message")
        if not isinstance(message, dict) or not isinstance(message.get("id"), str) or not message["id"]:
            return Asked("not_a_message")
        user = event.get("user") or message.get("user")
        cid = message.get("cid") or event.get("cid")
        if not isinstance(user, dict) or not isinstance(user.get("id"), str) or not isinstance(cid, str) or ":" not in cid:
            return Asked("not_a_message")
        if user["id"] in self.bot_ids:
            return Asked("from_a_bot")
        if message.get("ai_generated"):
            return Asked("ai_generated")
        if message.get("command") in self.commands:
            return Asked("a_command")
        if message.get("type", "regular") not in ORDINARY or message.get("silent") or not isinstance(
                message.get("text") or "", str):
            return Asked("not_for_us")
        channel_type = cid.partition(":")[0]
        mentioned = tuple(bot for bot in (self.by_mention.get(user_id) for user_id in _mentioned_ids(message))
                          if bot is not None and channel_type in bot.channel_types)
        maybe_thread: tuple[Bot, ...] = ()
        if message.get("parent_id"):
            maybe_thread = tuple(bot for bot in self.threaded
                                 if channel_type in bot.channel_types and bot not in mentioned)
        if not mentioned and not maybe_thread:
            return Asked("not_for_us")
        return Asked("asked", {**message, "cid": cid}, user, mentioned, maybe_thread)


def _mentioned_ids(message: Mapping[str, Any]) -> list[str]:
    """``mentioned_users`` holds ids when a message is sent and user objects when Stream sends it on."""
    found = []
    for entry in message.get("mentioned_users") or ():
        user_id = entry.get("id") if isinstance(entry, dict) else entry
        if isinstance(user_id, str):
            found.append(user_id)
    return found


def mentions_of(bot: Bot, message: Mapping[str, Any]) -> bool:
    """Whether ``message`` mentions ``bot``'s user."""
    return bot.identity.id in _mentioned_ids(message)


def without_mention(text: str, bot: Bot) -> str:
    """``text`` with the bot's @mention taken out (as a composer inserts it: ``@<name or id>``)."""
    names = sorted({bot.identity.name, bot.identity.id}, key=len, reverse=True)
    pattern = r"(?<!\w)@(?:" + "|".join(re.escape(name) for name in names) + r")(?!\w)[,:]?[ \t]*"
    return re.sub(pattern, "", text, flags=re.IGNORECASE).strip()
