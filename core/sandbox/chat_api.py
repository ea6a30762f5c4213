"""The sandbox's chat page and the small JSON API behind it.

The page plays a Stream chat client: it reads the stand-in's state directly (same event loop),
but every message it sends goes through the stand-in's real send-message endpoint with the
stream-chat SDK, so a command reaches our /webhook signed, exactly as it would from Stream.
It calls the SDK itself rather than through slashbots.stream: it stands for the users' chat app,
which must not share code with the slashbots server it is there to exercise.

    GET  /                                   the chat page (assets under /sandbox/static/)
    GET  /sandbox/api/users                  people to chat as, and the bots
    GET  /sandbox/api/channels               channels, each with its commands and its members (for @)
    GET  /sandbox/api/messages?cid=&user_id= a channel as that user sees it
    POST /sandbox/api/messages               {cid, user_id, text, parent_id?, mentioned_users?}: send as that user
    GET  /sandbox/api/thread?cid=&parent_id= a thread: its parent and its replies
    POST /sandbox/api/stop                   {cid, user_id, message_id?}: the stop button (ai_indicator.stop)
    GET  /sandbox/api/events?user_id=        live events (Server-Sent Events)

Bots with ``mentions`` are made members of the demo channels, as ``slashbots join`` makes
them in a real app: a chat client suggests only members for ``@``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import signal
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, AsyncIterator

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from stream_chat import StreamChatAsync
from stream_chat.base.exceptions import StreamAPIException

from slashbots.sandbox.standin import BUILTIN_COMMANDS, StreamStandIn

Json = dict[str, Any]

PAGE = Path(__file__).with_name("page")
PEOPLE: list[Json] = [{"id": "alice", "name": "Alice"}, {"id": "bob", "name": "Bob"}]
CHANNELS: dict[str, str] = {"messaging:general": "general", "messaging:random": "random"}
# What the page follows; anything else the stand-in publishes stays on the server.
LIVE_EVENTS = {"message.new", "message.updated", "ai_indicator.update", "ai_indicator.clear", "ai_indicator.stop"}
HEARTBEAT_SECONDS = 15.0  # keeps proxies and the browser from timing out an idle stream
SHUTDOWN_POLL_SECONDS = 0.5
MESSAGE_LIMIT = 200
COMMAND = re.compile(r"/([A-Za-z][\w-]*)")


def chat_routes(standin: StreamStandIn, stream_url: str) -> list[BaseRoute]:
    """The page and its API, to mount on the app from `create_app` (its `state.config` names the
    bots), served on the stand-in's event loop."""
    chat = SandboxChat(standin, stream_url)
    return [
        Route("/", chat.index),
        Mount("/sandbox/static", _Revalidated(directory=PAGE), name="sandbox-static"),
        Route("/sandbox/api/users", chat.users),
        Route("/sandbox/api/channels", chat.channels),
        Route("/sandbox/api/messages", chat.messages),
        Route("/sandbox/api/messages", chat.send, methods=["POST"]),
        Route("/sandbox/api/thread", chat.thread),
        Route("/sandbox/api/stop", chat.stop, methods=["POST"]),
        Route("/sandbox/api/events", chat.events),
    ]


class _Revalidated(StaticFiles):
    """Assets the browser revalidates on every load (cheap, by ETag), so a `git pull` shows at once."""

    def file_response(self, *args: Any, **kwargs: Any) -> Response:
        response = super().file_response(*args, **kwargs)
        response.headers["Cache-Control"] = "no-cache"
        return response


class SandboxChat:
    """The chat client's side of the sandbox: demo people and channels, sending, following."""

    def __init__(self, standin: StreamStandIn, stream_url: str) -> None:
        self.standin = standin
        self.stream_url = stream_url
        self._set_up = False
        self._setting_up = asyncio.Lock()
        # Our own "only visible to you" notices (a mistyped command is never sent), per user.
        self._notices: dict[str, list[Json]] = {}

    # ---- talking to the stand-in as Stream --------------------------------------------------

    @contextlib.asynccontextmanager
    async def _client(self) -> AsyncIterator[StreamChatAsync]:
        # One per request: the SDK's aiohttp session belongs to the running loop, and mounted
        # routes get no lifespan in which a shared client could be closed.
        async with StreamChatAsync(self.standin.api_key, self.standin.api_secret, base_url=self.stream_url) as client:
            yield client

    async def _ensure_set_up(self, request: Request) -> None:
        """The demo people and channels, made through Stream's API on first use (the stand-in
        only listens once the servers run, after these routes are built)."""
        async with self._setting_up:
            if self._set_up:
                return
            config = getattr(request.app.state, "config", None)  # none when mounted without the bots' app
            bots = config.bots if config is not None else ()
            async with self._client() as client:
                await client.upsert_users(PEOPLE + [{"id": b.identity.id, "name": b.identity.name} for b in bots])
                members = [person["id"] for person in PEOPLE]
                mentionable = list(dict.fromkeys(bot.identity.id for bot in bots if bot.mentions))
                for cid, name in CHANNELS.items():
                    channel_type, channel_id = cid.split(":")
                    channel = client.channel(channel_type, channel_id, {"name": name, "members": members})
                    await channel.create(members[0])
                    if mentionable:
                        await channel.add_members(mentionable)
            self._set_up = True

    async def _commands(self, client: StreamChatAsync, channel_type: str) -> list[Json]:
        """The custom commands the channel type enables, as Stream lists them to chat clients.
        Stream's built-ins (giphy, mute, ...) are left out: nothing answers them in the sandbox."""
        response = await client.get_channel_type(channel_type)
        return [
            {key: command.get(key, "") for key in ("name", "description", "args")}
            for command in response.get("commands") or []
            if command["name"] not in BUILTIN_COMMANDS
        ]

    # ---- routes -----------------------------------------------------------------------------

    async def index(self, request: Request) -> Response:
        return FileResponse(PAGE / "index.html", headers={"Cache-Control": "no-cache"})

    async def users(self, request: Request) -> JSONResponse:
        await self._ensure_set_up(request)
        bots = [
            {"id": bot.identity.id, "name": bot.identity.name, "image": bot.identity.image, "command": bot.command,
             "mentions": bot.mentions, "threads": bot.threads, "stop": bot.stop}
            for bot in request.app.state.config.bots
        ]
        return JSONResponse({"people": PEOPLE, "bots": bots})

    async def channels(self, request: Request) -> JSONResponse:
        await self._ensure_set_up(request)
        channels = []
        async with self._client() as client:
            for cid, name in CHANNELS.items():
                channel_type, channel_id = cid.split(":")
                channels.append({"cid": cid, "type": channel_type, "id": channel_id, "name": name,
                                 "commands": await self._commands(client, channel_type), "members": self._members(cid)})
        return JSONResponse({"channels": channels})

    async def messages(self, request: Request) -> JSONResponse:
        await self._ensure_set_up(request)
        cid, user_id = request.query_params.get("cid", ""), request.query_params.get("user_id", "")
        problem = _unknown_channel(cid) or _unknown_person(user_id)
        if problem:
            return problem
        # As Stream shows a channel: thread replies only when also sent to the channel, plus
        # what only this user was shown.
        shared = [m for m in self.standin.messages(cid) if not m.get("parent_id") or m.get("show_in_channel")]
        private = [m for m in [*self.standin.ephemeral(user_id), *self._notices.get(user_id, [])] if m["cid"] == cid]
        ordered = sorted(shared + private, key=lambda m: m["created_at"])
        return JSONResponse({"messages": ordered[-MESSAGE_LIMIT:]})

    async def send(self, request: Request) -> JSONResponse:
        await self._ensure_set_up(request)
        try:
            body = await request.json()
        except ValueError:
            return _bad_request("the body must be JSON: {cid, user_id, text}")
        if not isinstance(body, dict):
            return _bad_request("the body must be a JSON object: {cid, user_id, text}")
        cid, user_id, text = body.get("cid", ""), body.get("user_id", ""), body.get("text")
        parent_id, mentioned = body.get("parent_id"), body.get("mentioned_users") or []
        problem = _unknown_channel(cid) or _unknown_person(user_id)
        if problem:
            return problem
        if not isinstance(text, str) or not text.strip():
            return _bad_request("text must be a non-empty string")
        if not isinstance(mentioned, list) or not all(isinstance(user, str) for user in mentioned):
            return _bad_request("mentioned_users must be a list of user ids")
        if parent_id is not None and not isinstance(parent_id, str):
            return _bad_request("parent_id must be a message id")
        message: Json = {"text": text, "mentioned_users": mentioned}
        if parent_id:
            message["parent_id"] = parent_id
        channel_type, channel_id = cid.split(":")
        async with self._client() as client:
            notice = _unknown_command(text, await self._commands(client, channel_type))
            if notice:
                return JSONResponse({"message": self._notice(cid, user_id, notice)})
            try:
                response = await client.channel(channel_type, channel_id).send_message(message, user_id)
            except StreamAPIException as exc:
                message = getattr(exc, "error_message", None) or exc.response_text
                return JSONResponse({"error": message}, status_code=exc.status_code)
        # An error answer from the command hook comes back here, and only to the sender.
        return JSONResponse({"message": response["message"]})

    async def thread(self, request: Request) -> JSONResponse:
        cid, parent_id = request.query_params.get("cid", ""), request.query_params.get("parent_id", "")
        problem = _unknown_channel(cid)
        if problem:
            return problem
        parent = self.standin.message(parent_id)
        if parent is None or parent["cid"] != cid:
            return JSONResponse({"error": f"no message {parent_id!r} in {cid}"}, status_code=404)
        replies = [m for m in self.standin.messages(cid) if m.get("parent_id") == parent_id]
        return JSONResponse({"parent": parent, "messages": replies})

    async def stop(self, request: Request) -> JSONResponse:
        """The stop button, sent as stream-chat's ``channel.stopAIResponse()`` sends it, by the user pressing it."""
        try:
            body = await request.json()
        except ValueError:
            return _bad_request("the body must be JSON: {cid, user_id, message_id}")
        if not isinstance(body, dict):
            return _bad_request("the body must be a JSON object: {cid, user_id, message_id}")
        cid, user_id, message_id = body.get("cid", ""), body.get("user_id", ""), body.get("message_id")
        problem = _unknown_channel(cid) or _unknown_person(user_id)
        if problem:
            return problem
        event: Json = {"type": "ai_indicator.stop"}
        if isinstance(message_id, str) and message_id:
            event["message_id"] = message_id
        channel_type, channel_id = cid.split(":")
        async with self._client() as client:
            await client.channel(channel_type, channel_id).send_event(event, user_id)
        return JSONResponse({"event": event})

    async def events(self, request: Request) -> Response:
        user_id = request.query_params.get("user_id", "")
        problem = _unknown_person(user_id)
        if problem:
            return problem
        headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        return StreamingResponse(self._event_stream(user_id), media_type="text/event-stream", headers=headers)

    # ---- helpers ----------------------------------------------------------------------------

    def _members(self, cid: str) -> list[Json]:
        """Who ``@`` suggests: the channel's members, with their names."""
        members = []
        for user_id in self.standin.members(cid):
            user = self.standin.user(user_id) or {}
            members.append({"id": user_id, "name": user.get("name") or user_id})
        return members

    def _notice(self, cid: str, user_id: str, text: str) -> Json:
        """An error message shaped like the ones Stream hands a sender, kept for that user only."""
        user = self.standin.user(user_id) or {"id": user_id}
        now = datetime.now(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")
        notice = {"id": str(uuid.uuid4()), "cid": cid, "type": "error", "text": text, "user": user,
                  "created_at": now, "updated_at": now}
        self._notices.setdefault(user_id, []).append(notice)
        return notice

    async def _event_stream(self, user_id: str) -> AsyncIterator[str]:
        # Subscribed before "ready" goes out: the page loads messages on "ready", so nothing
        # published in between can fall through the gap.
        queue = self.standin.subscribe()
        try:
            yield "retry: 1000\nevent: ready\ndata: {}\n\n"
            written = time.monotonic()
            while not _server_is_stopping():
                try:
                    event = await asyncio.wait_for(queue.get(), SHUTDOWN_POLL_SECONDS)
                except asyncio.TimeoutError:
                    if time.monotonic() - written >= HEARTBEAT_SECONDS:
                        written = time.monotonic()
                        yield ": keep-alive\n\n"
                    continue
                if event.get("type") in LIVE_EVENTS and event.get("only_for", user_id) == user_id:
                    written = time.monotonic()
                    yield f"data: {json.dumps(event)}\n\n"
        finally:
            # Also reached when the browser goes away: Starlette cancels the stream on disconnect.
            self.standin.unsubscribe(queue)


def _server_is_stopping() -> bool:
    """Whether uvicorn has been told to stop (Ctrl+C, SIGTERM).

    uvicorn lets open responses finish before it stops the app, and tells the app nothing, so
    an endless event stream would hold up Ctrl+C for good. Its signal handler is its Server's
    bound ``handle_exit``, so the server's ``should_exit`` flag is one attribute away. Anywhere
    else (no signal handler, as in a thread) this stays False: the stream then ends when the
    browser leaves, or when the server's graceful-shutdown timeout cancels it.
    """
    server = getattr(signal.getsignal(signal.SIGINT), "__self__", None)
    return bool(getattr(server, "should_exit", False))


def _unknown_command(text: str, commands: list[Json]) -> str | None:
    """What a chat client says when the text starts with a command this channel doesn't have,
    instead of posting the typo for everyone to see."""
    match = COMMAND.match(text)
    names = [command["name"] for command in commands]
    if not match or match.group(1) in names:
        return None
    known = ", ".join(f"/{name}" for name in names) or "none"
    return f"/{match.group(1)} is not a command in this channel. Commands here: {known}."


def _unknown_channel(cid: str) -> JSONResponse | None:
    if cid in CHANNELS:
        return None
    return JSONResponse({"error": f"no channel {cid!r}; the sandbox has {list(CHANNELS)}"}, status_code=404)


def _unknown_person(user_id: str) -> JSONResponse | None:
    ids = [person["id"] for person in PEOPLE]
    return None if user_id in ids else _bad_request(f"user_id must be one of {ids}")


def _bad_request(message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=400)
