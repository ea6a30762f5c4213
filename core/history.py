"""What ``request.history()`` reads: the messages before the one being answered, oldest first.

In a channel, its latest messages; in a thread, the parent and its replies. A thread is a
conversation with a bot only together with where it began, which may lie outside it: a
thread under a bot's answer starts with the question that answer answers (a top-level
mention's answer is posted in the channel, and carries ``answer_to``), and a thread under a
question to the bot starts with the answer the bot posted in the channel. Both are read
back into the history, by id, so a follow-up carries the exchange it follows up.

The reply's own messages are left out: a rerun of a reply finds its earlier run's text there.
"""

from __future__ import annotations

import logging
from typing import Awaitable, Callable

from slashbots.leases import reply_message_id
from slashbots.provider import ChatMessage, CommandRequest
from slashbots.stream import StreamError, StreamGateway, chat_message

log = logging.getLogger("slashbots.history")

OWN_MESSAGES = 8  # a reply's messages left out of its own history (more would be over 40,000 characters)


def history_reader(gateway: StreamGateway, request: CommandRequest) -> Callable[[int], Awaitable[list[ChatMessage]]]:
    async def history(limit: int) -> list[ChatMessage]:
        # Worked out here, not when the reader is made: most answers never read their history,
        # and eight uuid5s per command were a tenth of the server's CPU at 600 commands/s.
        job = f"{request.bot.command}:{request.message_id}"  # replies.job_id(request)
        own = {request.message_id, *(reply_message_id(job, index) for index in range(OWN_MESSAGES))}
        messages = await gateway.history(request.cid, request.parent_id, limit + 1 + OWN_MESSAGES)
        if request.parent_id and messages and messages[0].id == request.parent_id:
            messages = await _with_beginning(gateway, request, messages)
        kept = [message for message in messages if message.id not in own and message.text.strip()]
        return kept[-limit:]

    return history


async def _with_beginning(gateway: StreamGateway, request: CommandRequest,
                          thread: list[ChatMessage]) -> list[ChatMessage]:
    """The thread, with the question its parent answers, or the answer its parent got, put back in place."""
    parent, bot = thread[0], request.bot
    try:
        if parent.answer_to:
            question = await gateway.message(parent.answer_to)
            return [chat_message(question), *thread] if question else thread
        if parent.command == bot.command or bot.identity.id in parent.mentioned_users:
            answer = []
            for index in range(OWN_MESSAGES):
                found = await gateway.message(reply_message_id(f"{bot.command}:{parent.id}", index))
                if found is None:
                    break
                answer.append(chat_message(found))
            return [parent, *answer, *thread[1:]]
    except StreamError as exc:
        log.warning("could not read where the thread under %s began (%s); its history starts at the parent",
                    parent.id, exc)
    return thread
