"""A scripted model: an OpenAI-compatible chat server that plays a script, for testing tools.

A tool is called by a model, so testing one through a bot needs a model that calls it on
cue. This one answers each chat request with the script's next turn: tool calls, or text.
It streams them in Chat Completions' wire format (tool-call arguments in small fragments,
as OpenAI sends them), so the bot's provider runs exactly as it would against OpenAI::

    model = ScriptedModel(call("roll_dice", sides=6), "You rolled a 4.")

The first request gets a ``roll_dice`` call, the provider runs the tool and sends its result
back, and the second request gets the text. ``tool_results`` then holds what the tool gave
the model, and ``requests`` every request body. Asked for usage (``stream_options``), each
completion ends with its token counts: a prompt token per word of the messages sent, and a
completion token per streamed piece; ``tokens`` adds them up, to check a bot's budget or
/metrics against. ``options`` are the chatgpt options that
point a bot at it (moderation off: the script is not worth moderating). The ``slashbots``
fixture serves one with ``slashbots.model(...)``; ``scripted_model(...)`` serves one anywhere.
"""

from __future__ import annotations

import contextlib
import json
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterator, Sequence

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response

FRAGMENT = 5  # characters of arguments per streamed fragment: small, to exercise reassembly
OUT_OF_SCRIPT = "[scripted model: the script has no turn left for this request]"


@dataclass(frozen=True)
class ScriptedCall:
    """A tool call in the script; ``call(name, **arguments)`` makes one."""

    name: str
    arguments: dict[str, Any] = field(default_factory=dict)


def call(name: str, **arguments: Any) -> ScriptedCall:
    """A turn in which the model calls the tool ``name``; a list of them is a turn of parallel calls."""
    return ScriptedCall(name, arguments)


Turn = str | ScriptedCall | Sequence[ScriptedCall]


class ScriptedModel:
    """Serve ``app`` (``scripted_model`` does it for you); each chat request plays the next turn."""

    def __init__(self, *turns: Turn) -> None:
        from starlette.applications import Starlette
        from starlette.routing import Route

        self.turns: deque[Turn] = deque(turns)
        self.requests: list[dict[str, Any]] = []
        self.tokens = {"prompt": 0, "completion": 0}  # what its usage chunks counted
        self.url = ""  # set once served: the server's base URL
        self.app = Starlette(routes=[
            Route("/v1/chat/completions", self._chat, methods=["POST"]),
            Route("/v1/moderations", self._moderation, methods=["POST"]),
        ])

    @property
    def options(self) -> dict[str, Any]:
        """The chatgpt ``options:`` for a bot that talks to this model."""
        return {"base_url": f"{self.url}/v1", "api_key": "scripted", "moderation": False}

    @property
    def tool_results(self) -> list[tuple[str, str]]:
        """What the tools gave the model, in order: ``(tool name, result text)`` per call."""
        results = []
        for body in self.requests:
            messages = body.get("messages", [])
            # Each request carries the whole conversation; its new results follow the last assistant turn.
            last = max((i for i, m in enumerate(messages) if m.get("role") == "assistant"), default=-1)
            names = {tool_call["id"]: tool_call["function"]["name"]
                     for tool_call in (messages[last].get("tool_calls") or [] if last >= 0 else [])}
            results += [(names.get(m.get("tool_call_id"), "?"), m.get("content", ""))
                        for m in messages[last + 1:] if m.get("role") == "tool"]
        return results

    async def _chat(self, request: Request) -> Response:
        from starlette.responses import Response

        body = await request.json()
        self.requests.append(body)
        turn = self.turns.popleft() if self.turns else OUT_OF_SCRIPT
        events = _events(turn, len(self.requests))
        if (body.get("stream_options") or {}).get("include_usage") is True:
            # A completion token per piece: the chunks between the role chunk and the finish chunk.
            usage = {"prompt_tokens": _words(body.get("messages", [])), "completion_tokens": len(events) - 3}
            usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
            self.tokens["prompt"] += usage["prompt_tokens"]
            self.tokens["completion"] += usage["completion_tokens"]
            events.insert(-1, json.dumps({"id": f"chatcmpl-scripted-{len(self.requests)}",
                                          "object": "chat.completion.chunk", "created": 0, "model": "scripted",
                                          "choices": [], "usage": usage}))
        body = "".join(f"data: {event}\n\n" for event in events)
        return Response(body, media_type="text/event-stream")

    async def _moderation(self, request: Request) -> Response:
        from starlette.responses import JSONResponse

        return JSONResponse({"id": "modr-scripted", "model": "omni-moderation-latest",
                             "results": [{"flagged": False, "categories": {}}]})


@contextlib.contextmanager
def scripted_model(*turns: Turn) -> Iterator[ScriptedModel]:
    """Serve a ``ScriptedModel`` on a loopback port until the block ends."""
    from slashbots.sandbox.loopback import LoopbackServer

    model = ScriptedModel(*turns)
    with LoopbackServer(model.app) as server:
        model.url = server.url
        yield model


def _words(messages: list[dict[str, Any]]) -> int:
    return sum(len(message["content"].split()) for message in messages if isinstance(message.get("content"), str))


def _events(turn: Turn, number: int) -> list[str]:
    """The data of each server-sent event of one streamed completion."""
    def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> str:
        return json.dumps({"id": f"chatcmpl-scripted-{number}", "object": "chat.completion.chunk", "created": 0,
                           "model": "scripted", "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}]})

    events = [chunk({"role": "assistant", "content": ""})]
    if isinstance(turn, str):
        words = turn.split(" ")
        events += [chunk({"content": word if i == 0 else " " + word}) for i, word in enumerate(words)]
        events.append(chunk({}, "stop"))
    else:
        calls = [turn] if isinstance(turn, ScriptedCall) else list(turn)
        for index, scripted in enumerate(calls):
            arguments = json.dumps(scripted.arguments)
            events.append(chunk({"tool_calls": [{"index": index, "id": f"call_{number}_{index}", "type": "function",
                                                 "function": {"name": scripted.name, "arguments": ""}}]}))
            events += [chunk({"tool_calls": [{"index": index, "function": {"arguments": arguments[at:at + FRAGMENT]}}]})
                       for at in range(0, len(arguments), FRAGMENT)]
        events.append(chunk({}, "tool_calls"))
    return [*events, "[DONE]"]
