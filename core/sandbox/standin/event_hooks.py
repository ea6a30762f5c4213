"""Event hooks: Stream POSTs each event to every enabled webhook hook in the app's `event_hooks`
that wants it.

What Stream documents (webhooks_overview.md, push_webhook.md, webhook_events.md): one POST per
event and hook, JSON, signed like the command hook (X-Signature over the uncompressed body,
X-Webhook-Id the same on every attempt, X-Webhook-Attempt, X-Api-Key), gzipped when the app
says so; `event_types` names the events a hook gets, and an empty list means all of them;
`message.new` carries the channel's members, up to 50; 6 s per request; 408, 429 and 5xx are
tried 3 times, timeouts 3 times, network errors twice, all within 15 s.

Sending never holds up the API call that caused it: each hook has a queue and a few workers of
its own, so a hook that is slow or unreachable delays nothing but itself, and once its queue is
full its new events are dropped (and recorded so) rather than piling up. Every delivery is
recorded: each attempt's status or error, and the outcome (pending, delivered, failed, dropped,
cancelled when the stand-in stops first).

ASSUMPTIONS, where Stream's docs say nothing:
- An event sent to a channel (POST /channels/{type}/{id}/event) of a type Stream does not define
  is a custom event: it goes to the hooks with `should_send_custom_events`, whatever their
  `event_types` (which name Stream's own events). `ai_indicator.stop`, which stream-chat-js's
  `channel.stopAIResponse()` sends, is one; whether Stream delivers it to webhooks at all is
  not confirmed.
- A message only its sender sees (a command hook's error or ephemeral answer) is not sent.
- Stream does not say how long it waits between attempts: 0.25 s, then 0.5 s here.
- Deliveries to one hook may overlap, so they may arrive out of order (Stream promises none).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

from slashbots.sandbox.standin.app_config import AppConfig
from slashbots.sandbox.standin.hook_requests import HookRequest, hook_client, hook_request
from slashbots.sandbox.standin.recorder import Recorder
from slashbots.sandbox.standin.values import Json

# Events of Stream's own (those the stand-in makes, and the client events Stream defines);
# any other type sent to a channel is a custom event.
STREAM_EVENTS = {"message.new", "message.updated", "message.deleted", "member.added", "typing.start", "typing.stop"}
MAX_MEMBERS = 50  # message.new "members" are "truncated up to 50"
REQUEST_SECONDS = 6.0
TOTAL_SECONDS = 15.0
RETRY_WAITS = (0.25, 0.5)
CONCURRENCY = 4  # deliveries in flight per hook
BACKLOG = 1000  # deliveries waiting per hook before new ones are dropped

Members = Callable[[str, int], list[Json]]  # (cid, limit) -> the channel's first members


@dataclass
class _Delivery:
    url: str
    request: HookRequest
    record: Json


@dataclass
class _Outbox:
    """One hook's waiting deliveries and how many workers are sending them."""

    waiting: deque[_Delivery] = field(default_factory=deque)
    workers: int = 0


def attempts_allowed(status: int | None, error: str | None) -> int:
    """How many attempts Stream makes at a delivery that failed so."""
    if error == "timeout":
        return 3
    if error is not None:  # the network: refused, reset, unresolvable
        return 2
    assert status is not None
    return 3 if status in (408, 429) or status >= 500 else 1


class EventHooks:
    """Sends the app's events to its event hooks, from the server's event loop."""

    def __init__(self, config: AppConfig, recorder: Recorder, *, members: Members, api_key: str, api_secret: str,
                 timeout: float = REQUEST_SECONDS, concurrency: int = CONCURRENCY, backlog: int = BACKLOG) -> None:
        self._config = config
        self._recorder = recorder
        self._members = members
        self._api_key = api_key
        self._api_secret = api_secret
        self.timeout = timeout
        self._concurrency = concurrency
        self._backlog = backlog
        self._outboxes: dict[str, _Outbox] = {}
        self._workers: set[asyncio.Task[None]] = set()

    def dispatch(self, event: Json) -> None:
        """Queue `event` for every hook that wants it, and return at once."""
        if "only_for" in event:
            return
        hooks = [hook for hook in self._config.event_hooks if self._wants(hook, event)]
        if not hooks:
            return
        payload = dict(event)
        if event["type"] == "message.new":
            payload["members"] = self._members(event["cid"], MAX_MEMBERS)
        compress = bool(self._config.settings.get("enable_hook_payload_compression"))
        for hook in hooks:  # a request each: every hook gets a webhook id of its own
            request = hook_request(payload, api_key=self._api_key, api_secret=self._api_secret, compress=compress)
            record: Json = {"hook_id": hook["id"], "url": hook["webhook_url"], "event_type": event["type"],
                            "cid": event.get("cid"), "webhook_id": request.headers["X-Webhook-Id"],
                            "headers": request.headers, "payload": payload, "compressed": request.compressed,
                            "attempts": [], "outcome": "pending"}
            self._recorder.event_hook_call(record)
            self._queue(hook["id"], _Delivery(hook["webhook_url"], request, record))

    @staticmethod
    def _wants(hook: Json, event: Json) -> bool:
        if not hook["enabled"] or hook["hook_type"] != "webhook":
            return False  # SQS, SNS and pending-message hooks are kept, but nothing is sent to them here
        if event["type"] in STREAM_EVENTS:
            return not hook["event_types"] or event["type"] in hook["event_types"]
        return bool(hook["should_send_custom_events"])

    def _queue(self, hook_id: str, delivery: _Delivery) -> None:
        outbox = self._outboxes.setdefault(hook_id, _Outbox())
        if len(outbox.waiting) >= self._backlog:
            self._recorder.settle(delivery.record, outcome="dropped")
            return
        outbox.waiting.append(delivery)
        if outbox.workers < self._concurrency:
            outbox.workers += 1
            worker = asyncio.get_running_loop().create_task(self._work(outbox))
            self._workers.add(worker)  # a strong reference, so the task is not collected mid-way
            worker.add_done_callback(self._workers.discard)

    async def _work(self, outbox: _Outbox) -> None:
        """Send the hook's waiting deliveries, one at a time, until none is left."""
        try:
            async with hook_client() as client:
                while outbox.waiting:
                    await self._deliver(client, outbox.waiting.popleft())
        finally:
            outbox.workers -= 1

    async def _deliver(self, client: httpx.AsyncClient, delivery: _Delivery) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + TOTAL_SECONDS
        attempts: list[Json] = []
        outcome = "failed"
        try:
            while True:
                headers = {**delivery.request.headers, "X-Webhook-Attempt": str(len(attempts) + 1)}
                budget = min(self.timeout, deadline - loop.time())
                started = loop.time()
                status, error = None, None
                try:
                    sending = client.post(delivery.url, content=delivery.request.content, headers=headers,
                                          timeout=budget)
                    status = (await asyncio.wait_for(sending, budget)).status_code
                except (asyncio.TimeoutError, httpx.TimeoutException):
                    error = "timeout"
                except (httpx.HTTPError, httpx.InvalidURL) as exc:  # InvalidURL: e.g. a port out of range
                    error = f"{type(exc).__name__}: {exc}"
                attempts.append({"status": status, "error": error, "elapsed": loop.time() - started})
                self._recorder.settle(delivery.record, attempts=list(attempts))
                if status is not None and 200 <= status < 300:
                    outcome = "delivered"
                    return
                wait = RETRY_WAITS[min(len(attempts), len(RETRY_WAITS)) - 1]
                if len(attempts) >= attempts_allowed(status, error) or loop.time() + wait >= deadline:
                    return
                await asyncio.sleep(wait)
        except asyncio.CancelledError:
            outcome = "cancelled"
            raise
        finally:
            self._recorder.settle(delivery.record, outcome=outcome)

    async def close(self) -> None:
        """Stop sending: deliveries under way or waiting end as "cancelled"."""
        for worker in list(self._workers):
            worker.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        for outbox in self._outboxes.values():
            while outbox.waiting:
                self._recorder.settle(outbox.waiting.popleft().record, outcome="cancelled")
