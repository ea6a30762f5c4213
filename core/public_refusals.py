"""Saying no to a mention or a thread follow-up, where everyone can read it.

A command turned away gets an error only its sender sees, in the webhook's answer. A
mention or a follow-up arrives on the event webhook, whose answer Stream ignores, and a bot
cannot post a message only one user sees. So the bot says it in public, in the message's
thread, at most once per user per minute (across instances, through shared state); every
other refusal is only counted, in ``slashbots_public_refusals_total{told="no"}``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Coroutine

from slashbots.metrics import Metrics
from slashbots.provider import CommandRequest
from slashbots.shared import SharedState
from slashbots.stream import StreamError, StreamGateway

log = logging.getLogger("slashbots.refusals")

ONCE_PER = 60.0  # seconds: at most one public refusal per user in this long

WORDS = {
    "busy": "I'm busy right now. Please ask again shortly.",
    "restarting": "I'm restarting. Please ask again in a few seconds.",
    "rate_limited": "You're asking faster than I may answer. Please try again in {wait} seconds.",
}


class PublicRefusals:
    def __init__(self, gateway: StreamGateway, shared: SharedState, metrics: Metrics | None = None) -> None:
        self.gateway = gateway
        self.shared = shared
        self.metrics = metrics
        self._sending: set[asyncio.Task[None]] = set()

    def refuse(self, request: CommandRequest, reason: str, *, wait: float = 0.0, text: str | None = None) -> None:
        """Turn ``request`` away for ``reason`` (``wait``: seconds until a rate limit allows it): in the
        background, say so in public if this user has heard no refusal lately. The words are WORDS' for
        this instance's own reasons, else ``text`` (the admission's: denied, over budget)."""
        words = WORDS[reason].format(wait=max(round(wait), 1)) if reason in WORDS else text or "I can't answer that now."
        self._background(self._refuse(request, reason, words))

    async def _refuse(self, request: CommandRequest, reason: str, text: str) -> None:
        told = await self.shared.first_in(f"refusal:{request.user_id}", ONCE_PER)
        if self.metrics is not None:
            self.metrics.public_refusals.labels(request.bot.command, reason, "yes" if told else "no").inc()
        log.info("%s of %s from %s in %s refused: %s%s", request.trigger, request.bot.command, request.user_id,
                 request.cid, reason, "" if told else " (said already within the minute: not said again)")
        if not told:
            return
        fields: dict[str, Any] = {"text": text, "ai_generated": True,
                                  # In the thread the message is in, or the one it starts.
                                  "parent_id": request.parent_id or request.message_id}
        try:
            await self.gateway.send_message(request.cid, request.bot.identity.id, fields)
        except StreamError as exc:
            log.warning("could not say a refusal in %s: %s", request.cid, exc)

    def _background(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    @property
    def pending(self) -> int:
        return len(self._sending)

