"""Reply jobs: run a bot's provider for one command and relay its answer into the channel.

Jobs run in the background after the webhook has answered Stream. The set of running
jobs holds strong references (the event loop keeps only weak ones) and is drained on
shutdown, so no accepted command ends without a final message.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from typing import TYPE_CHECKING, Any, Mapping

from slashbots import logs
from slashbots.capacity import LoopLag
from slashbots.metrics import Metrics
from slashbots.provider import ChatMessage, CommandRequest, Provider, ProviderError, Refusal, ToolUse
from slashbots.relay import Pacing, Relay
from slashbots.stream import StreamGateway
from slashbots.tool_lines import tool_line

if TYPE_CHECKING:
    from slashbots.tool import Tool

log = logging.getLogger("slashbots.replies")

DEFAULT_MAX_MESSAGE_LENGTH = 5000
LAST_RESORT_APOLOGY = "Sorry, {name} could not answer. The details are in the server log."
SHUTDOWN_NOTE = "The server shut down before the answer was finished. Please ask again."


class Replies:
    """Starts, tracks and drains reply jobs."""

    def __init__(
        self,
        gateway: StreamGateway,
        providers: Mapping[str, Provider],
        hook: Any,
        *,
        max_in_flight: int = 500,
        max_lag: float = 0.25,
        pacing: Pacing | None = None,
        metrics: Metrics | None = None,
        tools: Mapping[str, tuple[Tool, ...]] | None = None,
    ) -> None:
        self.metrics = metrics
        self.gateway = gateway
        self.providers = providers
        self.tools = tools or {}  # command -> the tools its bot may call
        self.hook = hook
        self.max_in_flight = max_in_flight
        self.max_lag = max_lag
        self.lag = LoopLag()  # its watch() runs for the app's lifetime (see core/app.py)
        self.pacing = pacing  # Stream's update budget, shared by every reply (and, with Redis, every instance)
        self.accepting = True
        # Stream's default; channel types that set less are filled in by the start-up sync.
        self.max_message_length: dict[str, int] = {}
        # Each running reply job, with its relay once it has one (for the shutdown log).
        self.running: dict[asyncio.Task[None], tuple[CommandRequest, list[Relay]]] = {}
        self.finished = 0

    @property
    def full(self) -> bool:
        """No room for another reply: too many running, or the event loop already running late."""
        return len(self.running) >= self.max_in_flight or self.lag.seconds > self.max_lag

    def submit(self, request: CommandRequest) -> None:
        """Start the reply in the background and return at once (called from the webhook's ack)."""
        request = dataclasses.replace(request, _history=self._history_reader(request),
                                      tools=self.tools.get(request.bot.command, ()))
        relays: list[Relay] = []
        task = asyncio.create_task(self.run(request, relays), name=f"reply {request.message_id}")
        self.running[task] = (request, relays)
        task.add_done_callback(self._done)
        if self.metrics is not None:
            self.metrics.replies_in_flight.set(len(self.running))

    def _done(self, task: asyncio.Task[None]) -> None:
        self.running.pop(task, None)
        if self.metrics is not None:
            self.metrics.replies_in_flight.set(len(self.running))

    async def drain(self, finish_by: float, give_up_at: float) -> None:
        """Let running replies finish until ``finish_by``, then end the rest saying so.

        Both are ``time.monotonic()`` deadlines. Ending a reply honestly means writing its
        note to Stream, which may be failing too: whatever has not ended by ``give_up_at`` is
        abandoned, and named in the log, so shutdown keeps its deadline whatever Stream does.
        """
        self.accepting = False
        if not self.running:
            return
        log.info("waiting up to %.1fs for %d running replies", max(finish_by - time.monotonic(), 0), len(self.running))
        _, pending = await asyncio.wait(set(self.running), timeout=max(finish_by - time.monotonic(), 0))
        if not pending:
            return
        for task in pending:
            task.cancel()  # each writes its "interrupted" note (replies.run)
        _, stuck = await asyncio.wait(pending, timeout=max(give_up_at - time.monotonic(), 0))
        if not stuck:
            return
        described = []
        for task in stuck:
            request, relays = self.running.get(task, (None, []))
            task.cancel()  # again: this time it interrupts the note's own writes
            if request is not None:
                ids = ", ".join(sorted(relays[0].ids.values())) if relays and relays[0].ids else "none posted"
                described.append(f"/{request.bot.command} in {request.cid} (command {request.message_id}, reply {ids})")
        log.error("%d replies could not be ended honestly before shutdown (Stream did not take their last write); "
                  "they may still show as generating: %s", len(stuck), "; ".join(sorted(described)))
        if self.metrics is not None:
            self.metrics.replies_abandoned.inc(len(stuck))
        await asyncio.wait(stuck, timeout=0.5)  # let the cancellations unwind; nothing in them waits on the network

    async def run(self, request: CommandRequest, relays: list[Relay] | None = None) -> None:
        logs.request_id.set(request.request_id)  # this task's context: every line it logs carries the id
        bot = request.bot
        started = time.monotonic()
        relay = Relay(
            self.gateway,
            request.cid,
            bot.identity.id,
            parent_id=request.parent_id,
            streaming=bot.streaming,
            interval=bot.update_interval_ms / 1000,
            max_length=self.max_message_length.get(request.channel_type, DEFAULT_MAX_MESSAGE_LENGTH),
            pacing=self.pacing,
        )
        if relays is not None:
            relays.append(relay)
        relay.open()
        outcome = "ok"
        try:
            async for piece in self.providers[bot.command].respond(request):
                if isinstance(piece, ToolUse):
                    relay.tool_use(tool_line(piece) if piece.show else None)
                elif isinstance(piece, str):
                    relay.append(piece)
                else:
                    raise TypeError(f"provider yielded {type(piece).__name__}, expected str or ToolUse")
            if not relay.answered:
                relay.append("(The bot had nothing to say.)")
        except Refusal as refusal:
            outcome = "refused"
            relay.append(_after(relay.text, refusal.text))
        except ProviderError as error:
            outcome = "failed"
            relay.append(_interrupted(relay.text, error.text))
        except asyncio.CancelledError:
            outcome = "interrupted"
            relay.append(_interrupted(relay.text, SHUTDOWN_NOTE))
            await relay.close(failed=True)
            self._record(request, outcome, started, relay)
            raise
        except Exception as error:  # any provider bug must still end in a message
            outcome = "crashed"
            log.exception("/%s provider %r failed for message %s", bot.command, bot.provider, request.message_id)
            relay.append(_interrupted(relay.text, self._apology(request, error)))
        await relay.close(failed=outcome in ("failed", "crashed"))
        self._record(request, outcome, started, relay)

    def _record(self, request: CommandRequest, outcome: str, started: float, relay: Relay) -> None:
        """The one log line per command, and its metrics."""
        self.finished += 1
        elapsed = time.monotonic() - started
        command = request.bot.command
        log.info(
            "/%s in %s for %s: %s, %d chars in %d message(s), %d writes, %.2fs",
            command, request.cid, request.user_id, outcome, len(relay.text), len(relay.ids), relay.writes, elapsed,
            extra={"fields": {"command": command, "cid": request.cid, "user_id": request.user_id, "outcome": outcome,
                              "chars": len(relay.text), "messages": len(relay.ids), "writes": relay.writes,
                              "seconds": round(elapsed, 3)}},
        )
        if self.metrics is None:
            return
        self.metrics.reply_seconds.labels(command, outcome).observe(elapsed)
        if relay.first_text_at is not None:
            self.metrics.first_text_seconds.labels(command).observe(relay.first_text_at - started)
        if outcome != "ok":
            self.metrics.provider_errors.labels(command, outcome).inc()

    def _apology(self, request: CommandRequest, error: BaseException) -> str:
        try:
            text = self.hook.error_reply(request=request, error=error)
        except Exception:  # a broken hook must not cost the user their final message
            log.exception("an error_reply hook failed")
            text = None
        # The words come from plugins (the default is plugins/default_error_reply.py); this is
        # for when they fail or a deployment has unregistered them all.
        return str(text) if text else LAST_RESORT_APOLOGY.format(name=request.bot.identity.name)

    def _history_reader(self, request: CommandRequest) -> Any:
        async def history(limit: int) -> list[ChatMessage]:
            messages = await self.gateway.history(request.cid, request.parent_id, limit + 1)
            # Skip this command itself and empty messages (such as this reply's own placeholder).
            kept = [message for message in messages if message.id != request.message_id and message.text.strip()]
            return kept[-limit:]

        return history


def _after(text: str, addition: str) -> str:
    return f"\n\n{addition}" if text.strip() else addition


def _interrupted(text: str, reason: str) -> str:
    return f"\n\n⚠️ Answer interrupted: {reason}" if text.strip() else f"⚠️ {reason}"
