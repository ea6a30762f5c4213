"""The stop button: from an ``ai_indicator.stop`` event in a channel to the replies running there.

stream-chat's ``channel.stopAIResponse()`` sends only the event's type, on the channel, so a
stop names a channel, not a reply: it stops every reply that bots with ``stop: true`` are
writing in that channel; with a ``message_id`` (the question's, or one of the reply's
messages), only that reply. Any member of the channel may stop, as in Stream's own UI.

Replies running here stop at once. With Redis, a reply may run on any instance: shared state
keeps the jobs of each channel, marks them stopped (so they are never run again, even by an
instance that claims them after their own died) and tells every instance over pub/sub, which
is at-most-once; an instance that misses it finds the mark at its next lease renewal or
fence check, within a second.
"""

from __future__ import annotations

import logging
from typing import Sequence

from slashbots.config import Bot
from slashbots.history import OWN_MESSAGES
from slashbots.leases import reply_message_id
from slashbots.replies import Replies
from slashbots.shared import SharedState

log = logging.getLogger("slashbots.stops")


class Stops:
    def __init__(self, bots: Sequence[Bot], replies: Replies, shared: SharedState) -> None:
        self.stoppable = tuple(bot for bot in bots if bot.stop)
        self.replies = replies
        self.shared = shared

    def commands_in(self, cid: str) -> set[str]:
        """The bots that honour a stop in channel ``cid`` (by its channel type)."""
        channel_type = cid.partition(":")[0]
        return {bot.command for bot in self.stoppable if channel_type in bot.channel_types}

    async def stop(self, cid: str, message_id: str | None = None) -> None:
        commands = self.commands_in(cid)
        here = self.replies.stop(cid, commands, message_id)
        elsewhere = [job_id for job_id in await self.shared.running_in(cid)
                     if job_id.partition(":")[0] in commands and (message_id is None or _shows(job_id, message_id))]
        await self.shared.stop(elsewhere)  # those running here too: marked, so they are never run again
        log.info("stop in %s%s: %d replies stopped here, %d asked to stop through shared state", cid,
                 f" for message {message_id}" if message_id else "", len(here), len(set(elsewhere) - set(here)))


def _shows(job_id: str, message_id: str) -> bool:
    """Whether the reply job ``job_id`` ("command:question id") is about, or writes, message ``message_id``."""
    return job_id.partition(":")[2] == message_id or any(
        reply_message_id(job_id, index) == message_id for index in range(OWN_MESSAGES))
