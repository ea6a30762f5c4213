"""Conversation memory: earlier exchanges with this bot, rebuilt from the channel's history.

Nothing is stored: each command reads the messages before it (``request.history``) and
pairs the bot's commands with the bot's replies. Choices made here:

- A message carrying the bot's command is a question (its ``args``); a later message
  from the bot's own user is the answer to the oldest question still waiting, so
  questions asked while an earlier answer was still streaming pair up in order.
- A bot message with no question waiting continues the previous answer: the relay
  splits answers longer than Stream's message limit into several messages.
- Everything else in the channel (people talking, other bots) is skipped, and so are
  questions that never got an answer and empty commands (which only got a hint back).
  The parts of a split answer are joined back together as they were cut.
- The lines showing which tools the bot called (``🔧 current_time()``) are left out: they
  record what the bot did, and a model that sees them imitates them instead of calling tools.
- Answers are kept as they were shown, including ones that were interrupted or that
  explain an error: the history carries no status to tell them apart reliably, and an
  error note tells the model that the earlier question went unanswered, which is true.
- Only whole exchanges are kept, newest first, within ``max_turns`` exchanges and
  ``max_chars`` characters of questions and answers together.
"""

from __future__ import annotations

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
) -> list[tuple[str, str]]:
    """The latest (question, answer) pairs with this bot, oldest first, within the bounds."""
    if max_turns <= 0:
        return []
    exchanges: list[list[str]] = []
    waiting: list[str] = []
    last_was_answer = False
    for message in history:
        if message.command == command and message.user_id != bot_user_id:
            # An empty question still takes its answer (the bot asked for a question), so
            # that answer pairs with it and is then dropped, rather than pairing with the
            # next question or extending the previous answer.
            waiting.append(message.args.strip())
            last_was_answer = False
        elif message.user_id == bot_user_id and (text := without_tool_lines(message.text)).strip():
            if waiting:
                exchanges.append([waiting.pop(0), text])
                last_was_answer = True
            elif last_was_answer:
                exchanges[-1][1] += text

    kept: list[tuple[str, str]] = []
    total = 0
    answered = [(question, answer) for question, answer in exchanges if question]
    for question, answer in reversed(answered[-max_turns:]):
        total += len(question) + len(answer)
        if total > max_chars:
            break
        kept.append((question, answer))
    kept.reverse()
    return kept


def as_messages(exchanges: Sequence[tuple[str, str]]) -> list[dict[str, str]]:
    """Chat Completions messages for the exchanges: user, assistant, user, assistant, ..."""
    messages: list[dict[str, str]] = []
    for question, answer in exchanges:
        messages.append({"role": "user", "content": question})
        messages.append({"role": "assistant", "content": answer})
    return messages
