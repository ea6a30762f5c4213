"""A local stand-in for the part of Stream Chat's server-side REST API that slashbots uses.

Why it exists: tests and the sandbox need a Stream that runs offline, answers the real
`stream_chat` SDK unchanged (point `base_url` / `STREAM_CHAT_URL` at it), and behaves the way
Stream documents: JWT auth, one app-wide command handler URL called synchronously inside the
send-message call with a 1 s budget and an HMAC signature, commands that work only where the
channel type enables them, a 5,000-character message limit, 429s with X-RateLimit-* headers.

It deliberately imports nothing from `core`: it plays Stream, independently of our code.
Everything it saw and did is recorded (`calls`, `hook_calls`, `messages()`, ...) for tests.
Where Stream's behaviour is undocumented, the choice made here says so in a comment.
"""

from __future__ import annotations

import asyncio
import functools
import gzip
import hashlib
import hmac
import html
import json
import random
import re
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Iterable
from urllib.parse import parse_qsl, urlparse

import httpx
import jwt
from starlette.applications import Starlette
from starlette.middleware.errors import ServerErrorMiddleware
from starlette.requests import ClientDisconnect, Request
from starlette.routing import Match, Route
from starlette.types import ASGIApp, Receive, Scope, Send

Json = dict[str, Any]
Handler = Callable[[Request, Json], Awaitable[Json]]

# Stream's built-in commands, as it lists them in a channel's config.commands.
BUILTIN_COMMANDS: dict[str, Json] = {
    "giphy": {"name": "giphy", "description": "Post a random gif to the channel", "args": "[text]", "set": "fun_set"},
    "mute": {"name": "mute", "description": "Mute a user", "args": "[@username]", "set": "moderation_set"},
    "ban": {"name": "ban", "description": "Ban a user", "args": "[@username] [text]", "set": "moderation_set"},
    "unmute": {"name": "unmute", "description": "Unmute a user", "args": "[@username]", "set": "moderation_set"},
    "unban": {"name": "unban", "description": "Unban a user", "args": "[@username]", "set": "moderation_set"},
}
_MODERATION = ["mute", "unmute", "ban", "unban"]
# The built-in channel types and the commands they start with (Stream's exact defaults
# for team/commerce/gaming are not documented; these are plausible).
DEFAULT_CHANNEL_TYPE_COMMANDS: dict[str, list[str]] = {
    "messaging": ["giphy"],
    "team": ["giphy"],
    "livestream": ["giphy", *_MODERATION],
    "commerce": [],
    "gaming": ["giphy", *_MODERATION],
}
_CHANNEL_TYPE_SETTINGS: Json = {
    "typing_events": True, "read_events": True, "connect_events": True, "search": True,
    "reactions": True, "replies": True, "quotes": True, "mutes": True, "uploads": True,
    "url_enrichment": True, "custom_events": True, "push_notifications": True,
    "message_retention": "infinite", "max_message_length": 5000,
    "automod": "disabled", "automod_behavior": "flag", "blocklist_behavior": "flag",
}
MAX_CHANNEL_TYPES = 50  # "applications have a hard limit of 50 channel types"

# Message fields Stream computes itself: clients, hooks and updates cannot set them.
_SERVER_OWNED = {
    "id", "cid", "user", "created_at", "updated_at", "html", "command", "args", "parent_id",
    "reply_count", "latest_reactions", "own_reactions", "reaction_counts", "reaction_scores",
    "mentioned_users", "deleted_at", "shadowed", "pinned_at", "pinned_by", "thread_participants",
}
# What a command-hook answer may rewrite ("any non-custom field not listed is ignored").
_HOOK_REWRITABLE = {"text", "attachments", "type", "show_in_channel", "silent", "mml", "i18n"}
# Every field Stream knows; anything else on a message is a custom field.
_KNOWN_FIELDS = _SERVER_OWNED | _HOOK_REWRITABLE | {
    "pinned", "pin_expires", "quoted_message_id", "restricted_visibility",
}
_URL_SETTINGS = {"custom_action_handler_url", "before_message_send_hook_url", "webhook_url"}
# Which recorded operations count as writes of a kind, for `writes(kind)`.
_WRITE_KINDS = {
    "UpdateApp": "app", "CreateCommand": "command", "UpdateCommand": "command", "DeleteCommand": "command",
    "CreateChannelType": "channel_type", "UpdateChannelType": "channel_type", "UpdateUsers": "user",
    "SendMessage": "message", "UpdateMessage": "message", "UpdateMessagePartial": "message", "SendEvent": "event",
}
_ERROR_CODES = {400: 4, 401: 5, 403: 17, 404: 16, 429: 9}
_COMMAND = re.compile(r"/(\S+)\s*(.*)", re.DOTALL)  # "/name args" at the start of a message's text
_TIME_CLAIMS = {"exp", "nbf", "iat"}  # JWT claims whose validity depends on the clock
# Most of the load (bots posting and streaming replies) is these calls; see `_asgi_app`.
_HOT_OPERATIONS = {"SendMessage", "UpdateMessagePartial", "SendEvent"}


class StreamError(Exception):
    """An error answered in Stream's JSON shape: {code, message, StatusCode, duration, more_info}."""

    def __init__(self, status: int, message: str, *, code: int | None = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.code = code if code is not None else _ERROR_CODES.get(status, -1)
        self.headers = headers or {}

    def body(self, operation: str) -> Json:
        return {
            "code": self.code,
            "message": f'{operation} failed with error: "{self}"',
            "StatusCode": self.status,
            "more_info": "https://getstream.io/chat/docs/api_errors_response",
        }


def bad_input(message: str) -> StreamError:
    return StreamError(400, message)


def not_found(message: str) -> StreamError:
    return StreamError(404, message)


class _Endpoint:
    """One Stream operation as an ASGI app. A class, not a closure, because Starlette's Route
    calls a function as `request -> response` and anything else as ASGI."""

    def __init__(self, serve: Callable[..., Awaitable[None]], operation: str, handler: Handler) -> None:
        self.serve, self.operation, self.handler = serve, operation, handler

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        return self.serve(self.operation, self.handler, scope, receive, send)


@dataclass
class _Fault:
    method: str
    pattern: re.Pattern[str]
    status: int | None
    times: int
    headers: dict[str, str]
    delay: float
    chance: float
    reset_in: int


def _copy(value: Any) -> Any:
    """A deep copy of JSON-shaped data. Everything the stand-in holds is JSON (dicts, lists,
    scalars), and copying just that is several times cheaper than `copy.deepcopy`."""
    # Scalars are tested for in the loops, not in a call per value: most values are scalars.
    if isinstance(value, dict):
        return {key: _copy(item) if isinstance(item, (dict, list)) else item for key, item in value.items()}
    if isinstance(value, list):
        return [_copy(item) if isinstance(item, (dict, list)) else item for item in value]
    return value


@functools.lru_cache(maxsize=64)
def _query_pairs(query_string: bytes) -> tuple[tuple[str, str], ...]:
    """The query string parsed as Starlette's QueryParams parses it. Cached: every SDK call
    carries the same one (?api_key=...)."""
    return tuple(parse_qsl(query_string.decode("latin-1"), keep_blank_values=True))


# Paths that Starlette's `request.url.path` returns unchanged. It escapes ?, # and \ and
# re-parses the whole URL, slow enough to matter on every request.
_PLAIN_PATH = re.compile(r"(?:/[A-Za-z0-9_.~!$&'()*+,;=:@%-]+)+/?")


def _url_path(request: Request) -> str:
    path: str = request.scope["path"]
    return path if _PLAIN_PATH.fullmatch(path) else request.url.path


async def _read_body(receive: Receive) -> bytes:
    """The request body, as Starlette's `Request.body()` reads it, minus its generator machinery."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


# Starlette's JSONResponse encoding, with one encoder for all answers rather than one per answer.
_encode_json = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode


async def _send_json(send: Send, status: int, headers: dict[str, str], payload: Any) -> None:
    """Answer as Starlette's JSONResponse would, byte for byte, without building one."""
    body = _encode_json(payload).encode("utf-8")
    raw_headers = [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()]
    names = {name for name, _ in raw_headers}
    if b"content-length" not in names and not (status < 200 or status in (204, 304)):
        raw_headers.append((b"content-length", str(len(body)).encode("latin-1")))
    if b"content-type" not in names:
        raw_headers.append((b"content-type", b"application/json"))
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": body})


def _now() -> str:
    """The current UTC time as Stream writes it, e.g. 2026-01-02T03:04:05.678901Z."""
    seconds, micros = divmod(time.time_ns() // 1000, 1_000_000)
    return f"{_utc_second(seconds)}.{micros:06d}Z"


@functools.lru_cache(maxsize=1)
def _utc_second(seconds: int) -> str:
    # Formatting the date and time is most of the cost, and a busy second asks for it often.
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))


def _oldest_first(messages: Iterable[Json]) -> list[Json]:
    """By created_at, as Stream orders them: a command message is stamped when it arrives,
    before its hook runs, so a bot reply posted during the hook still sorts after it."""
    return sorted(messages, key=lambda m: m["created_at"])


def _render_html(text: str) -> str:
    """Stream renders markdown to `html`; plain paragraphs are close enough here."""
    return f"<p>{html.escape(text)}</p>\n" if text else ""


class StreamStandIn:
    """In-memory state of one Stream app, served by `.app` (an ASGI app, mostly Starlette's)."""

    def __init__(self, api_key: str, api_secret: str, *, hook_timeout: float = 1.0) -> None:
        self.api_key = api_key
        self.api_secret = api_secret
        self.hook_timeout = hook_timeout
        # The server runs in its own thread: state changes and the copies handed to
        # other threads both happen under this lock.
        self._lock = threading.RLock()
        self._settings: Json = {
            "name": "slashbots-sandbox", "custom_action_handler_url": "", "enable_hook_payload_compression": False,
            "before_message_send_hook_url": "", "webhook_url": "", "event_hooks": [],
            "disable_auth_checks": False, "disable_permissions_checks": False, "suspended": False,
        }
        self._commands: dict[str, Json] = {}  # custom commands only
        self._channel_types: dict[str, Json] = {
            name: self._new_channel_type(name, commands) for name, commands in DEFAULT_CHANNEL_TYPE_COMMANDS.items()
        }
        self._users: dict[str, Json] = {}
        self._channels: dict[str, Json] = {}
        self._members: dict[str, list[str]] = {}
        # Messages and events are never changed in place once stored: a change stores a new dict.
        # So the event log, the call log and answers share them freely; copies are made only
        # where they leave the server (`_snapshot`, subscribers).
        self._messages: dict[str, Json] = {}  # insertion order is creation order
        self._ephemeral: dict[str, list[Json]] = {}
        self._events: list[Json] = []  # sent through the event endpoint
        self._published: list[Json] = []  # every state change, for a live page
        self._calls: list[Json] = []
        self._hook_calls: list[Json] = []
        self._faults: list[_Fault] = []
        self._random = random.Random(0)  # chance faults: seeded, so a failing run can be repeated
        self._subscribers: set[asyncio.Queue[Json]] = set()
        self._verified_tokens: dict[tuple[str, str], Json] = {}
        self.app = self._asgi_app()

    # ---- observability: copies, safe to read from any thread --------------------------

    def _snapshot(self, select: Callable[[], Any]) -> Any:
        """Select and deep-copy under the lock, so other threads never see a change half made."""
        with self._lock:
            return _copy(select())

    @property
    def calls(self) -> list[Json]:
        """Every request served, in order: {method, path, query, json, status, operation, at}."""
        return self._snapshot(lambda: self._calls)

    @property
    def hook_calls(self) -> list[Json]:
        """Every command-hook call: what was sent, what came back, status, elapsed, outcome."""
        return self._snapshot(lambda: self._hook_calls)

    def messages(self, cid: str) -> list[Json]:
        """Stored messages of a channel, thread replies included, oldest first."""
        return self._snapshot(lambda: _oldest_first(m for m in self._messages.values() if m["cid"] == cid))

    def message(self, message_id: str) -> Json | None:
        return self._snapshot(lambda: self._messages.get(message_id))

    def ephemeral(self, user_id: str) -> list[Json]:
        """Messages only this user saw (command-hook `error`/`ephemeral` answers)."""
        return self._snapshot(lambda: self._ephemeral.get(user_id, []))

    def events(self, cid: str | None = None) -> list[Json]:
        """Events sent through the event endpoint (e.g. ai_indicator.*), optionally for one channel."""
        return self._snapshot(lambda: [e for e in self._events if cid is None or e["cid"] == cid])

    def published(self, cid: str | None = None) -> list[Json]:
        """The full event log (message.new, message.updated, sent events)."""
        return self._snapshot(lambda: [e for e in self._published if cid is None or e.get("cid") == cid])

    def writes(self, kind: str) -> list[Json]:
        """Successful write calls of a kind: app, command, channel_type, user, message, event."""
        def select() -> list[Json]:
            return [c for c in self._calls if c["status"] < 400 and _WRITE_KINDS.get(c["operation"]) == kind]

        return self._snapshot(select)

    def user(self, user_id: str) -> Json | None:
        return self._snapshot(lambda: self._users.get(user_id))

    # ---- test controls ---------------------------------------------------------------

    def inject_fault(
        self,
        method: str,
        path_pattern: str,
        status: int | None = 429,
        times: int = 1,
        headers: dict[str, str] | None = None,
        delay: float = 0.0,
        chance: float = 1.0,
        reset_in: int = 60,
    ) -> None:
        """Make the next `times` requests matching `method` ("*" = any) and the regex
        `path_pattern` (searched in the path, e.g. "/message$") fail with `status`
        after `delay` seconds, or, with status=None, only be delayed and then served.
        With `chance` < 1 each matching request is hit at random (seeded, so runs repeat);
        `times` then counts hits. A 429 says the window resets `reset_in` seconds later."""
        with self._lock:
            self._faults.append(_Fault(method.upper(), re.compile(path_pattern), status, times, dict(headers or {}),
                                       delay, chance, reset_in))

    def set_max_message_length(self, channel_type: str, length: int) -> None:
        with self._lock:
            self._channel_types[channel_type]["max_message_length"] = length

    # ---- live events: subscribers live on the server's event loop ----------------------

    def subscribe(self) -> asyncio.Queue[Json]:
        """A queue that receives every published event from now on (call on the server loop)."""
        queue: asyncio.Queue[Json] = asyncio.Queue()
        self._subscribers.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[Json]) -> None:
        self._subscribers.discard(queue)

    def _publish(self, event: Json) -> None:
        """The one place every state change goes through, so a chat page can follow along."""
        with self._lock:
            self._published.append(event)
        for queue in list(self._subscribers):
            queue.put_nowait(_copy(event))

    # ---- HTTP plumbing ---------------------------------------------------------------

    def _asgi_app(self) -> ASGIApp:
        """Starlette's router, with a shortcut for the hot operations: they go straight to their
        endpoint, skipping its walk over every route and all its middleware but the one that
        answers an escaped exception with a 500. Their paths overlap no other route's, so a full
        match here is the route Starlette would have picked; anything else (other calls, wrong
        methods, lifespan) takes the ordinary way."""
        routes = self._routes()
        router = Starlette(routes=routes)
        hot: dict[str, list[tuple[Route, ASGIApp]]] = {}
        for route in routes:
            if route.name in _HOT_OPERATIONS:
                for method in route.methods or ():
                    hot.setdefault(method, []).append((route, ServerErrorMiddleware(route.endpoint)))

        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == "http":
                for route, endpoint in hot.get(scope["method"], ()):
                    match, child_scope = route.matches(scope)
                    if match is Match.FULL:
                        scope.update(child_scope)
                        await endpoint(scope, receive, send)
                        return
            await router(scope, receive, send)

        return app

    def _routes(self) -> list[Route]:
        table: list[tuple[str, str, str, Handler]] = [
            ("GET", "/app", "GetApp", self._get_app),
            ("PATCH", "/app", "UpdateApp", self._update_app),
            ("POST", "/commands", "CreateCommand", self._create_command),
            ("GET", "/commands", "ListCommands", self._list_commands),
            ("GET", "/commands/{name}", "GetCommand", self._get_command),
            ("PUT", "/commands/{name}", "UpdateCommand", self._update_command),
            ("DELETE", "/commands/{name}", "DeleteCommand", self._delete_command),
            ("POST", "/channeltypes", "CreateChannelType", self._create_channel_type),
            ("GET", "/channeltypes", "ListChannelTypes", self._list_channel_types),
            ("GET", "/channeltypes/{name}", "GetChannelType", self._get_channel_type),
            ("PUT", "/channeltypes/{name}", "UpdateChannelType", self._update_channel_type),
            ("POST", "/users", "UpdateUsers", self._upsert_users),
            ("POST", "/channels/{type}/query", "GetOrCreateDistinctChannel", self._query_channel),
            ("POST", "/channels/{type}/{id}/query", "GetOrCreateChannel", self._query_channel),
            ("POST", "/channels/{type}/{id}/message", "SendMessage", self._send_message),
            ("POST", "/channels/{type}/{id}/event", "SendEvent", self._send_event),
            ("GET", "/messages/{id}", "GetMessage", self._get_message),
            ("POST", "/messages/{id}", "UpdateMessage", self._update_message),
            ("PUT", "/messages/{id}", "UpdateMessagePartial", self._update_message_partial),
            ("GET", "/messages/{id}/replies", "GetReplies", self._get_replies),
        ]
        routes = [Route(path, _Endpoint(self._serve, op, handler), methods=[method], name=op)
                  for method, path, op, handler in table]
        # Last: anything unmatched is a Stream-style 404, recorded like the rest.
        every_method = ["GET", "POST", "PUT", "PATCH", "DELETE"]
        routes.append(Route("/{path:path}", _Endpoint(self._serve, "Unknown", self._unknown), methods=every_method))
        return routes

    async def _serve(self, operation: str, handler: Handler, scope: Scope, receive: Receive, send: Send) -> None:
        """What every Stream request goes through around its handler: faults, auth, JSON, errors, recording."""
        started = time.perf_counter()
        request = Request(scope, receive)
        raw = await _read_body(receive)
        path = _url_path(request)
        query = dict(_query_pairs(scope["query_string"]))
        body: Any = None
        status, headers = 200, {}
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            pass
        try:
            await self._apply_fault(request.method, path)
            self._authenticate(request, query)
            if not isinstance(body, dict):
                raise bad_input("invalid JSON request body")
            payload = await handler(request, body)
        except StreamError as err:
            status, headers, payload = err.status, err.headers, err.body(operation)
        except Exception as exc:  # a bug in the stand-in: still answer like Stream, and record it
            err = StreamError(500, f"internal error: {exc!r}")
            status, headers, payload = err.status, err.headers, err.body(operation)
        payload["duration"] = f"{(time.perf_counter() - started) * 1000:.2f}ms"
        with self._lock:
            self._calls.append({
                "method": request.method, "path": path, "query": query,
                "json": body, "status": status, "operation": operation,
                "at": time.monotonic(),  # when the call was answered, for latency measurements
            })
        await _send_json(send, status, headers, payload)

    async def _apply_fault(self, method: str, path: str) -> None:
        if not self._faults:  # the usual case, settled without taking the lock
            return
        with self._lock:
            fault = next((f for f in self._faults if f.method in ("*", method) and f.pattern.search(path)
                          and (f.chance >= 1 or self._random.random() < f.chance)), None)
            if fault is not None:
                fault.times -= 1
                if fault.times <= 0:
                    self._faults.remove(fault)
        if fault is None:
            return
        if fault.delay:
            await asyncio.sleep(fault.delay)
        if fault.status is not None:
            message = f"injected fault (HTTP {fault.status})"
            headers = fault.headers
            if fault.status == 429:  # Stream always sends these on a 429; explicit headers win
                message = "Too many requests, check response headers for more info."
                reset = str(int(time.time()) + fault.reset_in)
                headers = {"X-RateLimit-Limit": "1000", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": reset, **headers}
            raise StreamError(fault.status, message, headers=headers)

    def _authenticate(self, request: Request, query: dict[str, str]) -> None:
        """Server-side auth as the SDK sends it: ?api_key= plus an HS256 JWT {"server": true}."""
        if query.get("api_key") != self.api_key:
            raise StreamError(401, "api_key not found or not valid")
        if request.headers.get("stream-auth-type", "jwt") != "jwt":
            raise StreamError(401, "stream-auth-type must be jwt")
        token = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        if not token:
            raise StreamError(401, "JWTAuth error: token is not provided")
        try:
            claims = self._verified_claims(token)
        except jwt.PyJWTError:
            raise StreamError(401, "JWTAuth error: signature is not valid. Make sure the token is created "
                                   f'using the secret for API key "{self.api_key}"')
        if claims.get("server") is not True:
            raise StreamError(401, "JWTAuth error: this endpoint needs a server-side token")

    def _verified_claims(self, token: str) -> Json:
        """`jwt.decode`, remembered: verifying costs more than the rest of a typical request. A token
        without time claims (the SDK's server token has none) verifies the same way every time; one
        with exp, nbf or iat is verified afresh, as the clock decides whether it is valid. Only
        tokens signed with the secret are kept, so the cache is as small as the set of clients."""
        key = (token, self.api_secret)
        claims = self._verified_tokens.get(key)
        if claims is None:
            claims = jwt.decode(token, self.api_secret, algorithms=["HS256"])
            if not claims.keys() & _TIME_CLAIMS:
                self._verified_tokens[key] = claims
        return claims

    async def _unknown(self, request: Request, body: Json) -> Json:
        raise not_found(f"no such endpoint: {request.method} {_url_path(request)}")

    # ---- app settings ------------------------------------------------------------------

    async def _get_app(self, request: Request, body: Json) -> Json:
        app = _copy(self._settings)
        app["channel_configs"] = {n: self._channel_type_view(t, expand=True) for n, t in self._channel_types.items()}
        return {"app": app}

    async def _update_app(self, request: Request, body: Json) -> Json:
        for key, value in body.items():
            if key in _URL_SETTINGS:
                if not isinstance(value, str) or (value and not self._is_url(value)):
                    raise bad_input(f"{key} must be a valid URL")
            elif key == "enable_hook_payload_compression" and not isinstance(value, bool):
                raise bad_input(f"{key} must be a boolean")
        with self._lock:
            self._settings.update(body)
        return {}

    @staticmethod
    def _is_url(value: str) -> bool:
        parsed = urlparse(value)
        return parsed.scheme in ("http", "https") and bool(parsed.netloc)

    # ---- commands ----------------------------------------------------------------------

    def _command_fields(self, body: Json, required: tuple[str, ...]) -> Json:
        for field in required:
            if not body.get(field):
                raise bad_input(f"{field} is a required field")
        fields = {k: body[k] for k in ("name", "description", "args", "set") if body.get(k) is not None}
        for key, value in fields.items():
            if not isinstance(value, str) or len(value) > 255:
                raise bad_input(f"{key} must be a string of at most 255 characters")
        return fields

    async def _create_command(self, request: Request, body: Json) -> Json:
        fields = self._command_fields(body, ("name", "description"))
        name = fields["name"]
        # Whether a custom command may shadow a built-in is undocumented; refusing is the safe guess.
        if name in self._commands or name in BUILTIN_COMMANDS:
            raise bad_input(f"command {name} already exists")
        now = _now()
        command = {"name": name, "description": fields["description"], "args": fields.get("args", ""),
                   "set": fields.get("set", ""), "created_at": now, "updated_at": now}
        with self._lock:
            self._commands[name] = command
        return {"command": _copy(command)}

    async def _list_commands(self, request: Request, body: Json) -> Json:
        return {"commands": _copy(list(self._commands.values()))}

    def _custom_command(self, name: str) -> Json:
        if name not in self._commands:
            raise not_found(f"command {name} doesn't exist")
        return self._commands[name]

    async def _get_command(self, request: Request, body: Json) -> Json:
        return _copy(self._custom_command(request.path_params["name"]))

    async def _update_command(self, request: Request, body: Json) -> Json:
        command = self._custom_command(request.path_params["name"])
        fields = self._command_fields(body, ("description",))
        fields.pop("name", None)  # commands cannot be renamed
        with self._lock:
            command.update(fields, updated_at=_now())
        return {"command": _copy(command)}

    async def _delete_command(self, request: Request, body: Json) -> Json:
        name = request.path_params["name"]
        self._custom_command(name)
        users = sorted(t["name"] for t in self._channel_types.values() if name in t["commands"])
        if users:
            raise bad_input(f"command {name} is still enabled on channel types {users}; remove it there first")
        with self._lock:
            del self._commands[name]
        return {"name": name}

    # ---- channel types -----------------------------------------------------------------

    def _new_channel_type(self, name: str, commands: list[str]) -> Json:
        now = _now()
        settings = _copy(_CHANNEL_TYPE_SETTINGS)
        return {"name": name, **settings, "commands": list(commands), "created_at": now, "updated_at": now}

    def _expand_commands(self, names: list[str]) -> list[Json]:
        """Names -> full command objects, as Stream shows them in channel configs.
        "all" covers the built-ins (whether it also covers custom commands is undocumented:
        here it does not); a set name covers every command in that set."""
        every = {**BUILTIN_COMMANDS, **self._commands}
        picked: dict[str, Json] = {}
        for name in names:
            if name == "all":
                picked.update(BUILTIN_COMMANDS)
            elif name in every:
                picked[name] = every[name]
            else:
                picked.update({n: c for n, c in every.items() if c["set"] == name})
        return [{k: c[k] for k in ("name", "description", "args", "set")} for c in picked.values()]

    def _validate_command_names(self, names: Any) -> list[str]:
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise bad_input("commands must be a list of command names")
        sets = {c["set"] for c in [*BUILTIN_COMMANDS.values(), *self._commands.values()] if c["set"]}
        for name in names:
            if name != "all" and name not in BUILTIN_COMMANDS and name not in self._commands and name not in sets:
                raise bad_input(f"command {name} doesn't exist")
        return list(names)

    def _channel_type(self, name: str) -> Json:
        if name not in self._channel_types:
            raise not_found(f"channel type {name} doesn't exist")
        return self._channel_types[name]

    def _channel_type_view(self, channel_type: Json, *, expand: bool) -> Json:
        """GET answers carry full command objects; create/update answers carry names."""
        view = _copy(channel_type)
        if expand:
            view["commands"] = self._expand_commands(channel_type["commands"])
        return view

    def _apply_channel_type_settings(self, channel_type: Json, body: Json) -> None:
        if "commands" in body:
            body = {**body, "commands": self._validate_command_names(body["commands"])}
        length = body.get("max_message_length", channel_type["max_message_length"])
        if not isinstance(length, int) or not 1 <= length <= 20000:
            raise bad_input("max_message_length must be an integer between 1 and 20000")
        with self._lock:
            channel_type.update({k: v for k, v in body.items() if k not in ("name", "created_at")}, updated_at=_now())

    async def _create_channel_type(self, request: Request, body: Json) -> Json:
        name = body.get("name")
        if not isinstance(name, str) or not name:
            raise bad_input("name is a required field")
        if name in self._channel_types:
            raise bad_input(f"channel type {name} already exists")
        if len(self._channel_types) >= MAX_CHANNEL_TYPES:
            raise bad_input(f"an app can have at most {MAX_CHANNEL_TYPES} channel types")
        channel_type = self._new_channel_type(name, [])
        self._apply_channel_type_settings(channel_type, body)
        with self._lock:
            self._channel_types[name] = channel_type
        return self._channel_type_view(channel_type, expand=False)

    async def _list_channel_types(self, request: Request, body: Json) -> Json:
        return {"channel_types": {n: self._channel_type_view(t, expand=True) for n, t in self._channel_types.items()}}

    async def _get_channel_type(self, request: Request, body: Json) -> Json:
        return self._channel_type_view(self._channel_type(request.path_params["name"]), expand=True)

    async def _update_channel_type(self, request: Request, body: Json) -> Json:
        channel_type = self._channel_type(request.path_params["name"])
        self._apply_channel_type_settings(channel_type, body)  # `commands` replaces, never merges
        return self._channel_type_view(channel_type, expand=False)

    # ---- users -------------------------------------------------------------------------

    async def _upsert_users(self, request: Request, body: Json) -> Json:
        users = body.get("users")
        if not isinstance(users, dict) or not all(isinstance(u, dict) for u in users.values()):
            raise bad_input("users must be a map of user id to user object")
        stored = {}
        for user_id, data in users.items():
            if data.get("id", user_id) != user_id:
                raise bad_input(f"user id {data.get('id')} does not match its key {user_id}")
            stored[user_id] = self._store_user(user_id, data)
        return {"users": _copy(stored)}

    def _store_user(self, user_id: str, data: Json) -> Json:
        """Upsert replaces the user's data but keeps created_at, as Stream does."""
        now = _now()
        previous = self._users.get(user_id, {})
        user = {"role": "user", "banned": False, "online": False, **data, "id": user_id,
                "created_at": previous.get("created_at", now), "updated_at": now}
        with self._lock:
            self._users[user_id] = user
        return user

    def _acting_user(self, payload: Json, *, required: bool = True) -> Json | None:
        """The user a server-side call acts as ({"user": {"id"}} or "user_id").
        Unknown ids are created on the fly (a guess: Stream may insist on an upsert first)."""
        ref = payload.get("user") or ({"id": payload["user_id"]} if payload.get("user_id") else None)
        if not isinstance(ref, dict) or not ref.get("id"):
            if required:
                raise bad_input("either user or user_id must be provided when using server side auth")
            return None
        return self._users.get(ref["id"]) or self._store_user(ref["id"], {})

    # ---- channels ----------------------------------------------------------------------

    def _ensure_channel(
        self, channel_type: str, channel_id: str, created_by: Json | None, data: Json | None = None
    ) -> Json:
        self._channel_type(channel_type)
        cid = f"{channel_type}:{channel_id}"
        if cid not in self._channels:
            if created_by is None:
                raise bad_input(
                    "either data.created_by or data.created_by_id must be provided when using server side auth"
                )
            now = _now()
            extra = {k: v for k, v in (data or {}).items() if k not in ("members", "created_by", "created_by_id")}
            channel = {**extra, "id": channel_id, "type": channel_type, "cid": cid, "created_by": created_by,
                       "frozen": False, "disabled": False, "created_at": now, "updated_at": now}
            with self._lock:
                self._channels[cid] = channel
                self._members[cid] = []
        return self._channels[cid]

    def _add_members(self, cid: str, members: Any) -> None:
        ids = [m if isinstance(m, str) else m.get("user_id") for m in members or []]
        for user_id in ids:
            if user_id and user_id not in self._members[cid]:
                if user_id not in self._users:
                    self._store_user(user_id, {})
                with self._lock:
                    self._members[cid].append(user_id)

    async def _query_channel(self, request: Request, body: Json) -> Json:
        channel_type = request.path_params["type"]
        data = body.get("data") or {}
        channel_id = request.path_params.get("id")
        if channel_id is None:  # a distinct channel: its id follows from its members
            members = sorted(m if isinstance(m, str) else m.get("user_id", "") for m in data.get("members") or [])
            if not members:
                raise bad_input("a channel without an id needs data.members")
            channel_id = "!members-" + hashlib.sha1(",".join(members).encode()).hexdigest()[:20]
        limit = (body.get("messages") or {}).get("limit", 25)
        if not isinstance(limit, int) or not 0 <= limit <= 300:
            raise bad_input("messages.limit must be between 0 and 300")
        creator = data.get("created_by") or ({"id": data["created_by_id"]} if data.get("created_by_id") else None)
        created_by = self._acting_user({"user": creator}, required=False)
        channel = self._ensure_channel(channel_type, channel_id, created_by, data)
        self._add_members(channel["cid"], data.get("members"))
        visible = _oldest_first(  # thread replies show in the channel only when sent with show_in_channel
            m for m in self._messages.values()
            if m["cid"] == channel["cid"] and (not m.get("parent_id") or m.get("show_in_channel"))
        )
        return {
            "channel": self._channel_view(channel),
            "messages": _copy(visible[len(visible) - limit:] if limit else []),
            "members": [self._member_view(user_id) for user_id in self._members[channel["cid"]]],
            "read": [], "pinned_messages": [], "watcher_count": 0,
        }

    def _channel_view(self, channel: Json) -> Json:
        view = _copy(channel)
        view["member_count"] = len(self._members[channel["cid"]])
        view["config"] = self._channel_type_view(self._channel_types[channel["type"]], expand=True)
        return view

    def _member_view(self, user_id: str) -> Json:
        user = self._users[user_id]
        return {"user_id": user_id, "user": _copy(user), "channel_role": "channel_member",
                "created_at": user["created_at"], "updated_at": user["updated_at"]}

    # ---- messages ----------------------------------------------------------------------

    def _check_text(self, text: Any, channel_type: str) -> str:
        if not isinstance(text, str):
            raise bad_input("message.text must be a string")
        limit = self._channel_types[channel_type]["max_message_length"]
        if len(text) > limit:
            raise bad_input(f"message is too long: {len(text)} characters, "
                            f"max_message_length of channel type {channel_type} is {limit}")
        return text

    def _stored_message(self, message_id: str) -> Json:
        if message_id not in self._messages:
            raise not_found(f"message with id {message_id} doesn't exist")
        return self._messages[message_id]

    def _enabled_commands(self, channel_type: str) -> dict[str, Json]:
        return {c["name"]: c for c in self._expand_commands(self._channel_types[channel_type]["commands"])}

    async def _send_message(self, request: Request, body: Json) -> Json:
        channel_type, channel_id = request.path_params["type"], request.path_params["id"]
        incoming = body.get("message")
        if not isinstance(incoming, dict):
            raise bad_input("message is a required field")
        self._channel_type(channel_type)
        requested_type = incoming.get("type") or "regular"
        if requested_type not in ("regular", "system"):  # ephemeral/error only come from command hooks
            raise bad_input(f"message.type must be one of: regular system, got {requested_type}")
        text = self._check_text(incoming.get("text", ""), channel_type)
        message_id = incoming.get("id") or str(uuid.uuid4())
        if message_id in self._messages:
            raise bad_input(f"a message with ID {message_id} already exists")
        cid = f"{channel_type}:{channel_id}"
        parent_id = incoming.get("parent_id")
        if parent_id and (parent_id not in self._messages or self._messages[parent_id]["cid"] != cid):
            raise bad_input(f"parent message {parent_id} doesn't exist in channel {cid}")
        user = self._acting_user(incoming)
        # Stream wants channels created first; this stand-in creates them on first message.
        self._ensure_channel(channel_type, channel_id, created_by=user)

        message = self._new_message(incoming, message_id, cid, user, requested_type, text)
        # `command` is set only for a command enabled on the channel type.
        command = message.get("command")
        if command in self._commands and self._settings["custom_action_handler_url"]:
            message = await self._call_command_hook(message, user)

        if message["type"] in ("error", "ephemeral"):  # seen by the sender only, never stored
            with self._lock:
                self._ephemeral.setdefault(user["id"], []).append(_copy(message))
            self._publish({"type": "message.new", "cid": cid, "message": message, "only_for": user["id"],
                           "created_at": _now()})
            return {"message": message}
        with self._lock:
            if message_id in self._messages:  # the same id sent twice while the hook ran
                raise bad_input(f"a message with ID {message_id} already exists")
            self._messages[message_id] = message
            if parent_id:
                parent = self._messages[parent_id]
                self._messages[parent_id] = {**parent, "reply_count": parent["reply_count"] + 1}
        self._publish({"type": "message.new", "cid": cid, "message": message, "user": user, "created_at": _now()})
        return {"message": message}

    def _new_message(self, incoming: Json, message_id: str, cid: str, user: Json, message_type: str, text: str) -> Json:
        """A message as Stream stores it: client fields (custom ones at top level) plus server fields."""
        now = _now()
        mentioned = [m if isinstance(m, str) else m.get("id") for m in incoming.get("mentioned_users") or []]
        message = {k: v for k, v in incoming.items() if k not in _SERVER_OWNED and k != "user_id"}
        message.update({
            "id": message_id, "text": text, "html": _render_html(text), "type": message_type, "user": user, "cid": cid,
            "attachments": incoming.get("attachments") or [], "silent": bool(incoming.get("silent", False)),
            "mentioned_users": [self._users.get(u) or {"id": u} for u in mentioned],
            "latest_reactions": [], "own_reactions": [], "reaction_counts": {}, "reaction_scores": {},
            "reply_count": 0, "pinned": False, "shadowed": False, "created_at": now, "updated_at": now,
        })
        if incoming.get("parent_id"):
            message["parent_id"] = incoming["parent_id"]
            message["show_in_channel"] = bool(incoming.get("show_in_channel", False))
            if message_type == "regular":
                message["type"] = "reply"
        parsed = _COMMAND.match(text)
        if parsed and parsed.group(1) in self._enabled_commands(cid.split(":", 1)[0]):
            message["command"], message["args"] = parsed.group(1), parsed.group(2).strip()
        return message

    async def _call_command_hook(self, message: Json, user: Json) -> Json:
        """POST the message to custom_action_handler_url, as Stream does, inside the send call;
        then apply the answer. Any failure (timeout, non-2xx, bad JSON) keeps the message as is."""
        url = self._settings["custom_action_handler_url"].replace("{type}", message["command"])
        raw = json.dumps({"message": message, "user": user}, separators=(",", ":")).encode()
        headers = {
            "Content-Type": "application/json",
            # Signed over the uncompressed bytes, even when the body is sent gzipped.
            "X-Signature": hmac.new(self.api_secret.encode(), raw, hashlib.sha256).hexdigest(),
            "X-Webhook-Id": str(uuid.uuid4()), "X-Webhook-Attempt": "1", "X-Api-Key": self.api_key,
        }
        content = raw
        if self._settings.get("enable_hook_payload_compression"):
            content = gzip.compress(raw)
            headers["Content-Encoding"] = "gzip"
        record: Json = {"url": url, "headers": headers, "payload": json.loads(raw), "compressed": content is not raw,
                        "status": None, "response": None, "error": None, "elapsed": None, "outcome": "unchanged"}
        answer: Any = None
        started = time.perf_counter()
        try:
            async with httpx.AsyncClient(trust_env=False) as client:  # the handler is local: no proxies
                sending = client.post(url, content=content, headers=headers, timeout=self.hook_timeout)
                response = await asyncio.wait_for(sending, self.hook_timeout)  # a budget for the whole call
            record["status"], record["response_text"] = response.status_code, response.text
            if response.is_success:
                answer = record["response"] = response.json()
        except (asyncio.TimeoutError, httpx.TimeoutException):
            record["error"] = "timeout"
        except httpx.HTTPError as exc:
            record["error"] = f"{type(exc).__name__}: {exc}"
        except ValueError:
            record["error"] = "response is not JSON"
        record["elapsed"] = time.perf_counter() - started
        applied, record["outcome"] = self._apply_hook_answer(message, answer)
        with self._lock:
            self._hook_calls.append(record)
        return applied

    @staticmethod
    def _apply_hook_answer(message: Json, answer: Any) -> tuple[Json, str]:
        """The answer may rewrite text, attachments, type and custom fields; the author stays.
        `{"message": null}` on a first call is undocumented: treated as "no change" here."""
        if not isinstance(answer, dict) or not isinstance(answer.get("message"), dict):
            return message, "unchanged"
        applied = _copy(message)
        for key, value in answer["message"].items():
            if key == "type":
                if value in ("ephemeral", "error") or (value == "regular" and not message.get("parent_id")):
                    applied["type"] = value
            elif key in _HOOK_REWRITABLE or key not in _KNOWN_FIELDS:
                applied[key] = value
        if applied.get("text") != message.get("text"):
            applied["html"] = _render_html(str(applied.get("text") or ""))
        if applied["type"] in ("ephemeral", "error"):
            return applied, applied["type"]
        return applied, "unchanged" if applied == message else "rewritten"

    def _save_update(self, message: Json, user: Json | None) -> Json:
        message["updated_at"] = _now()
        message["html"] = _render_html(message.get("text", ""))
        with self._lock:
            self._messages[message["id"]] = message
        self._publish({"type": "message.updated", "cid": message["cid"], "message": message,
                       "user": user or message["user"], "created_at": _now()})
        return {"message": message}

    async def _get_message(self, request: Request, body: Json) -> Json:
        return {"message": _copy(self._stored_message(request.path_params["id"]))}

    async def _update_message_partial(self, request: Request, body: Json) -> Json:
        current = self._stored_message(request.path_params["id"])
        to_set, to_unset = body.get("set") or {}, body.get("unset") or []
        if not isinstance(to_set, dict) or not isinstance(to_unset, list):
            raise bad_input("set must be an object and unset a list of field names")
        frozen = (set(to_set) | set(to_unset)) & (_SERVER_OWNED | {"type"})
        if frozen:
            raise bad_input(f"fields cannot be updated: {sorted(frozen)}")
        if "text" in to_set:
            self._check_text(to_set["text"], current["cid"].split(":", 1)[0])
        user = self._acting_user(body, required=False)
        updated = {**current, **to_set}
        for key in to_unset:
            updated.pop(key, None)
        updated.setdefault("text", "")
        updated.setdefault("attachments", [])
        return self._save_update(updated, user)

    async def _update_message(self, request: Request, body: Json) -> Json:
        """A full update: client fields are replaced as a whole (absent custom fields go away)."""
        current = self._stored_message(request.path_params["id"])
        incoming = body.get("message")
        if not isinstance(incoming, dict):
            raise bad_input("message is a required field")
        text = self._check_text(incoming.get("text", ""), current["cid"].split(":", 1)[0])
        user = self._acting_user(incoming, required=False)
        kept = {k: v for k, v in current.items() if k in _SERVER_OWNED or k == "type"}
        client_fields = {k: v for k, v in incoming.items() if k not in _SERVER_OWNED and k != "type"}
        updated = _copy({**kept, **client_fields, "text": text})
        updated.setdefault("attachments", [])
        return self._save_update(updated, user)

    async def _get_replies(self, request: Request, body: Json) -> Json:
        parent = self._stored_message(request.path_params["id"])
        try:
            limit = int(request.query_params.get("limit", 10))  # Stream's default here is a guess
        except ValueError:
            raise bad_input("limit must be an integer")
        if not 0 <= limit <= 300:
            raise bad_input("limit must be between 0 and 300")
        replies = _oldest_first(m for m in self._messages.values() if m.get("parent_id") == parent["id"])
        before = request.query_params.get("id_lt")
        if before:  # paging backwards: only replies older than that one
            ids = [m["id"] for m in replies]
            replies = replies[: ids.index(before)] if before in ids else []
        return {"messages": _copy(replies[len(replies) - limit:] if limit else [])}

    # ---- events ------------------------------------------------------------------------

    async def _send_event(self, request: Request, body: Json) -> Json:
        channel_type, channel_id = request.path_params["type"], request.path_params["id"]
        incoming = body.get("event")
        if not isinstance(incoming, dict) or not isinstance(incoming.get("type"), str) or not incoming["type"]:
            raise bad_input("event.type is a required field")
        user = self._acting_user(incoming)
        channel = self._ensure_channel(channel_type, channel_id, created_by=user)
        event = {**incoming, "user": user, "cid": channel["cid"], "channel_type": channel_type,
                 "channel_id": channel_id, "created_at": _now()}
        with self._lock:
            self._events.append(event)
        self._publish(event)
        return {"event": event}
