"""The ChatGPT provider plugin: OpenAI moderation, then a streamed Chat Completions answer.

Registered like any third-party plugin. The modules, one idea each:

- ``options``: the bot's ``options:`` checked and defaulted (``Settings``);
- ``sse``: bytes to server-sent events;
- ``completions``: Chat Completions stream events to text, errors and how the answer ended;
- ``tool_calls``: streamed tool-call fragments put back together into calls;
- ``failures``: a failed call (``APIFailure``) and an error body sorted into a reason;
- ``wording``: what users are told when a call fails or an answer ends early;
- ``openai_api``: the HTTP calls and retries;
- ``moderation``: what a flagged request is told;
- ``memory``: earlier exchanges rebuilt from the channel's history;
- ``tool_rounds``: the answer, calling tools until the model has what it needs;
- ``provider``: the ``ChatGPT`` provider that puts them together.
"""

from __future__ import annotations

from typing import Callable

from slashbots import hookimpl
from slashbots.plugins.chatgpt.provider import ChatGPT

__all__ = ["ChatGPT"]


@hookimpl
def register_providers(register: Callable[..., None]) -> None:
    register("chatgpt", ChatGPT)
