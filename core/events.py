"""POST /events: Stream's event webhook, for mentions, thread follow-ups and the stop button.

Verified like /webhook (slashbots.signed_request), then answered 2xx at once: Stream ignores
what an event webhook answers, and waits for nothing but the status. Once subscribed to
``message.new``, every message of the whole app arrives here, so the cheap test of
slashbots.triggers comes first and ends almost all of them with no network call and no
shared state. What passes it goes through what a command goes through: dedupe (shared
through Redis when configured), the bot's rate limits, the in-flight cap, and a durable job
recorded before the answer. A refusal is said in public, at most once per user a minute
(slashbots.public_refusals). A reply in a thread whose parent shared state does not know
is settled after the answer, with one read of Stream (slashbots.threads). ``ai_indicator.stop``
stops what bots with ``stop`` are writing in the channel (slashbots.stops). Every other
event, and anything in a channel our bots are not in, is answered 200 and ignored.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any, Coroutine, Mapping, Sequence

from starlette.datastructures import Headers
from starlette.types import Receive, Scope, Send

from slashbots.access import Asker
from slashbots.admission import Gate
from slashbots.config import Bot
from slashbots.conversation_requests import Trigger, conversation_request, job_payload
from slashbots.metrics import Metrics
from slashbots.public_refusals import PublicRefusals
from slashbots.replies import Replies, job_id
from slashbots.shared import SharedState
from slashbots.signed_request import Rejected, signed_body
from slashbots.stops import Stops
from slashbots.threads import ThreadMemory
from slashbots.triggers import Asked, Triggers

log = logging.getLogger("slashbots.events")

Outcome = tuple[str, str]  # (command, or "" for the event as a whole; what became of it)
OK = b"{}"


class EventsEndpoint:
    """The ASGI app Stream calls with the app's events (a bare ASGI app, as /webhook, for the same reason)."""

    def __init__(self, api_key: str, api_secret: str, bots: Sequence[Bot], replies: Replies, shared: SharedState,
                 threads: ThreadMemory, stops: Stops, refusals: PublicRefusals, metrics: Metrics | None = None,
                 gate: Gate | None = None) -> None:
        self.api_key = api_key
        self.api_secret = api_secret
        self.triggers = Triggers(bots)
        self.replies = replies
        self.shared = shared
        self.gate = gate or Gate(shared, metrics=metrics)  # the same rules as commands: who, budgets, limits
        self.threads = threads
        self.stops = stops
        self.refusals = refusals
        self.metrics = metrics
        self._background: set[asyncio.Task[None]] = set()

    @property
    def pending(self) -> int:
        """Work still going on for events already answered: threads being checked, stops, refusals being said."""
        return len(self._background) + self.refusals.pending

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        status, outcomes = await self._answer(Headers(scope=scope), receive)
        body = OK if status == 200 else json.dumps({"error": outcomes[0][1]}).encode()
        await send({"type": "http.response.start", "status": status, "headers": [
            (b"content-type", b"application/json"), (b"content-length", b"%d" % len(body)),
        ]})
        await send({"type": "http.response.body", "body": body})
        if self.metrics is not None:
            self.metrics.events_ack_seconds.observe(time.perf_counter() - started)
            for command, outcome in outcomes:
                self.metrics.event_requests.labels(command, outcome).inc()

    async def _answer(self, headers: Headers, receive: Receive) -> tuple[int, list[Outcome]]:
        try:
            body = await signed_body(headers, receive, api_key=self.api_key, api_secret=self.api_secret)
        except Rejected as rejected:
            log.warning("event webhook refused (%s): %s", rejected.status, rejected.reason)
            return rejected.status, [("", rejected.outcome)]
        try:
            event = json.loads(body)
        except (UnicodeDecodeError, RecursionError, ValueError):
            log.warning("event webhook refused (400): the body is not JSON")
            return 400, [("", "bad_request")]
        if not isinstance(event, dict):
            return 400, [("", "bad_request")]
        kind = event.get("type")
        if kind == "message.new" and self.triggers.listening:
            return 200, await self._message(event, headers.get("x-webhook-id"))
        if kind == "ai_indicator.stop" and self.stops.stoppable:
            return 200, [self._stop(event)]
        return 200, [("", "ignored")]

    # -- message.new: mentions and thread follow-ups ------------------------------------------------

    async def _message(self, event: Mapping[str, Any], webhook_id: str | None) -> list[Outcome]:
        asked = self.triggers.asked(event)
        if asked.outcome != "asked":
            return [("", asked.outcome)]
        outcomes = [await self._take(bot, "mention", asked, webhook_id) for bot in asked.mentioned]
        if asked.maybe_thread:
            parent_id = asked.message["parent_id"]
            answered, known = await self.threads.known(parent_id, asked.maybe_thread)
            outcomes += [await self._take(bot, "thread", asked, webhook_id) for bot in answered]
            if not known:
                self._run(self._thread_from_stream(parent_id, asked, webhook_id))
                outcomes.append(("", "thread_unknown"))
            elif not answered and not outcomes:
                outcomes.append(("", "not_for_us"))
        return outcomes

    async def _thread_from_stream(self, parent_id: str, asked: Asked, webhook_id: str | None) -> None:
        """After the answer: a reply under a parent shared state does not know, settled by reading it from Stream."""
        bots = await self.threads.from_stream(parent_id, asked.maybe_thread)
        outcomes = [await self._take(bot, "thread", asked, webhook_id) for bot in bots]
        if self.metrics is not None:
            for command, outcome in outcomes or [("", "not_for_us")]:
                self.metrics.event_requests.labels(command, outcome).inc()

    async def _take(self, bot: Bot, trigger: Trigger, asked: Asked, webhook_id: str | None) -> Outcome:
        """Admit one bot's answer to the message, as a command is admitted; start it, or say why not."""
        request = conversation_request(bot, trigger, asked.message, asked.user, webhook_id)
        busy = ("restarting", "") if not self.replies.accepting else ("busy", "") if self.replies.full else None
        payload = job_payload(request, asked.user) if self.shared.durable else None
        role = asked.user.get("role")
        # The limits /webhook charges, under the same keys: a bot's commands and conversations count together.
        decision = await self.gate.admit(bot, Asker(request.user_id, role if isinstance(role, str) else None, request.cid),
                                         claims=[f"asked:{job_id(request)}"], job_id=job_id(request), payload=payload,
                                         refusal=busy)
        if decision.outcome == "duplicate":
            log.info("duplicate delivery of message %s ignored", request.message_id)
            return bot.command, "duplicate"
        if decision.outcome != "accepted":
            self.refusals.refuse(request, decision.outcome, wait=decision.wait, text=decision.text)
            return bot.command, decision.outcome
        self.replies.submit(request, durable=payload is not None and decision.shared)
        return bot.command, "accepted"

    # -- the stop button ----------------------------------------------------------------------------

    def _stop(self, event: Mapping[str, Any]) -> Outcome:
        cid = event.get("cid")
        if not isinstance(cid, str) or not self.stops.commands_in(cid):
            return "", "not_for_us"
        message_id = event.get("message_id")
        self._run(self.stops.stop(cid, message_id if isinstance(message_id, str) and message_id else None))
        return "", "stop"

    def _run(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
