"""Stream's REST API, as the stream-chat SDK calls it: each route, and what every request goes
through around its operation (injected faults, auth, rate limits, JSON, Stream's error
answers, the record).
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import AsyncIterator
from typing import Any, Awaitable, Callable

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from slashbots.sandbox.standin.app_config import AppConfig
from slashbots.sandbox.standin.auth import ServerAuth
from slashbots.sandbox.standin.chat import Chat
from slashbots.sandbox.standin.errors import StreamError, bad_input, not_found
from slashbots.sandbox.standin.faults import Faults
from slashbots.sandbox.standin.rate_limits import RateLimits
from slashbots.sandbox.standin.recorder import Recorder
from slashbots.sandbox.standin.values import Json

Query = dict[str, str]
Handler = Callable[[Request, Query, Json], Awaitable[Json]]


class StreamAPI:
    """The routes over one app's state. Subclasses may serve them differently (the benchmarks'
    stand-in skips Starlette's machinery on hot paths) but answer and record the same."""

    auth_class: type[ServerAuth] = ServerAuth

    def __init__(self, *, api_key: str, api_secret: str, config: AppConfig, chat: Chat, recorder: Recorder,
                 faults: Faults, limits: RateLimits, on_shutdown: Callable[[], Awaitable[None]]) -> None:
        self.auth = self.auth_class(api_key, api_secret)
        self.config = config
        self.chat = chat
        self.recorder = recorder
        self.faults = faults
        self.limits = limits
        self._on_shutdown = on_shutdown

    def asgi_app(self) -> ASGIApp:
        return Starlette(routes=self.routes(), lifespan=self.lifespan)

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        """Served with a lifespan (uvicorn's default), the work left running stops with the server."""
        yield
        await self._on_shutdown()

    def routes(self) -> list[Route]:
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
            ("POST", "/channels/{type}/{id}", "UpdateChannel", self._update_channel),
            ("POST", "/channels/{type}/{id}/message", "SendMessage", self._send_message),
            ("POST", "/channels/{type}/{id}/event", "SendEvent", self._send_event),
            ("GET", "/messages/{id}", "GetMessage", self._get_message),
            ("POST", "/messages/{id}", "UpdateMessage", self._update_message),
            ("PUT", "/messages/{id}", "UpdateMessagePartial", self._update_message_partial),
            ("DELETE", "/messages/{id}", "DeleteMessage", self._delete_message),
            ("GET", "/messages/{id}/replies", "GetReplies", self._get_replies),
        ]
        routes = [Route(path, self.endpoint(op, handler), methods=[method], name=op)
                  for method, path, op, handler in table]
        # Last: anything unmatched is a Stream-style 404, recorded like the rest.
        every_method = ["GET", "POST", "PUT", "PATCH", "DELETE"]
        routes.append(Route("/{path:path}", self.endpoint("Unknown", self._unknown), methods=every_method))
        return routes

    def endpoint(self, operation: str, handler: Handler) -> Any:
        """The route endpoint serving one operation."""

        async def serve(request: Request) -> Response:
            raw = await request.body()
            status, headers, payload = await self.answer(
                operation, handler, request, raw, request.url.path, dict(request.query_params)
            )
            return JSONResponse(payload, status, headers)

        return serve

    async def answer(self, operation: str, handler: Handler, request: Request, raw: bytes, path: str,
                     query: Query) -> tuple[int, dict[str, str], Json]:
        """What every Stream request goes through around its handler: faults, auth, rate limits,
        JSON, errors, recording. Returns the status, headers and body to answer with."""
        started = time.perf_counter()
        body: Any = None
        status, headers, limit_headers = 200, {}, {}
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            pass
        try:
            await self.faults.apply(request.method, path)
            self.auth.check(request.headers, query)
            limit_headers = self.limits.admit(operation)
            if not isinstance(body, dict):
                raise bad_input("invalid JSON request body")
            payload = await handler(request, query, body)
        except StreamError as err:
            status, headers, payload = err.status, err.headers, err.body(operation)
        except Exception as exc:  # a bug in the stand-in: still answer like Stream, and record it
            bug = StreamError(500, f"internal error: {exc!r}")
            status, headers, payload = bug.status, bug.headers, bug.body(operation)
        payload["duration"] = f"{(time.perf_counter() - started) * 1000:.2f}ms"
        headers = {**limit_headers, **headers}  # an admitted call reports its window, whatever came of it
        self.recorder.call({
            "method": request.method, "path": path, "query": query,
            "json": body, "status": status, "operation": operation,
            "at": time.monotonic(),  # when the call was answered, for latency measurements
        })
        return status, headers, payload

    # ---- the operations: HTTP in, the app's state does the rest ----------------------------

    async def _unknown(self, request: Request, query: Query, body: Json) -> Json:
        raise not_found(f"no such endpoint: {request.method} {request.url.path}")

    async def _get_app(self, request: Request, query: Query, body: Json) -> Json:
        return self.config.get_app()

    async def _update_app(self, request: Request, query: Query, body: Json) -> Json:
        return self.config.update_app(body)

    async def _create_command(self, request: Request, query: Query, body: Json) -> Json:
        return self.config.create_command(body)

    async def _list_commands(self, request: Request, query: Query, body: Json) -> Json:
        return self.config.list_commands()

    async def _get_command(self, request: Request, query: Query, body: Json) -> Json:
        return self.config.get_command(request.path_params["name"])

    async def _update_command(self, request: Request, query: Query, body: Json) -> Json:
        return self.config.update_command(request.path_params["name"], body)

    async def _delete_command(self, request: Request, query: Query, body: Json) -> Json:
        return self.config.delete_command(request.path_params["name"])

    async def _create_channel_type(self, request: Request, query: Query, body: Json) -> Json:
        return self.config.create_channel_type(body)

    async def _list_channel_types(self, request: Request, query: Query, body: Json) -> Json:
        return self.config.list_channel_types()

    async def _get_channel_type(self, request: Request, query: Query, body: Json) -> Json:
        return self.config.get_channel_type(request.path_params["name"])

    async def _update_channel_type(self, request: Request, query: Query, body: Json) -> Json:
        return self.config.update_channel_type(request.path_params["name"], body)

    async def _upsert_users(self, request: Request, query: Query, body: Json) -> Json:
        return self.chat.upsert_users(body)

    async def _query_channel(self, request: Request, query: Query, body: Json) -> Json:
        return self.chat.query_channel(request.path_params["type"], request.path_params.get("id"), body)

    async def _update_channel(self, request: Request, query: Query, body: Json) -> Json:
        return self.chat.update_channel(request.path_params["type"], request.path_params["id"], body)

    async def _delete_message(self, request: Request, query: Query, body: Json) -> Json:
        return self.chat.delete_message(request.path_params["id"], query)

    async def _send_message(self, request: Request, query: Query, body: Json) -> Json:
        return await self.chat.send_message(request.path_params["type"], request.path_params["id"], body)

    async def _send_event(self, request: Request, query: Query, body: Json) -> Json:
        return self.chat.send_event(request.path_params["type"], request.path_params["id"], body)

    async def _get_message(self, request: Request, query: Query, body: Json) -> Json:
        return self.chat.get_message(request.path_params["id"])

    async def _update_message(self, request: Request, query: Query, body: Json) -> Json:
        return self.chat.update_message(request.path_params["id"], body)

    async def _update_message_partial(self, request: Request, query: Query, body: Json) -> Json:
        return self.chat.update_message_partial(request.path_params["id"], body)

    async def _get_replies(self, request: Request, query: Query, body: Json) -> Json:
        return self.chat.get_replies(request.path_params["id"], query)
