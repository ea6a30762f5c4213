"""POST /webhook: verify -> parse -> route -> ack.

Stream waits at most one second for this answer, inside the user's send-message call, so
nothing here touches the network: the reply is handed to a background job and the ack
goes straight back. Anything that is not a correctly signed command gets a 4xx and no reply.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from typing import Any, Mapping, Protocol

from starlette.datastructures import Headers
from starlette.types import Receive, Scope, Send

from slashbots.access import Asker
from slashbots.admission import Gate
from slashbots.config import Bot
from slashbots.metrics import Metrics
from slashbots.provider import CommandRequest
from slashbots.shared import SharedState
from slashbots.signed_request import Rejected, signed_body

log = logging.getLogger("slashbots.webhook")

MAX_TEXT = 20_000  # Stream's own ceiling for a channel type's max_message_length


class ReplyQueue(Protocol):
    """What the webhook needs of the reply jobs: whether there is room, and a way in."""

    accepting: bool

    @property
    def full(self) -> bool: ...

    def submit(self, request: CommandRequest, *, durable: bool = False) -> None: ...


Answer = tuple[int, dict[str, Any]]  # HTTP status and JSON body


class WebhookEndpoint:
    """The ASGI app Stream calls for every custom command of the app.

    A bare ASGI app rather than a Starlette request handler: it is the one route that
    takes load, and it needs nothing of a Request or Response object but their cost.
    """

    def __init__(
        self,
        api_key: str,
        api_secret: str,
        bots: Mapping[str, Bot],
        replies: ReplyQueue,
        shared: SharedState,
        metrics: Metrics | None = None,
        gate: Gate | None = None,
    ) -> None:
        self.metrics = metrics
        self.api_key = api_key
        self.api_secret = api_secret
        self.bots = bots
        self.bot_ids = frozenset(bot.identity.id for bot in bots.values())
        self.replies = replies
        self.shared = shared
        self.gate = gate or Gate(shared, metrics=metrics)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        (status, answer), command, outcome = await self._answer(Headers(scope=scope), receive)
        body = json.dumps(answer, ensure_ascii=False, separators=(",", ":")).encode()
        await send({"type": "http.response.start", "status": status, "headers": [
            (b"content-type", b"application/json"), (b"content-length", b"%d" % len(body)),
        ]})
        await send({"type": "http.response.body", "body": body})
        if self.metrics is not None:
            self.metrics.ack_seconds.observe(time.perf_counter() - started)
            self.metrics.webhook_requests.labels(command, outcome).inc()

    async def _answer(self, headers: Headers, receive: Receive) -> tuple[Answer, str, str]:
        """The answer, the command it was for ("" if none could be read) and what became of it."""
        try:
            body = await signed_body(headers, receive, api_key=self.api_key, api_secret=self.api_secret)
        except Rejected as rejected:
            return _refuse(rejected.status, rejected.reason), "", rejected.outcome
        try:
            payload = json.loads(body)
        except (UnicodeDecodeError, RecursionError, ValueError):
            return _refuse(400, "body is not JSON"), "", "bad_request"
        problem = _check_payload(payload)
        if problem:
            return _refuse(400, problem), "", "bad_request"
        message: dict[str, Any] = payload["message"]
        user: dict[str, Any] = payload.get("user") or message.get("user") or {}

        bot = self.bots.get(message["command"])
        if bot is None:
            return _error_message(f"/{message['command']} is not a command this server knows."), "", "unknown_command"
        if user.get("id") in self.bot_ids:
            # A bot's own message that happens to start with a command: never answer it, or two bots could loop.
            return (200, {"message": message}), bot.command, "from_a_bot"

        webhook_id = headers.get("x-webhook-id")
        claims = [f"message:{message['id']}"]
        if webhook_id:
            claims.append(f"webhook:{webhook_id}")
        job_payload = None
        if self.shared.durable:
            # Recorded with the claim, before the ack returns: if this instance dies, another runs it.
            job_payload = json.dumps({"message": message, "user": user, "webhook_id": webhook_id},
                                     ensure_ascii=False, separators=(",", ":"))
        role = user.get("role")
        asker = Asker(user["id"], role if isinstance(role, str) else None, message["cid"])
        decision = await self.gate.admit(bot, asker, claims=claims, job_id=f"{bot.command}:{message['id']}",
                                         payload=job_payload, refusal=self._refusal(bot))
        if decision.outcome == "duplicate":
            # Stream retried, or someone replayed it: the first delivery already has its reply.
            log.info("duplicate delivery of message %s ignored", message["id"])
            return (200, {"message": message}), bot.command, "duplicate"
        if decision.text is not None:
            return _error_message(decision.text), bot.command, decision.outcome
        self.replies.submit(_command_request(bot, message, user, webhook_id),
                            durable=job_payload is not None and decision.shared)
        return (200, {"message": message}), bot.command, "accepted"

    def _refusal(self, bot: Bot) -> tuple[str, str] | None:
        """Why this instance cannot take a command now: (outcome, words for its sender); None if it can."""
        command = f"/{bot.command}"
        if not self.replies.accepting:
            return "restarting", f"The bots are restarting. Please try {command} again in a few seconds."
        if self.replies.full:
            return "busy", f"The bots are busy right now. Please try {command} again shortly."
        return None


def _check_payload(payload: Any) -> str | None:
    if not isinstance(payload, dict):
        return "body is not a JSON object"
    message = payload.get("message")
    if not isinstance(message, dict):
        return "'message' is missing or not an object"
    for key in ("id", "command", "cid"):
        if not isinstance(message.get(key), str) or not message[key]:
            return f"'message.{key}' is missing or not a string"
    if ":" not in message["cid"]:
        return "'message.cid' is not of the form type:id"
    for key in ("text", "args", "parent_id"):
        if message.get(key) is not None and not isinstance(message[key], str):
            return f"'message.{key}' is not a string"
        if isinstance(message.get(key), str) and len(message[key]) > MAX_TEXT:
            return f"'message.{key}' is longer than {MAX_TEXT} characters"
    for owner in (payload.get("user"), message.get("user")):
        if owner is not None and not (isinstance(owner, dict) and isinstance(owner.get("id"), str)):
            return "'user' is not an object with a string id"
    if not isinstance(payload.get("user") or message.get("user"), dict):
        return "'user' is missing"
    return None


def _command_request(bot: Bot, message: dict[str, Any], user: dict[str, Any], webhook_id: str | None) -> CommandRequest:
    text = message.get("text") or ""
    args = message.get("args")
    if args is None:
        args = text.partition(" ")[2]
    name = user.get("name") or (user.get("Custom") or {}).get("name")  # Stream's docs show both shapes
    return CommandRequest(
        command=message["command"],
        args=args.strip(),
        text=text,
        user_id=user["id"],
        user_name=name if isinstance(name, str) else None,
        cid=message["cid"],
        message_id=message["id"],
        parent_id=message.get("parent_id") or None,
        bot=bot,
        raw=message,
        # Short and greppable; Stream's webhook id when there is one, so both sides' logs line up.
        request_id=(webhook_id or uuid.uuid4().hex)[:12],
    )


def rebuild_request(bots: Mapping[str, Bot], payload: str) -> CommandRequest | None:
    """A stored job's request, as the ack built it (None if its bot is not in this bots.yaml)."""
    stored = json.loads(payload)
    bot = bots.get(stored["message"].get("command", ""))
    if bot is None:
        return None
    return _command_request(bot, stored["message"], stored["user"], stored.get("webhook_id"))


def _refuse(status: int, reason: str) -> Answer:
    log.warning("webhook refused (%s): %s", status, reason)
    return status, {"error": reason}


def _error_message(text: str) -> Answer:
    """Stream shows an ``error`` message only to its sender, and still wants HTTP 200."""
    return 200, {"message": {"type": "error", "text": text}}
