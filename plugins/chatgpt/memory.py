"""Conversation memory: earlier exchanges with this bot, rebuilt from the channel's history.

Nothing is stored: each answer reads the messages before it (``request.history``) and pairs
people's messages with the bot's answers. An exchange is a user's message followed by the
bot's answer, whatever asked the bot: a command, a mention, a follow-up in its thread. In a
thread, the history is the thread (with where it began); for a command or a mention in a
channel, the channel's. Choices made here:

- Each message of an answer names the message it answers (``answer_to``): that is the pair.
  The parts of an answer split over several messages are joined back together as they were cut.
- The question is what the bot was asked: a command's ``args``, or the message's text
  without the bot's @mention.
- Answers written before answers named their question pair the old way: with the oldest of
  this bot's commands still waiting for one, so questions asked while an earlier answer was
  still streaming pair up in order; a bot message with no question waiting continues the
  previous answer.
- Everything else in the channel (people talking, other bots) is skipped, and so are
  questions that never got an answer and empty ones (which only got a hint back).
- The lines showing which tools the bot called (``🔧 current_time()``) are left out: they
  record what the bot did, and a model that sees them imitates them instead of calling tools.
- Answers are kept as they were shown, including ones that were interrupted or that
  explain an error: the history carries no status to tell them apart reliably, and an
  error note tells the model that the earlier question went unanswered, which is true.
- Only whole exchanges are kept, newest first, within ``max_turns`` exchanges and
  ``max_chars`` characters of questions and answers together.
"""

from __future__ import annotations

import re
from typing import Sequence

from slashbots import ChatMessage
from slashbots.tool_lines import without_tool_lines


def history_limit(max_turns: int) -> int:
    """How many channel messages to read to find ``max_turns`` exchanges among other chatter."""
    return min(200, 4 * max_turns + 10)


def recent_exchanges(
    history: Sequence[ChatMessage],
    *,
    command: str,
    bot_user_id: str,
    max_turns: int,
    max_chars: int,
    bot_name: str = "",
) -> list[tuple[str, str]]:
    """The latest (question, answer) pairs with this bot, oldest first, within the bounds."""
    if max_turns <= 0:
        return []
    asked: dict[str, str] = {}  # message id -> what it asked
    exchanges: dict[str, list[str]] = {}  # question id -> [question, answer], in the order answered
    waiting: list[str] = []  # this bot's commands with no answer yet (for answers that name none)
    last: str | None = None  # the question whose answer the previous bot message was part of
    for message in history:
        if message.user_id == bot_user_id:
            text = without_tool_lines(message.text)
            if not text.strip():
                continue
            question = message.answer_to if message.answer_to in asked else None
            if question is None and message.answer_to is None:
                question = waiting[0] if waiting else last
            if question is None:
                continue  # an answer to something outside this history
            if question in waiting:
                waiting.remove(question)
            if question in exchanges:
                exchanges[question][1] += text
            else:
                exchanges[question] = [asked[question], text]
            last = question
        elif message.command is None or message.command == command:
            # An empty question still takes its answer (the bot asked for a question), so that
            # answer pairs with it and is then dropped, rather than with the next question.
            if message.command == command:
                asked[message.id] = message.args.strip()
                waiting.append(message.id)
                last = None
            else:
                asked[message.id] = _without_mention(message.text, bot_name, bot_user_id)

    kept: list[tuple[str, str]] = []
    total = 0
    answered = [(question, answer) for question, answer in exchanges.values() if question]
    for question, answer in reversed(answered[-max_turns:]):
        total += len(question) + len(answer)
        if total > max_chars:
            break
        kept.append((question, answer))
    kept.reverse()
    return kept


def _without_mention(text: str, *names: str) -> str:
    """What a message asks the bot, without its @mention (``@<name>`` or ``@<id>``, as composers write it)."""
    names = tuple(name for name in names if name)
    if not names:
        return text.strip()
    pattern = r"(?<!\w)@(?:" + "|".join(re.escape(name) for name in sorted(names, key=len, reverse=True)) + r")(?!\w)[,:]?[ \t]*"
    return re.sub(pattern, "", text, flags=re.IGNORECASE).strip()


def as_messages(exchanges: Sequence[tuple[str, str]]) -> list[dict[str, str]]:
    """Chat Completions messages for the exchanges: user, assistant, user, assistant, ..."""
    messages: list[dict[str, str]] = []
    for question, answer in exchanges:
        messages.append({"role": "user", "content": question})
        messages.append({"role": "assistant", "content": answer})
    return messages
