"""Providers for conversation tests: one that says what asked it, one that talks until it is stopped.

Loaded by bots.yaml (``plugins: [tests.support.talkers]``) like any third-party plugin.
"""

from __future__ import annotations

import asyncio
from typing import Any, AsyncIterator

from slashbots import CommandRequest, hookimpl

# Message ids whose answer's iterator was closed before it ended: what a stop must do.
CLOSED: set[str] = set()


class Parrot:
    """Answers "<trigger>: <args>", and the earlier messages it was shown, so tests see what asked it and with what."""

    def __init__(self, options: dict[str, Any]) -> None:
        self.history = bool(options.get("history", False))

    async def respond(self, request: CommandRequest) -> AsyncIterator[str]:
        yield f"{request.trigger}: {request.args}"
        if self.history:
            earlier = await request.history(20)
            yield " | " + " / ".join(message.text for message in earlier)


class Ticker:
    """Yields "tick N " every ``delay`` seconds, ``pieces`` times (by default, until it is stopped)."""

    def __init__(self, options: dict[str, Any]) -> None:
        self.delay = float(options.get("delay", 0.05))
        self.pieces = int(options.get("pieces", 10_000))

    async def respond(self, request: CommandRequest) -> AsyncIterator[str]:
        finished = False
        try:
            for index in range(self.pieces):
                if index:
                    await asyncio.sleep(self.delay)
                yield f"tick {index} "
            finished = True
        finally:
            if not finished:
                CLOSED.add(request.message_id)


@hookimpl
def register_providers(register):
    register("parrot", Parrot)
    register("ticker", Ticker)
