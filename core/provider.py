"""What a provider is given, what it returns, and how it says no.

A provider answers one bot's commands. ``factory(options)`` builds it once at start-up from
the bot's ``options:`` mapping; ``respond(request)`` is then called once per command and
yields the answer as text pieces, which the relay streams into the channel, and ``ToolUse``
notes while its model calls tools. A factory whose provider can call tools says so with
``supports_tools = True``; only then may its bots list ``tools:`` in bots.yaml.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, AsyncIterator, Awaitable, Callable, Literal, Mapping, Protocol

from slashbots.usage import Usage

if TYPE_CHECKING:
    from slashbots.config import Bot
    from slashbots.tool import Tool


class Refusal(Exception):
    """The provider declines to answer; ``text`` is posted as the bot's answer.

    Use it for answers that are not failures: nothing to do, a question the bot will not
    take, a missing setting the user can fix. If some text was already streamed, the
    refusal is appended to it.
    """

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


class ProviderError(Exception):
    """The provider failed in a way it can explain; ``text`` is shown to the user.

    The text must be safe to show (no secrets, no stack traces). Text already streamed
    stays and is marked as interrupted. Any other exception becomes a short apology and
    its details go to the log only.
    """

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


@dataclass(frozen=True)
class ChatMessage:
    """A message already in the channel (or thread), as a provider sees it."""

    id: str
    user_id: str
    text: str
    command: str | None = None
    args: str = ""
    created_at: str = ""
    mentioned_users: tuple[str, ...] = ()  # the ids of the users it @mentions
    answer_to: str | None = None  # on a bot's answer: the id of the message it answers


async def _no_history(limit: int) -> list[ChatMessage]:
    return []


@dataclass(frozen=True)
class CommandRequest:
    """One message for a bot to answer, as Stream delivered it: a slash command, a mention, a thread follow-up.

    ``text`` is the whole message (``/gpt hi``), ``args`` what the bot is asked (``hi``): what
    follows the command, the text without the mention, or a follow-up's whole text. ``trigger``
    says which. ``parent_id`` is set when the message was in a thread; the reply goes there too.
    ``tools`` are the tools this bot's model may call (its ``tools:`` in bots.yaml), given per
    request so that what is offered can one day depend on who asks.
    """

    command: str
    args: str
    text: str
    user_id: str
    cid: str
    message_id: str
    bot: Bot
    user_name: str | None = None
    parent_id: str | None = None
    trigger: Literal["command", "mention", "thread"] = "command"
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)
    request_id: str = ""
    tools: tuple[Tool, ...] = field(default=(), repr=False, compare=False)
    _history: Callable[[int], Awaitable[list[ChatMessage]]] = field(
        default=_no_history, repr=False, compare=False
    )
    _usage: Usage = field(default_factory=Usage, repr=False, compare=False)

    @property
    def channel_type(self) -> str:
        return self.cid.partition(":")[0]

    @property
    def channel_id(self) -> str:
        return self.cid.partition(":")[2]

    async def history(self, limit: int = 50) -> list[ChatMessage]:
        """The latest ``limit`` messages before this command, oldest first.

        In a thread, the thread's parent and its replies; otherwise the channel. Read from
        Stream on each call, so every instance of the server sees the same history.
        """
        return await self._history(limit)

    def report_usage(self, prompt_tokens: int = 0, completion_tokens: int = 0, *, estimated: bool = False) -> None:
        """Count tokens this answer used: call it once per model call, as each ends; the counts add up.

        They go to the bot's token budgets and to /metrics. ``estimated=True`` says the
        server sent no count and these are a guess (``slashbots.usage.estimate_tokens``).
        """
        self._usage.add(prompt_tokens, completion_tokens, estimated=estimated)


@dataclass(frozen=True)
class ToolUse:
    """Yielded by a provider, between text pieces, as its model calls a tool.

    The chat shows the work: the AI indicator reads ``AI_STATE_EXTERNAL_SOURCES`` until the
    next text, and, if ``show``, the answer gets a line ``🔧 name(arguments)`` where the call
    happened. ``arguments`` are the model's, as a mapping or as the JSON text it sent.
    """

    name: str
    arguments: Mapping[str, Any] | str = ""
    show: bool = True


class Provider(Protocol):
    """Anything with an async-iterator ``respond``; ``aclose`` is optional."""

    def respond(self, request: CommandRequest) -> AsyncIterator[str | ToolUse]: ...


ProviderFactory = Callable[[dict[str, Any]], Provider]
