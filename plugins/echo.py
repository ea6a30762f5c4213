"""The echo provider: the bot answers with whatever followed its command.

It is the smallest complete provider, and the one to copy. A provider is a class built
once per bot from that bot's ``options:`` in bots.yaml, whose ``respond`` method yields
the answer in pieces; slashbots streams them into the channel as the bot.

    bots:
      - command: echo
        provider: echo
        options: {prefix: "🔁 "}     # optional
        ...

``/echo hello`` -> the echo bot says "🔁 hello".
"""

from __future__ import annotations

from typing import Any, AsyncIterator

from slashbots import CommandRequest, Refusal, hookimpl


class Echo:
    def __init__(self, options: dict[str, Any]) -> None:
        # Unknown or mistyped options fail at start-up, pointing at this bot in bots.yaml.
        prefix = options.pop("prefix", "")
        if options:
            raise ValueError(f"unknown option(s): {', '.join(sorted(options))}; echo takes only 'prefix'")
        if not isinstance(prefix, str):
            raise ValueError("'prefix' must be a string")
        self.prefix = prefix

    async def respond(self, request: CommandRequest) -> AsyncIterator[str]:
        if not request.args:
            # A Refusal is shown to the user as the bot's answer.
            raise Refusal(f"Nothing to echo. Try: /{request.command} hello")
        yield self.prefix + request.args


@hookimpl
def register_providers(register):
    register("echo", Echo)
