"""Helpers for the ChatGPT provider tests: building a command and collecting an answer."""

from __future__ import annotations

from typing import Any, Callable, Sequence

from slashbots import ChatMessage, CommandRequest, ToolUse
from slashbots.config import Bot, Identity
from slashbots.plugins.chatgpt import ChatGPT
from slashbots.tool import Tool

TEST_KEY = "sk-proj-standinKEY0123456789abcdefWXYZ"
BOT = Bot(
    command="gpt",
    description="Ask GPT",
    provider="chatgpt",
    channel_types=("messaging",),
    identity=Identity(id="chatgpt-bot", name="ChatGPT bot"),
)


def command(args: str, history: list[ChatMessage] | None = None, bot: Bot = BOT,
            tools: Sequence[Callable[..., Any]] = ()) -> CommandRequest:
    """A command as the webhook would build it; ``tools`` are functions, offered to the model as tools."""
    async def read_history(limit: int) -> list[ChatMessage]:
        read_history.limits.append(limit)  # type: ignore[attr-defined]
        return list(history or [])[-limit:]

    read_history.limits = []  # type: ignore[attr-defined]
    return CommandRequest(
        command=bot.command,
        args=args,
        text=f"/{bot.command} {args}",
        user_id="alice",
        cid="messaging:general",
        message_id="msg-now",
        bot=bot,
        _history=read_history,
        tools=tuple(Tool.from_function(function) for function in tools),
    )


async def answer(provider: ChatGPT, request: CommandRequest) -> tuple[list[str | ToolUse], BaseException | None]:
    """Everything the provider yielded, and the exception it ended with (or None)."""
    pieces: list[str | ToolUse] = []
    try:
        async for piece in provider.respond(request):
            pieces.append(piece)
    except Exception as exc:  # the test inspects it
        return pieces, exc
    return pieces, None
