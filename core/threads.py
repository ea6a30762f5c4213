"""Which threads each bot answered in: remembered in shared state, checked against Stream only when unknown.

A bot with ``threads: true`` answers a reply, with no command or mention needed, in a thread
it has answered in: one whose parent is the bot's own answer, or a command or mention it
answered, or one it has answered inside. Every reply job of such a bot records the parents
that make it so (``answering``), for ``server.thread_memory_days``, in shared state, so any
instance knows at the cost of one Redis read in the ack.

A reply whose parent is not known there (remembered too long ago, recorded while Redis was
away, or a thread the bots never saw) costs one read of Stream: the parent message tells
whether it was the bot's, or a command or mention of it. What that read finds is recorded
(or, for a thread that is no bot's, remembered here for a while), so it is paid once per
thread, not once per reply.
"""

from __future__ import annotations

import logging
from typing import Any, Collection, Mapping

from slashbots.config import Bot
from slashbots.provider import CommandRequest
from slashbots.shared import SharedState
from slashbots.shared.expiring import Expiring
from slashbots.stream import StreamError, StreamGateway
from slashbots.triggers import mentions_of

log = logging.getLogger("slashbots.threads")

DAY = 86_400.0
NOT_A_BOT_THREAD_FOR = 600.0  # seconds a thread found to be no bot's is not read again


class ThreadMemory:
    def __init__(self, shared: SharedState, gateway: StreamGateway, days: float) -> None:
        self.shared = shared
        self.gateway = gateway
        self.ttl = days * DAY
        self.nobodys: Expiring[bool] = Expiring(capacity=20_000)

    async def answering(self, request: CommandRequest, first_reply_id: str) -> None:
        """A reply job has started: its thread, or the question and the answer that may start one, are the bot's."""
        parents = [request.parent_id] if request.parent_id else [request.message_id, first_reply_id]
        await self.shared.remember_thread(parents, request.bot.command, self.ttl)

    async def known(self, parent_id: str, bots: Collection[Bot]) -> tuple[list[Bot], bool]:
        """The ``bots`` shared state knows answered in the thread, and whether it knew the thread at all."""
        answered = await self.shared.thread_bots(parent_id)
        if not answered:
            return [], False
        return [bot for bot in bots if bot.command in answered], True

    async def from_stream(self, parent_id: str, bots: Collection[Bot]) -> list[Bot]:
        """The ``bots`` whose thread this is, by reading its parent from Stream (once per thread, see above)."""
        if self.nobodys.get(parent_id):
            return []
        try:
            parent = await self.gateway.message(parent_id)
        except StreamError as exc:
            log.warning("could not read the parent of a thread reply (%s); not answering it", exc)
            return []
        found = [bot for bot in bots if parent is not None and _started_by(bot, parent)]
        if found:
            for bot in found:
                await self.shared.remember_thread([parent_id], bot.command, self.ttl)
        else:
            self.nobodys.set(parent_id, True, NOT_A_BOT_THREAD_FOR)
        return found


def _started_by(bot: Bot, parent: Mapping[str, Any]) -> bool:
    """Whether a thread under ``parent`` is one ``bot`` answered in: its answer, a command of it, or a mention it takes."""
    author = (parent.get("user") or {}).get("id")
    return (author == bot.identity.id or parent.get("command") == bot.command
            or (bot.mentions and mentions_of(bot, parent)))
