"""The ``chatgpt`` provider: moderation first, then the conversation, streamed as it is written."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any, AsyncIterator, Mapping

from slashbots import CommandRequest, Refusal, ToolUse
from slashbots.plugins.chatgpt.failures import APIFailure
from slashbots.plugins.chatgpt.memory import as_messages, history_limit, recent_exchanges
from slashbots.plugins.chatgpt.moderation import refusal_text
from slashbots.plugins.chatgpt.openai_api import OpenAIClient
from slashbots.plugins.chatgpt.options import Settings, parse_options
from slashbots.plugins.chatgpt.tool_rounds import answer

log = logging.getLogger("slashbots.chatgpt")


class ChatGPT:
    """Answers a bot's commands with an OpenAI chat model (or any OpenAI-compatible server).

    Built once per bot from its ``options:`` (a bad option raises ``ValueError``); holds one
    pooled HTTP client, which ``aclose()`` closes at shutdown. Its model may call the tools
    the bot lists in bots.yaml (``request.tools``).
    """

    supports_tools = True
    # Each question costs tokens: a bot with no rate_limit of its own in bots.yaml gets this one.
    default_rate_limit = {"per_user": "10/minute"}

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        self.settings: Settings = parse_options(options)
        self.api = OpenAIClient(self.settings)

    @property
    def tokens_per_answer(self) -> int | None:
        """What a token budget reserves per answer: the completion's cap when the options set one."""
        return self.settings.max_completion_tokens

    async def aclose(self) -> None:
        await self.api.aclose()

    async def respond(self, request: CommandRequest) -> AsyncIterator[str | ToolUse]:
        """Moderate the question, then stream the model's answer as text pieces, and its tool calls."""
        question = request.args.strip()
        if not question:
            asking = f"/{request.command}" if request.trigger == "command" else f"@{request.bot.identity.name}"
            raise Refusal(f"Ask me something after {asking}, for example: {asking} what is a vector clock?")
        self._check_chat_key()
        # Reading the history (a round trip to Stream) overlaps the moderation call; the
        # model itself is only called once moderation has passed.
        memory = asyncio.ensure_future(self._exchanges(request))
        try:
            if self.settings.moderation:
                await self._moderate(request, question)
            exchanges = await memory
        finally:
            memory.cancel()  # a no-op once done; stops the read when moderation said no

        messages: list[dict[str, Any]] = []
        if self.settings.system_prompt:
            messages.append({"role": "system", "content": self.settings.system_prompt})
        messages += as_messages(exchanges)
        messages.append({"role": "user", "content": question})
        log.debug("/%s: asking %s with %d earlier exchanges and %d tools", request.command, self.settings.model,
                  len(exchanges), len(request.tools))
        # Closing the stream at once when the caller stops early frees the connection now,
        # not whenever the generator happens to be collected.
        async with contextlib.aclosing(answer(self.api, self.settings, request, messages)) as pieces:
            async for piece in pieces:
                yield piece

    def _check_chat_key(self) -> None:
        s = self.settings
        if s.api_key or not s.chat_key_required:
            return
        if s.is_azure:
            raise Refusal(
                "The ChatGPT bot needs an Azure OpenAI API key before it can answer. Whoever runs the bot "
                "can set the AZURE_OPENAI_API_KEY environment variable, or `api_key` in the bot's options "
                "in bots.yaml."
            )
        raise Refusal(
            "The ChatGPT bot needs an OpenAI API key before it can answer. Whoever runs the bot can set "
            "the OPENAI_API_KEY environment variable, or `api_key` in the bot's options in bots.yaml."
        )

    async def _moderate(self, request: CommandRequest, question: str) -> None:
        """Raise ``Refusal`` if moderation flags the question; fail closed unless told otherwise."""
        s = self.settings
        if s.moderation_key_required and not s.moderation_api_key:
            if not s.moderation_fail_open:
                raise Refusal(
                    "The ChatGPT bot needs an OpenAI API key for content moderation before it can answer. "
                    "Whoever runs the bot can set the OPENAI_API_KEY environment variable, or "
                    "`moderation_api_key` in the bot's options in bots.yaml."
                )
            log.warning("/%s: no moderation key; answering unmoderated (moderation_fail_open)", request.command)
            return
        try:
            verdict = await self.api.moderate(question)
        except APIFailure as failure:
            if not s.moderation_fail_open:
                raise
            log.warning(
                "/%s: moderation failed (%s); answering unmoderated (moderation_fail_open)",
                request.command, failure.reason,
            )
            return
        if verdict.flagged:
            log.info(
                "/%s: moderation flagged message %s from %s: %s",
                request.command, request.message_id, request.user_id, ", ".join(verdict.categories) or "-",
            )
            raise Refusal(refusal_text(verdict.categories))

    async def _exchanges(self, request: CommandRequest) -> list[tuple[str, str]]:
        turns = self.settings.memory_turns
        if turns == 0:
            return []
        try:
            history = await request.history(history_limit(turns))
        except Exception:
            # Memory makes answers better but is not worth failing the answer for.
            log.warning("/%s: could not read the history; answering without memory", request.command, exc_info=True)
            return []
        return recent_exchanges(
            history,
            command=request.bot.command,
            bot_user_id=request.bot.identity.id,
            max_turns=turns,
            max_chars=self.settings.memory_chars,
            bot_name=request.bot.identity.name,
        )
