"""A scriptable stand-in for the OpenAI API, to serve on a real loopback socket.

It speaks the wire format of the real service (see /work/shared/reference/openai-api.md):
moderation JSON, Chat Completions as SSE ``data:`` chunks shaped like OpenAI's recorded
streams (role chunk, content chunks, finish chunk, usage chunk with empty ``choices``,
``[DONE]``), and the standard error envelope. Tests queue what the next calls answer and
read back every request it received::

    standin = OpenAIStandIn()
    standin.moderations.append(Moderation(flagged=True, categories=("violence",)))
    standin.chats.append(ErrorReply(429, rate_limited(), headers={"retry-after-ms": "10"}))
    standin.chats.append(Stream(["Hel", "lo"]))
    with LoopbackServer(standin.app) as server: ...
    assert standin.tokens == {"prompt": 14, "completion": 2}  # what its usage chunks counted
    assert [r.path for r in standin.requests] == ["/v1/moderations", "/v1/chat/completions", ...]

When its queue is empty, moderation passes and chat streams "Hello there!".

Tool calls stream as OpenAI streams them (a first fragment with ``id``, ``type`` and the
name, then ``arguments`` in small pieces), or in the ways compatible servers differ: a
call whole in one chunk, every call at index 0, no ids, ids repeated on every fragment::

    standin.chats.append(tool_stream(Call("roll_dice", '{"sides": 6}'), whole=True, omit_ids=True))
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

CREATED = 1727346168


@dataclass
class Recorded:
    """One request as the stand-in received it."""

    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any
    client_port: int | None


@dataclass
class Moderation:
    """A moderation answer; ``categories`` are the API's keys that are flagged."""

    flagged: bool = False
    categories: Sequence[str] = ()


@dataclass
class ErrorReply:
    """A non-2xx answer with the standard error envelope (or any JSON body) and extra headers."""

    status: int
    body: Any
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass
class Raw:
    """Any answer at all, as bytes: an HTML error page, a whole non-streamed completion, ..."""

    status: int
    body: bytes
    content_type: str = "application/json"


@dataclass
class Call:
    """A tool call the model makes: ``arguments`` is the JSON text it sends (any text, in fact).

    ``cuts`` are the places the arguments are cut into fragments; without them, every
    ``Stream.fragment`` characters. ``id`` defaults to ``call_<n>``, numbered in the stream.
    """

    name: str
    arguments: str = "{}"
    id: str | None = None
    cuts: Sequence[int] | None = None


@dataclass
class Stream:
    """A streamed chat completion and the ways it can go wrong.

    ``newline`` is the line ending (``"\\n"``, ``"\\r\\n"`` or ``"\\r"``). ``awkward`` writes
    the stream in small pieces cut inside every CRLF and every multibyte UTF-8 character.
    ``error`` sends an error event after the pieces; ``drop`` closes the connection after
    the pieces without ending the HTTP response; ``stall`` waits before the first byte and
    ``stall_after`` after the content pieces, before the finish chunk (to trip read timeouts).
    """

    pieces: Sequence[str] = ("Hello", " there!")
    finish_reason: str | None = "stop"
    usage: bool = True
    done: bool = True
    newline: str = "\n"
    awkward: bool = False
    error: Mapping[str, Any] | None = None
    drop: bool = False
    stall: float = 0.0
    stall_after: float = 0.0
    azure_filters: bool = False
    comments: bool = False
    model: str = "gpt-4o-mini-2024-07-18"
    tool_calls: Sequence[Call] = ()  # after the text pieces, before the finish chunk
    fragment: int = 4  # characters of arguments per fragment, unless a call has its own cuts
    whole: bool = False  # each call in one fragment, arguments and all (Ollama)
    reuse_index: bool = False  # every call at index 0 (Ollama, some proxies)
    omit_ids: bool = False  # no call carries an id
    repeat_ids: bool = False  # id and name repeated on every fragment (LiteLLM, DeepSeek)
    pace: float = 0.0  # seconds between content pieces, each written alone (a model writing slowly)
    hung_up: threading.Event = field(default_factory=threading.Event)  # set when the client left mid-answer


def tool_stream(*calls: Call, finish_reason: str | None = "tool_calls", **options: Any) -> Stream:
    """A streamed turn that only calls tools (no text), as OpenAI sends one."""
    return Stream(pieces=(), tool_calls=calls, finish_reason=finish_reason, **options)


def error_body(message: str, type: str | None, code: Any = None, param: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


def rate_limited() -> dict[str, Any]:
    return error_body(
        "Rate limit reached for gpt-4o-mini in organization org-standin on requests per min (RPM): "
        "Limit 3, Used 3, Requested 1. Please try again in 20s.",
        "requests",
        "rate_limit_exceeded",
    )


def insufficient_quota() -> dict[str, Any]:
    return error_body(
        "You exceeded your current quota, please check your plan and billing details. For more information "
        "on this error, read the docs: https://platform.openai.com/docs/guides/error-codes/api-errors.",
        "insufficient_quota",
        "insufficient_quota",
    )


def invalid_api_key(key: str) -> dict[str, Any]:
    masked = f"{key[:8]}***...{key[-4:]}"
    return error_body(
        f"Incorrect API key provided: {masked}. You can find your API key at "
        "https://platform.openai.com/account/api-keys.",
        "invalid_request_error",
        "invalid_api_key",
    )


def context_length_exceeded() -> dict[str, Any]:
    return error_body(
        "This model's maximum context length is 4097 tokens. However, your messages resulted in 4294 tokens. "
        "Please reduce the length of the messages.",
        "invalid_request_error",
        "context_length_exceeded",
        "messages",
    )


def model_not_found(model: str) -> dict[str, Any]:
    return error_body(
        f"The model `{model}` does not exist or you do not have access to it.",
        "invalid_request_error",
        "model_not_found",
    )


def server_error() -> dict[str, Any]:
    return error_body(
        "The server had an error processing your request. Sorry about that! You can retry your request, or "
        "contact us through our help center at help.openai.com if you keep seeing this error. (Please include "
        "the request ID fb94b183e8b7bc5aca22fa62981cc107 in your email.)",
        "server_error",
    )


def moderation_json(reply: Moderation) -> dict[str, Any]:
    keys = [
        "harassment", "harassment/threatening", "sexual", "hate", "hate/threatening", "illicit",
        "illicit/violent", "self-harm/intent", "self-harm/instructions", "self-harm", "sexual/minors",
        "violence", "violence/graphic",
    ]
    flagged = set(reply.categories)
    return {
        "id": "modr-standin",
        "model": "omni-moderation-latest",
        "results": [
            {
                "flagged": reply.flagged,
                "categories": {key: key in flagged for key in keys} | {key: True for key in flagged},
                "category_scores": {key: 0.91 if key in flagged else 0.0001 for key in keys},
                "category_applied_input_types": {key: ["text"] for key in keys},
            }
        ],
    }


def chunk(
    model: str,
    *,
    delta: Mapping[str, Any] | None = None,
    finish_reason: str | None = None,
    usage: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """One ``chat.completion.chunk``, in OpenAI's field order."""
    body: dict[str, Any] = {
        "id": "chatcmpl-ABfw031mOJeYCSHe4yI2ZjOA6kMJL",
        "object": "chat.completion.chunk",
        "created": CREATED,
        "model": model,
        "system_fingerprint": "fp_5050236cbd",
    }
    if usage is not None:
        body["choices"] = []
        body["usage"] = usage
    else:
        body["choices"] = [
            {"index": 0, "delta": dict(delta or {}), "logprobs": None, "finish_reason": finish_reason}
        ]
    return body


def stream_events(reply: Stream) -> list[str]:
    """The data of every event of a streamed reply, in order, as JSON text (or ``[DONE]``)."""
    def dump(value: Any) -> str:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))

    events: list[str] = []
    if reply.azure_filters:
        events.append(dump({"choices": [], "created": 0, "id": "", "model": "", "object": "",
                            "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": {
                                "hate": {"filtered": False, "severity": "safe"}}}]}))
    events.append(dump(chunk(reply.model, delta={"role": "assistant", "content": "", "refusal": None})))
    for piece in reply.pieces:
        events.append(dump(chunk(reply.model, delta={"content": piece})))
    for fragment in tool_call_fragments(reply):
        events.append(dump(chunk(reply.model, delta={"tool_calls": [fragment]})))
    if reply.error is not None:
        events.append(dump({"error": dict(reply.error)}))
        return events
    if reply.drop:
        return events
    if reply.finish_reason is not None:
        events.append(dump(chunk(reply.model, delta={}, finish_reason=reply.finish_reason)))
    usage = usage_of(reply)
    if usage is not None:
        events.append(dump(chunk(reply.model, usage=usage)))
    if reply.done:
        events.append("[DONE]")
    return events


def usage_of(reply: Stream) -> dict[str, int] | None:
    """The usage chunk's counts, when the reply sends one: 14 prompt tokens, and a token a piece and one a call."""
    if not reply.usage or reply.error is not None or reply.drop:
        return None
    written = len(reply.pieces) + len(reply.tool_calls)
    return {"prompt_tokens": 14, "completion_tokens": written, "total_tokens": 14 + written}


def tool_call_fragments(reply: Stream) -> list[dict[str, Any]]:
    """The ``delta.tool_calls`` entries of a reply's calls, one per chunk, in order."""
    fragments: list[dict[str, Any]] = []
    for number, call in enumerate(reply.tool_calls):
        head: dict[str, Any] = {"index": 0 if reply.reuse_index else number}
        if not reply.omit_ids:
            head["id"] = call.id or f"call_{number}"
        if reply.whole:
            fragments.append({**head, "type": "function", "function": {"name": call.name, "arguments": call.arguments}})
            continue
        fragments.append({**head, "type": "function", "function": {"name": call.name, "arguments": ""}})
        text = call.arguments
        cuts = sorted(set(call.cuts)) if call.cuts is not None else range(reply.fragment, len(text), reply.fragment)
        points = [0, *(cut for cut in cuts if 0 < cut < len(text)), len(text)]
        for start, end in zip(points, points[1:]):
            if reply.repeat_ids:
                fragments.append({**head, "type": "function",
                                  "function": {"name": call.name, "arguments": text[start:end]}})
            else:
                fragments.append({"index": head["index"], "function": {"arguments": text[start:end]}})
    return fragments


def stream_bytes(reply: Stream) -> bytes:
    """The whole body of a streamed reply."""
    return b"".join(_stream_parts(reply))


def _stream_parts(reply: Stream) -> tuple[bytes, bytes]:
    """The body in two: through the last content or tool-call chunk, and the rest (finish, usage, [DONE])."""
    nl = reply.newline
    events = [f"data: {data}{nl}{nl}" for data in stream_events(reply)]
    content_end = int(reply.azure_filters) + 1 + len(reply.pieces) + len(tool_call_fragments(reply))
    head = (f": keep-alive{nl}{nl}" if reply.comments else "") + "".join(events[:content_end])
    return head.encode("utf-8"), "".join(events[content_end:]).encode("utf-8")


def awkward_pieces(payload: bytes, every: int = 7) -> list[bytes]:
    """Cut ``payload`` between each CR and LF, inside each multibyte character, and every few bytes."""
    cuts = set(range(every, len(payload), every))
    for index, byte in enumerate(payload):
        if byte == 0x0D and payload[index + 1 : index + 2] == b"\n":
            cuts.add(index + 1)
        if byte >= 0xC0:  # the first byte of a multibyte UTF-8 sequence: cut right after it
            cuts.add(index + 1)
    points = [0, *sorted(cut for cut in cuts if 0 < cut < len(payload)), len(payload)]
    return [payload[a:b] for a, b in zip(points, points[1:])]


class _StreamResponse:
    """A raw ASGI response, so a test can stall, write in pieces, or break the connection."""

    def __init__(self, reply: Stream) -> None:
        self.reply = reply

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        reply = self.reply
        head, tail = _stream_parts(reply)
        try:
            if reply.stall:
                await asyncio.sleep(reply.stall)
            await send({
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/event-stream; charset=utf-8"), (b"x-request-id", b"req_standin")],
            })
            if reply.pace:
                if not await self._paced(receive, send):
                    reply.hung_up.set()
                    return
            else:
                await self._write(send, head)
            if reply.stall_after:
                await asyncio.sleep(reply.stall_after)
            await self._write(send, tail)
            if reply.drop:
                return  # uvicorn closes the connection mid-response: the client sees a broken body
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except OSError:
            pass  # the client hung up (as a timing-out client does)

    async def _paced(self, receive: Any, send: Any) -> bool:
        """The content pieces one at a time, ``pace`` apart; False as soon as the client hangs up."""
        nl = self.reply.newline
        events = stream_events(self.reply)[: 1 + len(self.reply.pieces)]

        async def hung_up() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass

        gone = asyncio.ensure_future(hung_up())
        try:
            for data in events:
                await send({"type": "http.response.body", "body": f"data: {data}{nl}{nl}".encode(), "more_body": True})
                done, _ = await asyncio.wait({gone}, timeout=self.reply.pace)
                if done:
                    return False
            return True
        finally:
            gone.cancel()

    async def _write(self, send: Any, payload: bytes) -> None:
        if not payload:
            return
        for piece in awkward_pieces(payload) if self.reply.awkward else [payload]:
            await send({"type": "http.response.body", "body": piece, "more_body": True})
            if self.reply.awkward:
                await asyncio.sleep(0.002)  # separate TCP writes, so the client sees separate reads


class OpenAIStandIn:
    """The stand-in: ``app`` to serve, queues to script, ``requests`` to inspect."""

    def __init__(self) -> None:
        self.moderations: deque[Moderation | ErrorReply | Raw] = deque()
        self.chats: deque[Stream | ErrorReply | Raw] = deque()
        self.requests: list[Recorded] = []
        self.tokens = {"prompt": 0, "completion": 0}  # what the usage chunks it sent added up to
        self.app = Starlette(
            routes=[
                Route("/v1/moderations", self._moderation, methods=["POST"]),
                Route("/v1/chat/completions", self._chat, methods=["POST"]),
                Route("/openai/deployments/{deployment}/chat/completions", self._chat, methods=["POST"]),
            ]
        )

    def reset(self) -> None:
        self.moderations.clear()
        self.chats.clear()
        self.requests.clear()
        self.tokens = {"prompt": 0, "completion": 0}

    @property
    def paths(self) -> list[str]:
        return [request.path for request in self.requests]

    def bodies(self, path_end: str) -> list[Any]:
        return [request.body for request in self.requests if request.path.endswith(path_end)]

    async def _record(self, request: Request) -> None:
        raw = await request.body()
        try:
            body = json.loads(raw)
        except ValueError:
            body = raw.decode("utf-8", "replace")
        self.requests.append(
            Recorded(
                path=request.url.path,
                query=dict(request.query_params),
                headers={key.lower(): value for key, value in request.headers.items()},
                body=body,
                client_port=request.client.port if request.client else None,
            )
        )

    async def _moderation(self, request: Request) -> Any:
        await self._record(request)
        reply = self.moderations.popleft() if self.moderations else Moderation()
        if isinstance(reply, Moderation):
            return _json(200, moderation_json(reply))
        return _reply(reply)

    async def _chat(self, request: Request) -> Any:
        await self._record(request)
        reply = self.chats.popleft() if self.chats else Stream()
        if isinstance(reply, Stream):
            body = self.requests[-1].body
            options = body.get("stream_options") if isinstance(body, dict) else None
            if not (isinstance(options, dict) and options.get("include_usage") is True):
                reply = dataclasses.replace(reply, usage=False)  # as OpenAI: counts only when asked for
            usage = usage_of(reply)
            if usage is not None:
                self.tokens["prompt"] += usage["prompt_tokens"]
                self.tokens["completion"] += usage["completion_tokens"]
            return _StreamResponse(reply)
        return _reply(reply)


def _json(status: int, body: Any, headers: Mapping[str, str] | None = None) -> Response:
    return Response(
        json.dumps(body), status_code=status, headers=dict(headers or {}), media_type="application/json"
    )


def _reply(reply: ErrorReply | Raw) -> Response:
    if isinstance(reply, ErrorReply):
        return _json(reply.status, reply.body, {"x-request-id": "req_standin", **reply.headers})
    return Response(reply.body, status_code=reply.status, media_type=reply.content_type)
