"""The Stream stand-in with the fast paths that only benchmarks need.

At ~1,000 writes a second the stand-in shares the machine's two cores with the server under
test, so its own CPU per request shows up in the figures. This subclass answers exactly what
the product's stand-in answers, and records the same, for about half the CPU per write
(profiled at ~1,000 SendMessage/s; benchmarks/profiles.md, finding 3):

- verified JWT claims are remembered per token (a token with exp, nbf or iat is verified afresh);
- SendMessage, UpdateMessagePartial and SendEvent go straight to their endpoint, skipping
  Starlette's walk over every route and all its middleware but the one answering a 500;
- requests are read and answered from raw ASGI, with one shared JSON encoder; the recorded
  path and query skip Starlette's URL rebuild and query parsing where they cannot differ.
"""

from __future__ import annotations

import functools
import json
import re
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.middleware.errors import ServerErrorMiddleware
from starlette.requests import ClientDisconnect, Request
from starlette.routing import Match, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from slashbots.sandbox.standin import StreamStandIn
from slashbots.sandbox.standin.api import Handler, StreamAPI
from slashbots.sandbox.standin.auth import ServerAuth

# Most of the load (bots posting and streaming replies) is these calls.
HOT_OPERATIONS = {"SendMessage", "UpdateMessagePartial", "SendEvent"}
_TIME_CLAIMS = {"exp", "nbf", "iat"}  # JWT claims whose validity depends on the clock
# Paths that Starlette's `request.url.path` returns unchanged. It escapes ?, # and \ and
# re-parses the whole URL, slow enough to matter on every request.
_PLAIN_PATH = re.compile(r"(?:/[A-Za-z0-9_.~!$&'()*+,;=:@%-]+)+/?")
# Starlette's JSONResponse encoding, with one encoder for all answers rather than one per answer.
_encode_json = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode


class CachedServerAuth(ServerAuth):
    """`jwt.decode`, remembered: verifying costs more than the rest of a typical request. A token
    without time claims (the SDK's server token has none) verifies the same way every time. Only
    tokens signed with the secret are kept, so the cache is as small as the set of clients."""

    def __init__(self, api_key: str, api_secret: str) -> None:
        super().__init__(api_key, api_secret)
        self._verified: dict[str, Any] = {}

    def claims(self, token: str) -> Any:
        claims = self._verified.get(token)
        if claims is None:
            claims = super().claims(token)
            if not claims.keys() & _TIME_CLAIMS:
                self._verified[token] = claims
        return claims


class _Endpoint:
    """One operation as a raw ASGI app. A class, not a closure, because Starlette's Route calls a
    function as `request -> response` and anything else as ASGI."""

    def __init__(self, api: StreamAPI, operation: str, handler: Handler) -> None:
        self.api, self.operation, self.handler = api, operation, handler

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        raw = await _read_body(receive)
        query = dict(_query_pairs(scope["query_string"]))
        status, headers, payload = await self.api.answer(self.operation, self.handler, request, raw,
                                                         _url_path(request), query)
        await _send_json(send, status, headers, payload)


class FastStreamAPI(StreamAPI):
    auth_class = CachedServerAuth

    def endpoint(self, operation: str, handler: Handler) -> Any:
        return _Endpoint(self, operation, handler)

    def asgi_app(self) -> ASGIApp:
        """Starlette's router, with a shortcut for the hot operations. Their paths overlap no other
        route's, so a full match here is the route Starlette would have picked; anything else
        (other calls, wrong methods, lifespan) takes the ordinary way."""
        routes = self.routes()
        router = Starlette(routes=routes, lifespan=self.lifespan)
        hot: dict[str, list[tuple[Route, ASGIApp]]] = {}
        for route in routes:
            if route.name in HOT_OPERATIONS:
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


class FastStreamStandIn(StreamStandIn):
    """The stand-in the benchmarks run: same answers and records, less CPU per request."""

    api_class = FastStreamAPI


@functools.lru_cache(maxsize=64)
def _query_pairs(query_string: bytes) -> tuple[tuple[str, str], ...]:
    """The query string parsed as Starlette's QueryParams parses it. Cached: every SDK call
    carries the same one (?api_key=...)."""
    return tuple(parse_qsl(query_string.decode("latin-1"), keep_blank_values=True))


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

