"""Providers that write at a set pace, the way models do: for tests and benchmarks of streaming.

A plugin like any third party's, loaded only when named: ``plugins: [slashbots.paced_writers]``
in bots.yaml. ``provider: writer`` writes pieces ``delay`` apart; ``provider: signed`` also
names the process in each piece, so a test can tell apart two instances' runs of one reply.
"""

from __future__ import annotations

import asyncio
import os
import random
from typing import Any, AsyncIterator

from slashbots import CommandRequest, ProviderError, hookimpl


class Writer:
    """Yields ``pieces`` copies of ``piece`` (or ``text`` cut into ``chunk``-sized pieces), ``delay`` apart.

    ``{args}`` in the text is replaced by the command's arguments, so each answer can be told
    apart; ``fail_rate`` makes that share of answers fail halfway (seeded, so runs repeat).
    """

    def __init__(self, options: dict[str, Any]) -> None:
        self.first_delay = float(options.get("first_delay", 0.0))
        self.delay = float(options.get("delay", 0.0))
        self.fail_after = options.get("fail_after")
        self.fail_rate = float(options.get("fail_rate", 0.0))
        self.random = random.Random(0)
        if "text" in options:
            text, chunk = str(options["text"]), int(options.get("chunk", 7))
            self.pieces = [text[i : i + chunk] for i in range(0, len(text), chunk)]
        else:
            self.pieces = [str(options.get("piece", "word "))] * int(options.get("pieces", 10))

    async def respond(self, request: CommandRequest) -> AsyncIterator[str]:
        fail_after = self.fail_after
        if self.random.random() < self.fail_rate:
            fail_after = len(self.pieces) // 2
        await asyncio.sleep(self.first_delay)
        for index, piece in enumerate(self.pieces):
            if index and self.delay:
                await asyncio.sleep(self.delay)
            if fail_after is not None and index == int(fail_after):
                raise ProviderError("the model stopped answering.")
            yield piece.replace("{args}", request.args)


class Signed:
    """Like Writer, but every piece names the process that wrote it: tells two instances' runs apart."""

    def __init__(self, options: dict[str, Any]) -> None:
        self.pieces = int(options.get("pieces", 40))
        self.delay = float(options.get("delay", 0.05))

    async def respond(self, request: CommandRequest) -> AsyncIterator[str]:
        for index in range(self.pieces):
            if index:
                await asyncio.sleep(self.delay)
            yield f"{os.getpid()}:{index} "


@hookimpl
def register_providers(register):
    register("writer", Writer)
    register("signed", Signed)
