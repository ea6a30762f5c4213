"""A mention or a thread follow-up as the request a provider answers, and as the job payload that rebuilds it.

The provider sees what it sees for a command: ``command`` is the bot's, ``args`` what the bot
is asked (a mention's text without the mention, a follow-up's whole text), ``trigger`` says
which. With Redis, the payload is stored with the job, so another instance can run it again.
"""

from __future__ import annotations

import json
import uuid
from typing import Any, Literal, Mapping

from slashbots.config import Bot
from slashbots.provider import CommandRequest
from slashbots.triggers import without_mention
from slashbots.webhook import rebuild_request as rebuild_command

Trigger = Literal["mention", "thread"]


def conversation_request(bot: Bot, trigger: Trigger, message: Mapping[str, Any], user: Mapping[str, Any],
                         webhook_id: str | None) -> CommandRequest:
    text = message.get("text") or ""
    name = user.get("name")
    return CommandRequest(
        command=bot.command,
        args=without_mention(text, bot) if trigger == "mention" else text.strip(),
        text=text,
        user_id=user["id"],
        user_name=name if isinstance(name, str) else None,
        cid=message["cid"],
        message_id=message["id"],
        parent_id=message.get("parent_id") or None,
        trigger=trigger,
        bot=bot,
        raw=message,
        request_id=(webhook_id or uuid.uuid4().hex)[:12],
    )


def job_payload(request: CommandRequest, user: Mapping[str, Any]) -> str:
    """What a durable job stores to be run again elsewhere."""
    return json.dumps({"bot": request.bot.command, "trigger": request.trigger, "message": dict(request.raw),
                       "user": dict(user), "request_id": request.request_id},
                      ensure_ascii=False, separators=(",", ":"))


def rebuild_request(bots: Mapping[str, Bot], payload: str) -> CommandRequest | None:
    """Any stored job's request, as its ack built it (None if its bot is not in this bots.yaml)."""
    stored = json.loads(payload)
    if "trigger" not in stored:
        return rebuild_command(bots, payload)
    bot = bots.get(stored["bot"])
    if bot is None:
        return None
    return conversation_request(bot, stored["trigger"], stored["message"], stored["user"], stored.get("request_id"))
